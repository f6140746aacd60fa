/**
 * The operations endpoints, outside /api/v1 and without auth: `GET /healthz` (can this process
 * reach its database and its artifact store? 503 naming what is not reachable) and `GET /metrics`
 * (`metrics.ts`).
 */
import { HttpApiBuilder, HttpServerResponse } from "@effect/platform"
import { sql } from "drizzle-orm"
import { Duration, Effect } from "effect"
import { ArtifactStorage } from "../content/storage.js"
import { Db } from "../db/client.js"
import { METRICS_CONTENT_TYPE, renderMetrics } from "./metrics.js"
import { FutureWaiters } from "./waiters.js"

export const OperationsRoutes = HttpApiBuilder.Router.use((router) =>
  Effect.gen(function*() {
    const db = yield* Db
    const waiters = yield* FutureWaiters
    const storage = yield* ArtifactStorage
    const ping = db.rows(sql`SELECT 1`).pipe(Effect.timeout(Duration.seconds(2)), Effect.either)
    // The store's own sentence (credentials are never in it) tells an operator what is wrong.
    const storageCheck = storage.check.pipe(
      Effect.timeoutFail({ duration: Duration.seconds(2), onTimeout: () => ({ message: "no answer within 2 s" }) }),
      Effect.match({ onFailure: (e) => `unreachable: ${e.message}`, onSuccess: () => "ok" })
    )
    yield* router.get(
      "/healthz",
      Effect.flatMap(Effect.all([ping, storageCheck], { concurrency: 2 }), ([db, storage]) => {
        const dbState = db._tag === "Right" ? "ok" : "unreachable"
        const ok = dbState === "ok" && storage === "ok"
        return HttpServerResponse.json({ ok, db: dbState, storage }, { status: ok ? 200 : 503 })
      })
    )
    yield* router.get(
      "/metrics",
      renderMetrics.pipe(
        Effect.provideService(Db, db),
        Effect.provideService(FutureWaiters, waiters),
        Effect.map((text) => HttpServerResponse.text(text, { contentType: METRICS_CONTENT_TYPE }))
      )
    )
  })
)
