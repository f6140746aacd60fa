/**
 * Repositories (revisions, versions with content counts, the content of a version), remotes and
 * distributions (with links to the files they serve). Named resources change only when someone
 * edits them, so these pages load once and have a Refresh button.
 *
 * A guarded distribution's content needs what its guard asks for, which is not the API token: a
 * signed one is listed and opened through URLs the API signs with the user's token (a `:read` token
 * may not sign: the page says so); a token one is not listed (the console does not know its tokens).
 */
import type { ComponentChildren } from "preact"
import { useEffect, useState } from "preact/hooks"
import { type ApiError, CONTENT, contentUrl, postJson, query } from "../api.js"
import { Ago, bytes, ErrorNote, futureHref, listKeys, Loading, PageTitle, TableWrap } from "../components.js"
import { useFetched, useNow } from "../live.js"
import { href } from "../route.js"
import type { ContentPage, Distribution, Remote, Repository, Version } from "../types.js"

type Kind = "repositories" | "remotes" | "distributions"
const TITLE: Record<Kind, string> = { repositories: "Repositories", remotes: "Remotes", distributions: "Distributions" }

const Refresh = ({ reload }: { reload: () => void }) => <button type="button" onClick={reload}>Refresh</button>

const ListPage = <T extends { readonly name: string; readonly id: string }>({ kind, head, row }: {
  kind: Kind
  head: ReadonlyArray<string>
  row: (x: T) => ComponentChildren
}) => {
  const live = useFetched<ReadonlyArray<T>>(`/${kind}`)
  return (
    <>
      <PageTitle title={TITLE[kind]}>{TITLE[kind]}</PageTitle>
      <div class="toolbar"><Refresh reload={live.reload} /></div>
      <ErrorNote error={live.error} />
      {!live.data ? !live.error && <Loading what={kind} /> : live.data.length === 0 ? <p>None yet.</p> : (
        <TableWrap label={TITLE[kind]}>
          <table class="list" data-list={kind}>
            <thead>
              <tr>
                <th scope="col">Name</th>
                {head.map((h) => <th key={h} scope="col">{h}</th>)}
              </tr>
            </thead>
            <tbody onKeyDown={listKeys}>
              {live.data.map((x) => (
                <tr key={x.id} data-row data-name={x.name}>
                  <td><a href={href([kind, x.name])}>{x.name}</a></td>
                  {row(x)}
                </tr>
              ))}
            </tbody>
          </table>
        </TableWrap>
      )}
    </>
  )
}

export const RepositoriesPage = () => (
  <ListPage<Repository> kind="repositories" head={["Description", "Revision"]} row={(r) => (
    <>
      <td>{r.description ?? <span class="muted">—</span>}</td>
      <td class="id">{r.revision}</td>
    </>
  )} />
)

export const RemotesPage = () => (
  <ListPage<Remote> kind="remotes" head={["URL", "Policy"]} row={(r) => (
    <>
      <td class="url">{r.url}</td>
      <td>{r.policy}</td>
    </>
  )} />
)

/** Who may read a distribution's content, in words. */
const guardText = (guard: Distribution["guard"]) =>
  guard === null
    ? "open"
    : guard.type === "signed"
    ? "signed URLs"
    : `${guard.token_count} token${guard.token_count === 1 ? "" : "s"}`

export const DistributionsPage = () => (
  <ListPage<Distribution> kind="distributions" head={["Base path", "Publication", "Guard"]} row={(d) => (
    <>
      <td><a href={contentUrl(d.base_path) + "/"}>{d.base_path}/</a></td>
      <td>{d.publication ? <a href={futureHref(d.publication)}>{d.publication}</a> : <span class="muted">none</span>}</td>
      <td data-guard>{guardText(d.guard)}</td>
    </>
  )} />
)

