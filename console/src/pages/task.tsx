/** A task on its own page: followed live through its graph's long-poll (one open request). */
import { useEffect, useState } from "preact/hooks"
import { type ApiError, getJson } from "../api.js"
import { ErrorNote, graphHref, Loading, PageTitle } from "../components.js"
import type { GraphView, TaskView } from "../dag.js"
import { useLive, useNow } from "../live.js"
import { href } from "../route.js"
import { TaskDetails } from "../task-details.js"
import { useModel } from "./graph.js"

export const TaskPage = ({ id }: { id: string }) => {
  const [graphId, setGraphId] = useState<string>()
  const [error, setError] = useState<ApiError>()
  useEffect(() => {
    setGraphId(undefined)
    setError(undefined)
    getJson<TaskView>(`/tasks/${id}`).then((t) => setGraphId(t.graph), setError)
  }, [id])
  const live = useLive<GraphView>(graphId === undefined ? undefined : `/graphs/${graphId}`)
  const { m, error: modelError } = useModel(live, { kind: "task", id })
  const now = useNow()
  const t = m?.tasks.get(id)
  return (
    <>
      <PageTitle title={t ? `Task ${t.node}` : `Task ${id}`}>
        {t ? <>Task {t.node} <span class="muted id">{t.id}</span></> : <>Task <span class="muted id">{id}</span></>}
      </PageTitle>
      <ErrorNote error={error} />
      <ErrorNote error={live.error} what="Live updates interrupted (retrying)" />
      <ErrorNote error={modelError} what="Some related tasks could not be loaded" />
      {t && m
        ? (
          <>
            <p>
              Node <code>{t.node}</code> of graph <a href={graphHref(t.graph)}>{m.graph.label ?? t.graph}</a>{" "}
              (<a href={href(["graphs", t.graph], { task: t.id })}>show it in the drawing</a>)
            </p>
            <TaskDetails m={m} t={t} now={now} />
          </>
        )
        : !error && <Loading what="the task" />}
    </>
  )
}
