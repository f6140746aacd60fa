/**
 * Live workers: slots in use, the tasks they run, heartbeats. GET /workers has no long-poll (a
 * heartbeat moves every few seconds anyway), so this page asks every two seconds.
 */
import { Ago, ErrorNote, listKeys, Loading, PageTitle, shortId, TableWrap, taskHref } from "../components.js"
import { usePolled, useNow } from "../live.js"
import type { Worker } from "../types.js"

/** A heartbeat older than this is worth a warning (the engine's default timeout is longer). */
const STALE_MS = 10_000

export const WorkersPage = () => {
  const live = usePolled<ReadonlyArray<Worker>>("/workers", 2000)
  const now = useNow()
  const workers = live.data
  return (
    <>
      <PageTitle title="Workers">Workers</PageTitle>
      <ErrorNote error={live.error} what="Updates interrupted (retrying)" />
      {!workers ? !live.error && <Loading what="workers" /> : workers.length === 0
        ? <p>No worker is running. Start one with <code>npm run worker</code> (or <code>CAIRN_WORKERS</code> slots in <code>npm start</code>).</p>
        : (
          <TableWrap label="Workers">
            <table class="list" data-list="workers">
              <thead>
                <tr>
                  <th scope="col">Worker</th>
                  <th scope="col">Slots in use</th>
                  <th scope="col">Running</th>
                  <th scope="col">Last heartbeat</th>
                  <th scope="col">Started</th>
                </tr>
              </thead>
              <tbody onKeyDown={listKeys}>
                {workers.map((w, i) => {
                  const stale = now - Date.parse(w.last_heartbeat) > STALE_MS
                  return (
                    <tr key={w.id} data-row data-worker={w.name} tabIndex={i === 0 ? 0 : -1} aria-label={`Worker ${w.name}`}>
                      <td>
                        {w.name}
                        <div class="muted">{w.host} · pid {w.pid}</div>
                      </td>
                      <td>
                        <meter min={0} max={w.slots} value={w.running.length} aria-label={`${w.running.length} of ${w.slots} slots in use`} />{" "}
                        {w.running.length} / {w.slots}
                      </td>
                      <td>
                        {w.running.length === 0 ? <span class="muted">idle</span> : w.running.map((t) => <a key={t} href={taskHref(t)} class="chip">{shortId(t)}</a>)}
                      </td>
                      <td class={stale ? "warn" : ""}>
                        <Ago at={w.last_heartbeat} now={now} />
                        {stale && " (late)"}
                      </td>
                      <td><Ago at={w.started_at} now={now} /></td>
                    </tr>
                  )
                })}
              </tbody>
            </table>
          </TableWrap>
        )}
    </>
  )
}
