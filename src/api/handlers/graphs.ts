import { HttpApiBuilder } from "@effect/platform"
import { Duration, Effect } from "effect"
import { cancelGraph } from "../../engine/cancel.js"
import { submitGraph } from "../../engine/submit.js"
import { graphStamp, listGraphs } from "../../engine/graph-list.js"
import { getGraph, type GraphView } from "../../engine/views.js"
import { CairnApi } from "../definition.js"
import { toApi } from "../engine-errors.js"
import { NotFoundError } from "../errors.js"
import { answerWatched } from "./graph-polls.js"

const graphOr404 = (id: string) =>
  Effect.flatMap(toApi(getGraph(id)), (g) => g ? Effect.succeed(g) : Effect.fail(new NotFoundError({ message: `graph ${id} does not exist` })))

/** The futures whose settlement can change a graph's view: outputs and inputs of its unsettled tasks. */
const watchedFutures = new WeakMap<GraphView, ReadonlySet<string>>()
const futuresOf = (g: GraphView) => {
  let set = watchedFutures.get(g)
  if (!set) {
    const open = Object.values(g.nodes).filter((t) => t.state === "blocked" || t.state === "ready" || t.state === "running")
    set = new Set(open.flatMap((t) => [...Object.values(t.outputs), ...t.inputs]))
    watchedFutures.set(g, set)
  }
  return set
}

export const GraphsLive = HttpApiBuilder.group(CairnApi, "graphs", (h) =>
  h
    .handle("submit", ({ payload }) => toApi(submitGraph(payload)))
    .handle("list", ({ urlParams: q, headers }) =>
      answerWatched({
        read: toApi(listGraphs({ state: q.state, cursor: q.cursor, limit: q.limit ?? 50 })),
        // New graphs are not announced: the tick finds them.
        relevant: (w) => w.futures === "*" || w.futures.length > 0,
        tick: Duration.seconds(2),
        gap: Duration.millis(500)
      }, q.wait, headers["if-none-match"]))
    .handle("get", ({ path, urlParams, headers }) =>
      answerWatched({
        read: graphOr404(path.id),
        stamp: toApi(graphStamp(path.id)),
        relevant: (w, g) => w.futures === "*" || w.futures.some((f) => futuresOf(g).has(f)),
        tick: Duration.seconds(1),
        gap: Duration.millis(250)
      }, urlParams.wait, headers["if-none-match"]))
    .handle("cancel", ({ path }) => toApi(cancelGraph(path.id)).pipe(Effect.zipRight(graphOr404(path.id)))))
