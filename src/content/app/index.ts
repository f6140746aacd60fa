/**
 * The content app: `GET|HEAD /content/{base_path}/{relative_path}` (and the publication's
 * `PULP_MANIFEST`), outside `/api/v1` and without auth. `ContentRoutes` adds the routes to the
 * HttpApiBuilder router; it needs Db, Session, ArtifactStorage and CairnConfig.
 */
import { HttpApiBuilder } from "@effect/platform"
import { Effect, Layer } from "effect"
import { OnDemandLive } from "./on-demand.js"
import { RoutingTableLive } from "./routing-table.js"
import { makeContentHandler } from "./serve.js"

export const ContentRoutes = HttpApiBuilder.Router.use((router) =>
  Effect.gen(function*() {
    const handler = yield* makeContentHandler
    yield* router.get("/content/*", handler)
    yield* router.head("/content/*", handler)
  })
).pipe(Layer.provide(Layer.merge(RoutingTableLive, OnDemandLive)))
