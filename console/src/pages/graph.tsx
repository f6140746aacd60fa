/**
 * A graph: its drawing (live), a search by node name, grouping of similar tasks, the selected
 * task's details beside the drawing, and every task in a table (the drawing's keyboard- and
 * screen-reader-friendly twin).
 */
import { useCallback, useEffect, useMemo, useRef, useState } from "preact/hooks"
import { type ApiError, postJson } from "../api.js"
import { Ago, ErrorNote, listKeys, Loading, PageTitle, StateBadge, TableWrap } from "../components.js"
import { type DagModel, type GraphView, modelOf, stateCounts, type TaskState, timing } from "../dag.js"
import { type Box, drawingOf } from "../drawing.js"
import { waitLines } from "../explain.js"
import { GraphView as Drawing, type ViewControls } from "../graph-view.js"
import { useLayout } from "../layout.js"
import { type Live, useLive, useNow } from "../live.js"
import { href, navigate } from "../route.js"
import { TaskDetails } from "../task-details.js"

/** Past this many tasks, similar ones start grouped. */
const GROUP_FROM = 150
const TABLE_PAGE = 100

/** The DAG model of the live graph view, rebuilt at each new view (never two builds at once). */
export const useModel = (live: Live<GraphView>, root?: { kind: "task"; id: string }) => {
  const [model, setModel] = useState<{ m?: DagModel; error?: ApiError }>({})
  const busy = useRef<Promise<void>>(Promise.resolve())
  useEffect(() => {
    const g = live.data
    if (!g) return
    let stale = false
    busy.current = busy.current.then(() =>
      stale ? undefined : modelOf(g, root).then((m) => void (stale || setModel({ m })), (error: ApiError) => void (stale || setModel((s) => ({ ...s, error }))))
    )
    return () => void (stale = true)
  }, [live.data, root?.id])
  return model
}

const CancelGraph = ({ g }: { g: GraphView }) => {
  const [asking, setAsking] = useState(false)
  const [error, setError] = useState<ApiError>()
  if (g.state !== "pending" && g.state !== "running") return null
  return asking
    ? (
      <span role="group" aria-label="Confirm cancel">
        Cancel every unsettled task?{" "}
        <button type="button" class="danger" autoFocus onClick={() => postJson(`/graphs/${g.id}/cancel`).then(() => setAsking(false), setError)}>
          Yes, cancel the graph
        </button>{" "}
        <button type="button" onClick={() => setAsking(false)}>Keep it</button>
        <ErrorNote error={error} what="Cancel failed" />
      </span>
    )
    : <button type="button" class="danger" onClick={() => setAsking(true)}>Cancel graph…</button>
}

const Counts = ({ m }: { m: DagModel }) => (
  <ul class="counts" aria-label="Tasks by state">
    {[...stateCounts(m).entries()].map(([s, n]) => <li key={s}><StateBadge state={s} /> {n}</li>)}
  </ul>
)

