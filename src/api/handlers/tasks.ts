import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import { cancelTask } from "../../engine/cancel.js"
import { getTask, listTasks } from "../../engine/views.js"
import { CairnApi } from "../definition.js"
import { toApi } from "../engine-errors.js"
import { NotFoundError } from "../errors.js"

const taskOr404 = (id: string) =>
  Effect.flatMap(toApi(getTask(id)), (t) => t ? Effect.succeed(t) : Effect.fail(new NotFoundError({ message: `task ${id} does not exist` })))

export const TasksLive = HttpApiBuilder.group(CairnApi, "tasks", (h) =>
  h
    .handle("list", ({ urlParams: q }) =>
      toApi(listTasks({ graph: q.graph, state: q.state, task: q.task, cursor: q.cursor, limit: q.limit ?? 100 })))
    .handle("get", ({ path }) => taskOr404(path.id))
    .handle("cancel", ({ path }) => toApi(cancelTask(path.id)).pipe(Effect.zipRight(taskOr404(path.id)))))
