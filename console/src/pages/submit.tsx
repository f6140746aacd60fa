/** Submit a graph (POST /graphs) as JSON, then watch it run. Prefilled with the README's first graph. */
import { useState } from "preact/hooks"
import { ApiError, postJson } from "../api.js"
import { PageTitle } from "../components.js"
import { href, navigate } from "../route.js"

const FIRST_GRAPH = `{
  "label": "hello",
  "nodes": {
    "fetch": { "task": "debug.sleep", "params": { "ms": 1500, "value": { "greeting": "hello" } } },
    "shout": { "task": "debug.sleep", "params": { "value": { "$ref": "fetch.result" } } },
    "fail":  { "task": "debug.sleep", "params": { "fail": "no disk" }, "resources": { "exclusive": ["repo-a"] } },
    "after": { "task": "debug.sleep", "params": { "inputs": [{ "$ref": "fail.result" }] } }
  }
}`

export const SubmitPage = () => {
  const [text, setText] = useState(FIRST_GRAPH)
  const [error, setError] = useState<{ message: string; nodes?: Record<string, ReadonlyArray<string>> }>()
  const [busy, setBusy] = useState(false)
  const submit = async (e: Event) => {
    e.preventDefault()
    setError(undefined)
    let body: unknown
    try {
      body = JSON.parse(text)
    } catch (x) {
      return setError({ message: `That is not JSON: ${(x as Error).message}` })
    }
    setBusy(true)
    try {
      const g = await postJson<{ id: string }>("/graphs", body)
      navigate(href(["graphs", g.id]))
    } catch (x) {
      const err = x as ApiError
      const nodes = (err.details as { nodes?: Record<string, ReadonlyArray<string>> } | undefined)?.nodes
      setError({ message: err.message, ...(nodes ? { nodes } : {}) })
    } finally {
      setBusy(false)
    }
  }
  return (
    <>
      <PageTitle title="Submit a graph">Submit a graph</PageTitle>
      <p>
        A graph as <code>POST /api/v1/graphs</code> takes it: nodes with a task kind and params; <code>{`{ "$ref": "node.output" }`}</code> makes a
        data dependency. This one is the README's first graph.
      </p>
      <form onSubmit={submit}>
        <label for="graph-json">Graph (JSON)</label>
        <textarea id="graph-json" rows={14} spellcheck={false} value={text} onInput={(e) => setText(e.currentTarget.value)} />
        <p><button type="submit" disabled={busy}>Submit</button></p>
      </form>
      {error && (
        <div class="error-note" role="alert">
          <p>{error.message}</p>
          {error.nodes && (
            <ul>
              {Object.entries(error.nodes).map(([n, problems]) => <li key={n}><code>{n}</code>: {problems.join("; ")}</li>)}
            </ul>
          )}
        </div>
      )}
    </>
  )
}
