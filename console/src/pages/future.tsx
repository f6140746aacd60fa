/** A future: its state, value or error, and the task that produces it. */
import { Ago, ErrorNote, Json, Loading, PageTitle, StateBadge, taskHref } from "../components.js"
import type { FutureView } from "../dag.js"
import { useFetched, useNow } from "../live.js"

export const FuturePage = ({ id }: { id: string }) => {
  const f = useFetched<FutureView>(`/futures/${id}`)
  const now = useNow()
  const v = f.data
  return (
    <>
      <PageTitle title={`Future ${id}`}>Future <span class="muted id">{id}</span></PageTitle>
      <ErrorNote error={f.error} />
      {!v ? !f.error && <Loading what="the future" /> : (
        <>
          <p>
            <StateBadge state={v.state} /> a <code>{v.kind}</code> produced by <a href={taskHref(v.producer)}>task {v.producer}</a>
            {v.state === "pending" && <> <button type="button" onClick={f.reload}>Refresh</button></>}
          </p>
          <dl class="facts">
            <dt>Created</dt><dd><Ago at={v.created_at} now={now} /></dd>
            {v.settled_at && <><dt>Settled</dt><dd><Ago at={v.settled_at} now={now} /></dd></>}
          </dl>
          {v.error && (
            <p class="cause">
              <code>{v.error.code}</code> {v.error.message}
              {v.error.cause_task && <> — root cause: <a href={taskHref(v.error.cause_task)}>task {v.error.cause_task}</a></>}
            </p>
          )}
          {v.state === "resolved" && (
            <>
              <h2>Value</h2>
              <Json value={v.value} />
            </>
          )}
        </>
      )}
    </>
  )
}