/** A named resource's revisions, newest first. */
const Revisions = <T extends { readonly revision: string; readonly created_at: string }>({ kind, name, fields }: {
  kind: Kind
  name: string
  fields: (x: T) => string
}) => {
  const live = useFetched<ReadonlyArray<T>>(`/${kind}/${encodeURIComponent(name)}/revisions`)
  const now = useNow(5000)
  return (
    <section aria-labelledby="revisions-heading">
      <h2 id="revisions-heading">Revisions</h2>
      <ErrorNote error={live.error} />
      {live.data && (
        <TableWrap label="Revisions">
          <table class="list">
            <thead><tr><th scope="col">Revision</th><th scope="col">Created</th><th scope="col">Fields</th></tr></thead>
            <tbody>
              {live.data.map((r, i) => (
                <tr key={r.revision}>
                  <td class="id">{r.revision}{i === 0 && " (current)"}</td>
                  <td><Ago at={r.created_at} now={now} /></td>
                  <td><code>{fields(r)}</code></td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableWrap>
      )}
    </section>
  )
}

const omitBase = ({ id: _i, name: _n, revision: _r, created_at: _c, ...rest }: Record<string, unknown>) => JSON.stringify(rest)

const Content = ({ name, version }: { name: string; version: number }) => {
  const [after, setAfter] = useState<ReadonlyArray<string>>([])
  useEffect(() => setAfter([]), [name, version])
  const cursor = after[after.length - 1]
  const live = useFetched<ContentPage>(`/repositories/${encodeURIComponent(name)}/versions/${version}/content${query({ after: cursor, limit: 100 })}`)
  return (
    <section aria-labelledby="content-heading">
      <h2 id="content-heading">Content of version {version}</h2>
      <ErrorNote error={live.error} />
      {live.data && (live.data.items.length === 0 ? <p>Empty.</p> : (
        <TableWrap label={`Content of version ${version}`}>
          <table class="list" data-list="content">
            <thead><tr><th scope="col">Relative path</th><th scope="col">Size</th><th scope="col">sha256</th><th scope="col">Artifact</th></tr></thead>
            <tbody>
              {live.data.items.map((u) => (
                <tr key={u.id}>
                  <td>{String(u.relative_path ?? "")}</td>
                  <td>{bytes(u.size)}</td>
                  <td class="id" title={u.sha256}>{u.sha256.slice(0, 16)}…</td>
                  <td>{u.artifact ? <span class="id">{u.artifact}</span> : <span class="muted">on demand, not fetched yet</span>}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableWrap>
      ))}
      <nav class="pager" aria-label="Content pages">
        {after.length > 0 && <button type="button" onClick={() => setAfter(after.slice(0, -1))}>Previous</button>}
        {live.data?.next && <button type="button" onClick={() => setAfter([...after, live.data!.next!])}>Next</button>}
      </nav>
    </section>
  )
}

export const RepositoryPage = ({ name, params }: { name: string; params: URLSearchParams }) => {
  const repo = useFetched<Repository>(`/repositories/${encodeURIComponent(name)}`)
  const versions = useFetched<ReadonlyArray<Version>>(`/repositories/${encodeURIComponent(name)}/versions`)
  const now = useNow(5000)
  const chosen = params.get("version")
  const latest = versions.data?.reduce((a, v) => Math.max(a, v.number), 0)
  const shown = chosen !== null ? Number(chosen) : latest
  return (
    <>
      <PageTitle title={`Repository ${name}`}>Repository {name}</PageTitle>
      <div class="toolbar"><Refresh reload={() => { repo.reload(); versions.reload() }} /></div>
      <ErrorNote error={repo.error ?? versions.error} />
      {repo.data && <p>{repo.data.description ?? <span class="muted">No description.</span>}</p>}
      <section aria-labelledby="versions-heading">
        <h2 id="versions-heading">Versions</h2>
        {repo.data && (
          <p data-retention>
            {repo.data.retain_versions === null
              ? "Keeps every version (retain_versions is not set)."
              : `Keeps the newest ${repo.data.retain_versions} version${repo.data.retain_versions === 1 ? "" : "s"} (retain_versions)`}
            {" "}and any version a distribution serves or a queued task uses; the others are released.
          </p>
        )}
        {versions.data && (
          <TableWrap label="Versions">
            <table class="list" data-list="versions">
              <thead><tr><th scope="col">Version</th><th scope="col">Content</th><th scope="col">Created</th><th scope="col">Made by</th><th scope="col">Held by</th></tr></thead>
              <tbody onKeyDown={listKeys}>
                {versions.data.map((v) => (
                  <tr key={v.id} data-row data-version={v.number} class={v.number === shown ? "current" : ""}>
                    <td>
                      <a href={href(["repositories", name], { version: v.number })} aria-current={v.number === shown ? "true" : undefined}>
                        {v.number}
                      </a>
                    </td>
                    <td>{v.content_count} unit{v.content_count === 1 ? "" : "s"}</td>
                    <td><Ago at={v.created_at} now={now} /></td>
                    <td>{v.future ? <a href={futureHref(v.future)}>future {v.future}</a> : <span class="muted">created with the repository</span>}</td>
                    <td>{v.held_by.join(", ")}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </TableWrap>
        )}
      </section>
      {shown !== undefined && Number.isInteger(shown) && <Content name={name} version={shown} />}
      <Revisions<Repository> kind="repositories" name={name} fields={omitBase} />
    </>
  )
}

export const RemotePage = ({ name }: { name: string }) => {
  const remote = useFetched<Remote>(`/remotes/${encodeURIComponent(name)}`)
  return (
    <>
      <PageTitle title={`Remote ${name}`}>Remote {name}</PageTitle>
      <ErrorNote error={remote.error} />
      {remote.data && (
        <dl class="facts">
          <dt>URL</dt><dd class="url">{remote.data.url}</dd>
          <dt>Policy</dt><dd>{remote.data.policy}</dd>
          <dt>Download concurrency</dt><dd>{remote.data.download_concurrency}</dd>
        </dl>
      )}
      <Revisions<Remote> kind="remotes" name={name} fields={omitBase} />
    </>
  )
}

/** How long the URLs the console signs for a guarded distribution live: long enough to click. */
const SIGNED_SECONDS = 600

/** A signed URL for `path` of distribution `name`, relative to the console like every content link. */
const signedUrl = async (name: string, path: string) => {
  const signed = await postJson<{ path: string }>(`/distributions/${encodeURIComponent(name)}/sign`, { path, expires_in_seconds: SIGNED_SECONDS })
  return CONTENT + signed.path.slice("/content".length)
}

/** What a failed signing request means here (a `:read` token may not sign). */
const signingFailed = (e: ApiError) =>
  e.status === 403 ? `Listing this distribution's files needs signed URLs, and your token may only read: ${e.message}` : e.message

/**
 * The files a distribution serves, from its publication's PULP_MANIFEST (relative_path,sha256,size).
 * Behind a signed guard the manifest and each file are fetched through URLs signed when needed.
 */
const ServedFiles = ({ name, basePath, guard }: { name: string; basePath: string; guard: Distribution["guard"] }) => {
  const [files, setFiles] = useState<ReadonlyArray<{ path: string; size: number }> | string>()
  const signed = guard?.type === "signed"
  useEffect(() => {
    setFiles(undefined)
    if (guard?.type === "token") {
      return setFiles("This content is guarded by tokens: the content app asks for one of the distribution's tokens (not an API token), which the console does not know.")
    }
    const manifest = signed ? signedUrl(name, "PULP_MANIFEST") : Promise.resolve(contentUrl(basePath, "PULP_MANIFEST"))
    manifest.then((url) => fetch(url, { cache: "no-store" })).then(async (r) => {
      if (r.status === 404) return setFiles("Nothing is served here yet (no publication, or one without a manifest).")
      if (!r.ok) return setFiles(`The content app answered ${r.status}.`)
      const lines = (await r.text()).split("\n").filter((l) => l.trim() !== "")
      setFiles(lines.map((l) => {
        const parts = l.split(",")
        return { path: parts.slice(0, -2).join(","), size: Number(parts[parts.length - 1]) }
      }))
    }, (e: Error) => setFiles(e.name === "ApiError" ? signingFailed(e as ApiError) : `Cannot reach the content app: ${e.message}`))
  }, [name, basePath, guard?.type, signed])
  /** A signed distribution's link is signed when followed (a URL per file up front would be a request per file). */
  const follow = (path: string) => (e: MouseEvent) => {
    if (!signed || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return
    e.preventDefault()
    signedUrl(name, path).then((url) => window.location.assign(url), (err: ApiError) => setFiles(signingFailed(err)))
  }
  return (
    <section aria-labelledby="files-heading">
      <h2 id="files-heading">Served files</h2>
      <p>
        Base URL: <a href={contentUrl(basePath) + "/"}>{contentUrl(basePath)}/</a> · manifest:{" "}
        <a href={contentUrl(basePath, "PULP_MANIFEST")} onClick={follow("PULP_MANIFEST")}>PULP_MANIFEST</a>
      </p>
      {files === undefined ? <Loading what="the manifest" /> : typeof files === "string" ? <p class="muted" data-files-note>{files}</p> : (
        <TableWrap label="Served files">
          <table class="list" data-list="files">
            <thead><tr><th scope="col">File</th><th scope="col">Size</th></tr></thead>
            <tbody onKeyDown={listKeys}>
              {files.map((f) => (
                <tr key={f.path} data-row>
                  <td><a href={contentUrl(basePath, f.path)} data-file={f.path} onClick={follow(f.path)}>{f.path}</a></td>
                  <td>{Number.isFinite(f.size) ? bytes(f.size) : ""}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableWrap>
      )}
    </section>
  )
}

export const DistributionPage = ({ name }: { name: string }) => {
  const dist = useFetched<Distribution>(`/distributions/${encodeURIComponent(name)}`)
  const d = dist.data
  return (
    <>
      <PageTitle title={`Distribution ${name}`}>Distribution {name}</PageTitle>
      <div class="toolbar"><Refresh reload={dist.reload} /></div>
      <ErrorNote error={dist.error} />
      {d && (
        <>
          <dl class="facts">
            <dt>Base path</dt><dd>{d.base_path}</dd>
            <dt>Publication</dt>
            <dd>{d.publication ? <a href={futureHref(d.publication)}>future {d.publication}</a> : <span class="muted">none</span>}</dd>
            <dt>Guard</dt><dd data-guard>{guardText(d.guard)}</dd>
          </dl>
          <ServedFiles name={d.name} basePath={d.base_path} guard={d.guard} />
        </>
      )}
      <Revisions<Distribution> kind="distributions" name={name} fields={omitBase} />
    </>
  )
}
