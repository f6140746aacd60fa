/** The graphs, newest first, live, filtered by state, a page at a time (the API's cursors). */
import { query } from "../api.js"
import { Ago, ErrorNote, graphHref, listKeys, Loading, PageTitle, StateBadge, TableWrap } from "../components.js"
import type { TaskState } from "../dag.js"
import { useLive, useNow } from "../live.js"
import { href, navigate } from "../route.js"
import type { GraphPage, GraphState } from "../types.js"

const PAGE = 25
const STATES: ReadonlyArray<GraphState> = ["pending", "running", "succeeded", "failed", "canceled"]
const ORDER: ReadonlyArray<TaskState> = ["running", "ready", "blocked", "failed", "canceled", "succeeded"]

export const GraphsPage = ({ params }: { params: URLSearchParams }) => {
  const state = params.get("state") ?? ""
  const cursor = params.get("cursor") ?? ""
  const live = useLive<GraphPage>(`/graphs${query({ state, cursor, limit: PAGE })}`)
  const now = useNow()
  const page = live.data
  const go = (p: Record<string, string | undefined>) => navigate(href(["graphs"], { state, cursor, ...p }))
  return (
    <>
      <PageTitle title="Graphs">Graphs</PageTitle>
      <div class="toolbar">
        <label class="inline">
          State{" "}
          <select value={state} onChange={(e) => go({ state: e.currentTarget.value, cursor: undefined })}>
            <option value="">any</option>
            {STATES.map((s) => <option key={s} value={s}>{s}</option>)}
          </select>
        </label>
        <a href="#/submit">Submit a graph</a>
        <span class="muted" aria-live="polite">{live.at ? "live" : ""}</span>
      </div>
      <ErrorNote error={live.error} what="Live updates interrupted (retrying)" />
      {!page ? !live.error && <Loading what="graphs" /> : page.items.length === 0
        ? <p>No graphs{state ? ` in state ${state}` : ""}{cursor ? " on this page" : ""} yet. <a href="#/submit">Submit one</a>.</p>
        : (
          <TableWrap label="Graphs">
            <table class="list" data-list="graphs">
              <thead>
                <tr>
                  <th scope="col">Graph</th>
                  <th scope="col">State</th>
                  <th scope="col">Tasks</th>
                  <th scope="col">Created</th>
                  <th scope="col">Finished</th>
                </tr>
              </thead>
              <tbody onKeyDown={listKeys}>
                {page.items.map((g) => (
                  <tr key={g.id} data-row data-graph={g.id}>
                    <td>
                      <a href={graphHref(g.id)}>{g.label ?? g.id}</a>
                      {g.label && <div class="muted id">{g.id}</div>}
                    </td>
                    <td><StateBadge state={g.state} /></td>
                    <td>
                      {g.tasks}{" "}
                      <span class="muted">
                        ({ORDER.filter((s) => g.counts[s] > 0).map((s) => `${g.counts[s]} ${s}`).join(", ")})
                      </span>
                    </td>
                    <td><Ago at={g.created_at} now={now} /></td>
                    <td>{g.finished_at ? <Ago at={g.finished_at} now={now} /> : <span class="muted">—</span>}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </TableWrap>
        )}
      <nav class="pager" aria-label="Pages">
        {cursor && <a href={href(["graphs"], { state })}>Newest</a>}
        {page?.next_cursor && <a href={href(["graphs"], { state, cursor: page.next_cursor })}>Older</a>}
      </nav>
    </>
  )
}
