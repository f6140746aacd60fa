/**
 * Everything about one task: where it stands and why (waits in words, the error with its way back
 * to the root cause), progress, outputs with their futures, inputs, resources, attempts, worker,
 * timings, params; and cancel.
 */
import { useEffect, useState } from "preact/hooks"
import { ApiError, getJson, postJson } from "./api.js"
import { Ago, ErrorNote, futureHref, graphHref, Json, SentenceView, StateBadge, taskHref } from "./components.js"
import { type DagModel, formatDuration, type FutureView, isSettled, outputsOf, type TaskView } from "./dag.js"
import { causeChain, situation, type WaitLine, waitLines } from "./explain.js"

const Waits = ({ lines, linkTo }: { lines: ReadonlyArray<WaitLine>; linkTo: (id: string) => string }) => (
  <ul class="waits">
    {lines.map((l, i) => (
      <li key={i}>
        <SentenceView sentence={l.sentence} linkTo={linkTo} />
        {l.children.length > 0 && <Waits lines={l.children} linkTo={linkTo} />}
      </li>
    ))}
  </ul>
)

/** A settled output's value, fetched once (a settled future never changes). */
const FutureValue = ({ id }: { id: string }) => {
  const [f, setF] = useState<FutureView | ApiError>()
  useEffect(() => {
    getJson<FutureView>(`/futures/${id}`).then(setF, (e: ApiError) => setF(e))
  }, [id])
  if (f === undefined) return <span class="muted">…</span>
  if (f instanceof ApiError) return <span class="muted">{f.message}</span>
  return f.state === "resolved" ? <Json value={f.value} /> : null
}

export const Progress = ({ t }: { t: TaskView }) => {
  const p = t.progress
  if (!p) return null
  const label = `${p.done}${p.total !== undefined ? ` of ${p.total}` : ""}${p.unit ? ` ${p.unit}` : ""}`
  return (
    <div class="progress">
      <label>
        Progress <span class="muted">{label}{p.total ? ` (${Math.floor((100 * p.done) / p.total)}%)` : ""}</span>
        {p.total ? <progress value={Math.min(p.done, p.total)} max={p.total} /> : <progress />}
      </label>
    </div>
  )
}

const CancelButton = ({ t }: { t: TaskView }) => {
  const [asking, setAsking] = useState(false)
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<ApiError>()
  if (isSettled(t)) return null
  const cancel = async () => {
    setBusy(true)
    try {
      await postJson(`/tasks/${t.id}/cancel`)
      setAsking(false)
    } catch (e) {
      setError(e as ApiError)
    } finally {
      setBusy(false)
    }
  }
  return (
    <div class="cancel">
      {!asking
        ? <button type="button" class="danger" onClick={() => setAsking(true)}>Cancel task…</button>
        : (
          <div role="group" aria-label="Confirm cancel">
            <span>Cancel {t.node}? Tasks that need its outputs are canceled too.</span>{" "}
            <button type="button" class="danger" disabled={busy} onClick={cancel} autoFocus>Yes, cancel it</button>{" "}
            <button type="button" onClick={() => setAsking(false)}>Keep it</button>
          </div>
        )}
      <ErrorNote error={error} what="Cancel failed" />
    </div>
  )
}

const Time = ({ label, at, now }: { label: string; at: string | undefined; now: number }) =>
  at ? (
    <>
      <dt>{label}</dt>
      <dd><Ago at={at} now={now} /> <span class="muted">{at}</span></dd>
    </>
  ) : null

export const TaskDetails = ({ m, t, now, linkTo = taskHref }: { m: DagModel; t: TaskView; now: number; linkTo?: (id: string) => string }) => {
  const chain = causeChain(m, t)
  const waits = t.state === "blocked" ? waitLines(m, t, now) : []
  const outputs = outputsOf(t, m.futures)
  return (
    <div class="task-details" data-task={t.id}>
      <p class="situation" data-situation>
        <StateBadge state={t.state} /> <SentenceView sentence={situation(m, t, now)} linkTo={linkTo} />
      </p>
      {waits.length > 0 && (
        <section aria-label="What it waits for">
          <Waits lines={waits} linkTo={linkTo} />
        </section>
      )}
      {chain && (
        <section class={`cause ${chain.error.retrying ? "retrying" : ""}`} aria-label="Error">
          <p>
            <strong>{chain.error.retrying ? "Last error (it will retry)" : "Error"}:</strong> <code>{chain.error.code}</code>{" "}
            {chain.error.message}
          </p>
          {chain.hops.length > 0 && (
            <ol class="hops">
              {chain.hops.map((h, i) => <li key={i}><SentenceView sentence={h} linkTo={linkTo} /></li>)}
            </ol>
          )}
          {chain.rootSentence && (
            <p class="root-cause" data-root-cause={chain.root}>
              <SentenceView sentence={chain.rootSentence} linkTo={linkTo} />
            </p>
          )}
        </section>
      )}
      <Progress t={t} />
      <CancelButton t={t} />
      <dl class="facts">
        <dt>Task</dt>
        <dd><code>{t.task}</code> <span class="muted">{t.id}</span></dd>
        <dt>Graph</dt>
        <dd><a href={graphHref(t.graph)}>{t.graph === m.graph.id ? (m.graph.label ?? t.graph) : t.graph}</a></dd>
        <dt>Attempts</dt>
        <dd>{t.attempts} of {t.max_attempts}{t.retry_backoff_ms > 0 ? `, retry backoff ${formatDuration(t.retry_backoff_ms)} (doubling)` : ""}</dd>
        <dt>Priority</dt>
        <dd>{t.priority}</dd>
        <dt>Worker</dt>
        <dd>{t.worker ?? <span class="muted">none</span>}</dd>
        <Time label="Created" at={t.created_at} now={now} />
        <Time label="Ready" at={t.ready_at} now={now} />
        <Time label="Started" at={t.started_at} now={now} />
        <Time label="Finished" at={t.finished_at} now={now} />
        {(t.resources.exclusive.length > 0 || t.resources.shared.length > 0) && (
          <>
            <dt>Resource keys</dt>
            <dd>
              {t.resources.exclusive.map((k) => <code key={k} class="key">{k} (exclusive)</code>)}
              {t.resources.shared.map((k) => <code key={k} class="key">{k} (shared)</code>)}
            </dd>
          </>
        )}
      </dl>
      <h3>Outputs</h3>
      {outputs.length === 0 ? <p class="muted">none</p> : (
        <ul class="outputs">
          {outputs.map((o) => (
            <li key={o.id}>
              <code>{o.name}</code> <a href={futureHref(o.id)}>future {o.id}</a> <StateBadge state={o.state} />
              {o.state === "resolved" && <FutureValue id={o.id} />}
            </li>
          ))}
        </ul>
      )}
      {t.inputs.length > 0 && (
        <>
          <h3>Inputs</h3>
          <ul class="inputs">
            {t.inputs.map((f) => {
              const o = m.outputOf.get(f)
              return (
                <li key={f}>
                  {o ? <><a href={linkTo(o.task)}>{m.tasks.get(o.task)?.node ?? o.task}</a>.<code>{o.output}</code> </> : null}
                  <a href={futureHref(f)}>future {f}</a>
                </li>
              )
            })}
          </ul>
        </>
      )}
      <h3>Params</h3>
      <Json value={t.params} />
    </div>
  )
}
