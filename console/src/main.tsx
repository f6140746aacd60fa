/**
 * The cairn web console: the page at /ui/ (served by src/console/serve.ts). Routes are in the
 * URL's hash (./route.ts); every view reads the v1 API with the user's token (./api.ts).
 */
import { render } from "preact"
import { useState } from "preact/hooks"
import { auth } from "./api.js"
import { useAuthVersion } from "./live.js"
import { GraphPage } from "./pages/graph.js"
import { GraphsPage } from "./pages/graphs.js"
import { FuturePage } from "./pages/future.js"
import { DistributionPage, DistributionsPage, RemotePage, RemotesPage, RepositoriesPage, RepositoryPage } from "./pages/named.js"
import { SubmitPage } from "./pages/submit.js"
import { TaskPage } from "./pages/task.js"
import { WorkersPage } from "./pages/workers.js"
import { type Route, useRoute } from "./route.js"
import { PageTitle } from "./components.js"
import "./styles.css"

const NAV: ReadonlyArray<[string, string]> = [
  ["graphs", "Graphs"],
  ["workers", "Workers"],
  ["repositories", "Repositories"],
  ["remotes", "Remotes"],
  ["distributions", "Distributions"],
  ["submit", "Submit"]
]

/** Asked for after the server answered 401; the token stays in this tab's session storage. */
const TokenForm = () => {
  const [value, setValue] = useState("")
  const had = auth.token() !== undefined
  return (
    <section class="token-form" aria-labelledby="token-heading">
      <h1 id="token-heading" tabIndex={-1}>API token</h1>
      <p>
        {had
          ? <strong role="alert">The server refused that token.</strong>
          : "This cairn server needs an API token (one of CAIRN_API_TOKENS)."}{" "}
        It is kept in this tab's session storage and sent only to this server's API.
      </p>
      <form
        onSubmit={(e) => {
          e.preventDefault()
          if (value.trim()) auth.setToken(value.trim())
        }}
      >
        <label for="token">Token</label> <input id="token" type="password" autoComplete="off" autoFocus value={value} onInput={(e) => setValue(e.currentTarget.value)} />{" "}
        <button type="submit">Use this token</button>
      </form>
    </section>
  )
}

const Page = ({ route }: { route: Route }) => {
  const [section = "graphs", id] = route.path
  switch (section) {
    case "graphs":
      return id ? <GraphPage key={id} id={id} params={route.params} /> : <GraphsPage params={route.params} />
    case "tasks":
      if (id) return <TaskPage key={id} id={id} />
      break
    case "futures":
      if (id) return <FuturePage key={id} id={id} />
      break
    case "workers":
      return <WorkersPage />
    case "repositories":
      return id ? <RepositoryPage key={id} name={id} params={route.params} /> : <RepositoriesPage />
    case "remotes":
      return id ? <RemotePage key={id} name={id} /> : <RemotesPage />
    case "distributions":
      return id ? <DistributionPage key={id} name={id} /> : <DistributionsPage />
    case "submit":
      return <SubmitPage />
  }
  return (
    <>
      <PageTitle title="Not found">Not found</PageTitle>
      <p>The console has no page at <code>{window.location.hash}</code>. <a href="#/graphs">See the graphs</a>.</p>
    </>
  )
}

const App = () => {
  const route = useRoute()
  useAuthVersion()
  const section = route.path[0] ?? "graphs"
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => {
        e.preventDefault()
        document.getElementById("main")?.focus()
      }}>Skip to content</a>
      <header class="top">
        <a class="brand" href="#/graphs">cairn</a>
        <nav aria-label="Sections">
          <ul>
            {NAV.map(([to, label]) => (
              <li key={to}>
                <a href={`#/${to}`} aria-current={section === to || (to === "graphs" && section === "tasks") ? "page" : undefined}>{label}</a>
              </li>
            ))}
          </ul>
        </nav>
        {auth.token() !== undefined && (
          <button type="button" class="small" onClick={() => auth.setToken(undefined)}>Forget token</button>
        )}
      </header>
      <main id="main" tabIndex={-1}>
        {auth.needed ? <TokenForm /> : <Page route={route} />}
      </main>
    </>
  )
}

render(<App />, document.getElementById("app")!)
