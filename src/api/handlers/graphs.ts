import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import { cancelGraph } from "../../engine/cancel.js"
import { submitGraph } from "../../engine/submit.js"
import { getGraph } from "../../engine/views.js"
import { CairnApi } from "../definition.js"
import { toApi } from "../engine-errors.js"
import { NotFoundError } from "../errors.js"

const graphOr404 = (id: string) =>
  Effect.flatMap(toApi(getGraph(id)), (g) => g ? Effect.succeed(g) : Effect.fail(new NotFoundError({ message: `graph ${id} does not exist` })))

export const GraphsLive = HttpApiBuilder.group(CairnApi, "graphs", (h) =>
  h
    .handle("submit", ({ payload }) => toApi(submitGraph(payload)))
    .handle("get", ({ path }) => graphOr404(path.id))
    .handle("cancel", ({ path }) => toApi(cancelGraph(path.id)).pipe(Effect.zipRight(graphOr404(path.id)))))
