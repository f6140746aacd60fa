/**
 * `cairn serve`'s HTTP side, composed: the v1 API (HttpApi, its OpenAPI document), the operations
 * endpoints (`operations.ts`), and plain Node handlers in front of them (the content app), on one
 * listener (`listener.ts`). Everything here is a Layer; `ServerLive` needs Db, Session, TaskKinds,
 * ArtifactStorage, CairnConfig.
 */
import { HttpApiBuilder, HttpServer } from "@effect/platform"
import { Context, Duration, Effect, Layer } from "effect"
import { CairnConfig } from "../config/config.js"
import { announceListening, isApiProcess } from "../main/api-cluster.js"
import { isConsoleRequest, serveConsole } from "../console/serve.js"
import { ContentApp, ContentAppLive, isContentRequest } from "../content/app/index.js"
import { AuthorizationLive } from "./auth-live.js"
import { ContractErrors } from "./contract-errors.js"
import { CairnApi } from "./definition.js"
import { FuturesLive } from "./handlers/futures.js"
import { GraphsLive } from "./handlers/graphs.js"
import { DistributionsLive, RemotesLive, RepositoriesLive } from "./handlers/named.js"
import { SchedulesLive } from "./handlers/schedules.js"
import { TasksLive } from "./handlers/tasks.js"
import { UploadsLive } from "./handlers/uploads.js"
import { WorkersLive } from "./handlers/workers.js"
import { type FrontHandler, ListenerLive } from "./listener.js"
import { OperationsRoutes } from "./operations.js"
import { withRetryAfter } from "./retry-after.js"
import { FutureWaiters, FutureWaitersLive } from "./waiters.js"

export { AuthorizationLive } from "./auth-live.js"

export const ApiLive = HttpApiBuilder.api(CairnApi).pipe(
  Layer.provide([GraphsLive, TasksLive, FuturesLive, WorkersLive, RepositoriesLive, RemotesLive, DistributionsLive, SchedulesLive, UploadsLive]),
  Layer.provide(AuthorizationLive)
)

/**
 * At shutdown, once no new request is taken: every waiting long-poll answers with its current
 * state, and gets a moment to be written, so that its connection is idle when idle connections
 * are closed and closing the listener does not wait for it.
 */
const answerLongPolls = Effect.flatMap(FutureWaiters, (waiters) => waiters.wakeAll).pipe(
  Effect.zipRight(Effect.sleep(Duration.millis(50)))
)

export const ServerLive = Layer.unwrapEffect(
  Effect.gen(function*() {
    const config = yield* CairnConfig
    // Plain Node handlers answering their own requests ahead of the HttpApi app; the first that
    // claims a request answers it.
    const front: ReadonlyArray<FrontHandler> = [
      { claims: isContentRequest, handle: yield* ContentApp },
      { claims: isConsoleRequest, handle: (req, res) => void serveConsole(req, res) }
    ]
    const listener = ListenerLive({
      port: config.port,
      host: config.host,
      headersTimeout: config.httpHeadersTimeout,
      // Longer than the longest long-poll (60 s).
      idleTimeout: config.httpIdleTimeout,
      front,
      beforeClose: answerLongPolls
    })
    return HttpApiBuilder.serve(withRetryAfter).pipe(
      Layer.provide(HttpApiBuilder.middlewareOpenApi({ path: "/api/v1/openapi.json" })),
      Layer.provide(OperationsRoutes),
      Layer.provide(ContractErrors.pipe(Layer.provide(AuthorizationLive))),
      Layer.provide(ApiLive),
      Layer.provideMerge(listener),
      Layer.provideMerge(FutureWaitersLive),
      // The contract's start-up line, once requests are handled (PORT=0 logs the chosen port):
      // `serve` has installed its handler by the time its layer is built. An API process of a
      // cluster tells the primary instead, which prints it once all of them listen.
      Layer.tap((context) =>
        Effect.sync(() => {
          const addr = Context.get(context, HttpServer.HttpServer).address
          if (addr._tag !== "TcpAddress") return
          const url = `http://${addr.hostname}:${addr.port}`
          if (isApiProcess()) announceListening(url)
          else console.log(`cairn listening on ${url}`)
        })
      )
    )
  })
).pipe(Layer.provide(ContentAppLive))
