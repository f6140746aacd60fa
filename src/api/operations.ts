/**
 * The operations endpoints, outside /api/v1 and without auth: `GET /healthz` (can this process
 * reach its database?) and `GET /metrics` (`metrics.ts`).
 */
import { HttpApiBuilder, HttpServerResponse } from "@effect/platform"
import { sql } from "drizzle-orm"
import { Duration, Effect } from "effect"
import { Db } from "../db/client.js"
import { METRICS_CONTENT_TYPE, renderMetrics } from "./metrics.js"
import { FutureWaiters } from "./waiters.js"

export const OperationsRoutes = HttpApiBuilder.Router.use((router) =>
  Effect.gen(function*() {
    const db = yield* Db
    const waiters = yield* FutureWaiters
    const ping = db.rows(sql`SELECT 1`).pipe(Effect.timeout(Duration.seconds(2)), Effect.either)
    yield* router.get(
      "/healthz",
      Effect.flatMap(ping, (r) =>
        r._tag === "Right"
          ? HttpServerResponse.json({ ok: true, db: "ok" })
          : HttpServerResponse.json({ ok: false, db: "unreachable" }, { status: 503 }))
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