const TaskTable = ({ m, now, query, linkTo }: { m: DagModel; now: number; query: string; linkTo: (id: string) => string }) => {
  const [state, setState] = useState<TaskState | "">("")
  const [limit, setLimit] = useState(TABLE_PAGE)
  const q = query.trim().toLowerCase()
  const rows = m.order
    .map((id) => m.tasks.get(id)!)
    .filter((t) => (state === "" || t.state === state) && (q === "" || t.node.toLowerCase().includes(q)))
  return (
    <section aria-labelledby="tasks-heading">
      <h2 id="tasks-heading">Tasks</h2>
      <label class="inline">
        Show{" "}
        <select value={state} onChange={(e) => setState(e.currentTarget.value as TaskState | "")}>
          <option value="">every state</option>
          {(["blocked", "ready", "running", "succeeded", "failed", "canceled"] as const).map((s) => <option key={s} value={s}>{s}</option>)}
        </select>
      </label>{" "}
      <span class="muted" aria-live="polite">{rows.length} of {m.order.length} tasks{q ? ` matching “${query}”` : ""}</span>
      <TableWrap label="Tasks of the graph">
        <table class="list" data-list="tasks">
          <thead>
            <tr><th scope="col">Node</th><th scope="col">Task</th><th scope="col">State</th><th scope="col">Why / how long</th><th scope="col">Worker</th></tr>
          </thead>
          <tbody onKeyDown={listKeys}>
            {rows.slice(0, limit).map((t) => {
              const w = t.state === "blocked" ? waitLines(m, t, now, 1)[0] : undefined
              return (
                <tr key={t.id} data-row data-node={t.node}>
                  <td><a href={linkTo(t.id)}>{t.node}</a></td>
                  <td><code>{t.task}</code></td>
                  <td><StateBadge state={t.state} /></td>
                  <td>
                    {w
                      ? w.sentence.map((p, i) => <span key={i}>{"task" in p ? p.label : "code" in p ? p.code : p.text}</span>)
                      : t.error ? `${t.error.code}: ${t.error.message}` : timing(t, now)}
                  </td>
                  <td>{t.worker ?? ""}</td>
                </tr>
              )
            })}
          </tbody>
        </table>
      </TableWrap>
      {rows.length > limit && <button type="button" onClick={() => setLimit(limit + 10 * TABLE_PAGE)}>Show more ({rows.length - limit} left)</button>}
    </section>
  )
}

export const GraphPage = ({ id, params }: { id: string; params: URLSearchParams }) => {
  const live = useLive<GraphView>(`/graphs/${id}`)
  const { m, error } = useModel(live)
  const now = useNow()
  const selectedTask = params.get("task") ?? undefined
  const [query, setQuery] = useState(params.get("q") ?? "")
  const [grouping, setGrouping] = useState<boolean | undefined>(undefined)
  const [expanded, setExpanded] = useState<ReadonlySet<string>>(new Set())
  const [focus, setFocus] = useState<{ box: string; n: number }>()
  const [hit, setHit] = useState(0)
  const controls = useRef<ViewControls>()

  const group = grouping ?? (m !== undefined && m.order.length > GROUP_FROM)
  const drawing = useMemo(() => (m ? drawingOf(m, { group, expanded }) : undefined), [m, group, expanded])
  const { layout, busy, error: layoutError } = useLayout(drawing)

  const q = query.trim().toLowerCase()
  const matches = useMemo(() => {
    if (!drawing || !m || q === "") return undefined
    return new Set(drawing.boxes.filter((b) => b.members.some((t) => m.tasks.get(t)!.node.toLowerCase().includes(q))).map((b) => b.id))
  }, [drawing, m, q])
  const matchList = drawing?.boxes.filter((b) => matches?.has(b.id)) ?? []

  // The selected task comes from the URL; keep it in view.
  const selectedBox = selectedTask !== undefined ? drawing?.boxOf.get(selectedTask) : undefined
  // (Not when the box was just clicked: it is in view already, and jumping would lose the user's place.)
  const clicked = useRef(false)
  useEffect(() => {
    if (selectedBox && !clicked.current) setFocus((f) => ({ box: selectedBox, n: (f?.n ?? 0) + 1 }))
    clicked.current = false
  }, [selectedBox, layout?.structure])

  const linkTo = (task: string) => (m?.tasks.get(task)?.graph === id ? href(["graphs", id], { task }) : href(["tasks", task]))
  const select = (task: string | undefined) => navigate(href(["graphs", id], { task }), true)
  const activate = (b: Box) => {
    if (b.type === "group") setExpanded(new Set([...expanded, b.id]))
    else if (b.type === "external") navigate(href(["tasks", b.task.id]))
    else {
      clicked.current = true
      select(b.task.id)
    }
  }
  // One function for the drawing's whole life: boxes re-render only when what they show changes.
  const activateNow = useRef(activate)
  activateNow.current = activate
  const onActivate = useCallback((b: Box) => activateNow.current(b), [])
  /** The next match: centred and selected; a match inside a group opens the group first. */
  const findNext = () => {
    if (matchList.length === 0 || !m) return
    const b = matchList[hit % matchList.length]!
    setHit(hit + 1)
    const task = b.members.find((t) => m.tasks.get(t)!.node.toLowerCase().includes(q))!
    if (b.type === "group") setExpanded(new Set([...expanded, b.id]))
    else setFocus({ box: b.id, n: (focus?.n ?? 0) + 1 })
    if (b.type === "external") navigate(href(["tasks", task]))
    else select(task)
  }

  const g = live.data
  if (!g) {
    return (
      <>
        <PageTitle title={`Graph ${id}`}>Graph <span class="muted">{id}</span></PageTitle>
        {live.error ? <ErrorNote error={live.error} /> : <Loading what="the graph" />}
      </>
    )
  }
  const selected = selectedTask !== undefined ? m?.tasks.get(selectedTask) : undefined
  return (
    <>
      <PageTitle title={g.label ?? `Graph ${g.id}`}>
        {g.label ?? "Graph"} <span class="muted id">{g.id}</span>
      </PageTitle>
      <div class="graph-head">
        <StateBadge state={g.state} />
        <span>created <Ago at={g.created_at} now={now} /></span>
        {g.finished_at && <span>finished <Ago at={g.finished_at} now={now} /></span>}
        {m && <Counts m={m} />}
        <CancelGraph g={g} />
      </div>
      <ErrorNote error={live.error} what="Live updates interrupted (retrying)" />
      <ErrorNote error={error} what="Some related tasks could not be loaded" />
      <div class="toolbar" role="toolbar" aria-label="Drawing">
        <form
          class="search"
          role="search"
          onSubmit={(e) => {
            e.preventDefault()
            findNext()
          }}
        >
          <label>
            Find a node{" "}
            <input type="search" value={query} onInput={(e) => {
              setQuery(e.currentTarget.value)
              setHit(0)
            }} placeholder="node name" />
          </label>
          <button type="submit" disabled={matchList.length === 0}>Next match</button>
          <span class="muted" aria-live="polite">{q ? `${matchList.length} match${matchList.length === 1 ? "" : "es"}` : ""}</span>
        </form>
        <span class="zoom">
          <button type="button" aria-label="Zoom in" onClick={() => controls.current?.zoomIn()}>+</button>
          <button type="button" aria-label="Zoom out" onClick={() => controls.current?.zoomOut()}>−</button>
          <button type="button" onClick={() => controls.current?.fit()}>Fit</button>
        </span>
        <label class="inline">
          <input type="checkbox" checked={group} onChange={(e) => {
            setGrouping(e.currentTarget.checked)
            setExpanded(new Set())
          }} /> Group similar tasks
        </label>
        {group && expanded.size > 0 && <button type="button" onClick={() => setExpanded(new Set())}>Regroup</button>}
        <span class="legend" aria-label="Legend">
          <span class="l-input">data</span> <span class="l-resource">resource key</span> <span class="l-waiting">waited on now</span>
        </span>
      </div>
      <div class="graph-area">
        <div class="canvas">
          {drawing && (
            <Drawing
              graphId={g.id}
              drawing={drawing}
              layout={layout}
              tasks={m!.order.length + m!.external.length}
              selected={selectedBox}
              matches={matches}
              focus={focus}
              onActivate={onActivate}
              controls={(c) => (controls.current = c)}
            />
          )}
          {(busy || !layout) && <p class="overlay muted" aria-live="polite">Laying out {drawing?.boxes.length ?? ""} boxes…</p>}
          {layoutError && <p class="error-note">{layoutError}</p>}
        </div>
        {selected && m && (
          <aside class="side" aria-labelledby="selected-heading">
            <h2 id="selected-heading">
              {selected.node}{" "}
              <a class="small" href={href(["tasks", selected.id])}>task page</a>{" "}
              <button type="button" class="small" aria-label="Close the task panel" onClick={() => select(undefined)}>×</button>
            </h2>
            <TaskDetails m={m} t={selected} now={now} linkTo={linkTo} />
          </aside>
        )}
      </div>
      {m ? <TaskTable m={m} now={now} query={query} linkTo={linkTo} /> : <Loading what="the tasks" />}
    </>
  )
}
