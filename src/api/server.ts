/**
 * The HTTP server: the v1 API (HttpApi), its OpenAPI document, /healthz and /metrics, on one Node
 * HTTP listener, plus the content app, which answers its requests before the HttpApi app sees
 * them. Everything here is a Layer; `ServerLive` needs Db, Session, TaskKinds, ArtifactStorage,
 * CairnConfig.
 */
import {
  HttpApiBuilder,
  HttpApiError,
  HttpApp,
  HttpMethod,
  HttpServer,
  HttpServerError,
  HttpServerRequest,
  HttpServerResponse
} from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { sql } from "drizzle-orm"
import { Cause, Context, Duration, Effect, Layer, Redacted } from "effect"
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import { timingSafeEqual, createHash } from "node:crypto"
import { CairnConfig } from "../config/config.js"
import { ContentApp, ContentAppLive, isContentRequest } from "../content/app/index.js"
import { isConsoleRequest, serveConsole } from "../console/serve.js"
import { Db } from "../db/client.js"
import { Authorization } from "./auth.js"
import { CairnApi } from "./definition.js"
import { BadRequest, NotFoundError, Unauthorized } from "./errors.js"
import { FuturesLive } from "./handlers/futures.js"
import { GraphsLive } from "./handlers/graphs.js"
import { TasksLive } from "./handlers/tasks.js"
import { UploadsLive } from "./handlers/uploads.js"
import { DistributionsLive, RemotesLive, RepositoriesLive } from "./handlers/named.js"
import { WorkersLive } from "./handlers/workers.js"
import { renderPrometheus } from "./prometheus.js"
import { limitBody } from "./request-body.js"
import { FutureWaiters, FutureWaitersLive } from "./waiters.js"

/**
 * Tokens are compared as SHA-256 digests with timingSafeEqual: constant time whatever the length
 * of the presented token, and every configured token is compared (no early exit on a match).
 */
export const AuthorizationLive = Layer.effect(
  Authorization,
  Effect.gen(function*() {
    const config = yield* CairnConfig
    const digest = (s: string) => createHash("sha256").update(s).digest()
    const tokens = config.apiTokens.map((t) => digest(Redacted.value(t)))
    if (tokens.length === 0) yield* Effect.logWarning("no CAIRN_API_TOKENS configured: the API is open to anyone who can reach it")
    return {
      // The platform hands over the header minus its first 7 characters, whatever they were: the
      // scheme is checked here ("Token: <token>" is not "Bearer <token>").
      bearer: (presented: Redacted.Redacted<string>) =>
        Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
          if (tokens.length === 0) return Effect.void
          const p = digest(Redacted.value(presented))
          let ok = false
          for (const t of tokens) ok = timingSafeEqual(p, t) || ok
          ok = ok && /^bearer /i.test(request.headers["authorization"] ?? "")
          return ok ? Effect.void : Effect.fail(new Unauthorized({ message: "a valid bearer token is required (authorization: Bearer <token>)" }))
        })
    }
  })
)

/**
 * Decode failures, unreadable bodies and unknown routes get the contract's error body instead of
 * the platform's defaults. (The router's static error type is `never`; these arrive at run time.)
 * An unknown route under /api/v1 needs a token like any other (401 before 404).
 */
const toContractError = (e: unknown, auth: Context.Tag.Service<Authorization>): Effect.Effect<never, unknown> => {
  if (e instanceof HttpApiError.HttpApiDecodeError) {
    const issues = e.issues.map((i) => ({ path: i.path.map(String).join("."), message: i.message }))
    // Keyed by client-chosen node names: no prototype.
    const nodes: Record<string, Array<string>> = Object.create(null)
    for (const i of e.issues) {
      if (i.path[0] === "nodes" && i.path.length > 1) {
        ;(nodes[String(i.path[1])] ??= []).push(`${i.path.slice(2).map(String).join(".") || "node"}: ${i.message}`)
      }
    }
    const first = issues[0]
    return Effect.fail(new BadRequest({
      message: first ? `invalid request: ${first.path ? `${first.path}: ` : ""}${first.message}` : e.message,
      details: Object.keys(nodes).length > 0 ? { issues, nodes } : { issues }
    }))
  }
  if (HttpServerError.isServerError(e) && e._tag === "RequestError") {
    return Effect.fail(new BadRequest({ message: `the request body could not be read as JSON${e.description ? `: ${e.description}` : ""}` }))
  }
  if (HttpServerError.isServerError(e) && e._tag === "RouteNotFound") {
    const notFound = Effect.fail(new NotFoundError({ message: `no route for ${e.request.method} ${e.request.url}` }))
    const path = e.request.url.split("?")[0]!
    if (path !== "/api/v1" && !path.startsWith("/api/v1/")) return notFound
    // What HttpApiSecurity.bearer hands the Authorization middleware.
    const token = Redacted.make((e.request.headers["authorization"] ?? "").slice("Bearer ".length))
    // The check's one requirement, the request, is in this request's context.
    return Effect.zipRight(auth.bearer(token) as Effect.Effect<void, unknown>, notFound)
  }
  return Effect.fail(e)
}

/**
 * Every request's body, if an endpoint reads one, goes through `limitBody` (JSON only, size and
 * depth limits, strict UTF-8); every failure gets the contract's body.
 */
const ContractErrors = HttpApiBuilder.middleware(
  CairnApi,
  Effect.gen(function*() {
    const config = yield* CairnConfig
    const auth = yield* Authorization
    return (app: HttpApp.Default) =>
      Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
        HttpMethod.hasBody(request.method)
          ? Effect.provideService(app, HttpServerRequest.HttpServerRequest, limitBody(request, config.bodyMaxBytes))
          : app).pipe(
          Effect.catchAllCause(
            // Some of these arrive as defects (an unreadable or refused body), so look at the whole cause.
            (cause) => Cause.isInterruptedOnly(cause) ? Effect.failCause(cause) : toContractError(Cause.squash(cause), auth)
          )
        ) as unknown as typeof app
  })
)

const OperationsRoutes = HttpApiBuilder.Router.use((router) =>
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
      Effect.gen(function*() {
        // Whole-table counts: one sequential scan each per scrape (fine up to millions of rows at
        // a 15 s scrape interval; see DESIGN.md "Observability").
        const tasks = yield* db.rows<{ kind: string; state: string; n: number }>(
          sql`SELECT kind, state, count(*)::int AS n FROM tasks GROUP BY kind, state`
        ).pipe(Effect.orElseSucceed(() => []))
        const futures = yield* db.rows<{ state: string; n: number }>(
          sql`SELECT state, count(*)::int AS n FROM futures GROUP BY state`
        ).pipe(Effect.orElseSucceed(() => []))
        const [alive] = yield* db.rows<{ n: number }>(sql`SELECT count(*)::int AS n FROM workers`).pipe(
          Effect.orElseSucceed(() => [{ n: 0 }])
        )
        const pool = db.pool
        return HttpServerResponse.text(
          renderPrometheus([
            { name: "cairn_tasks", help: "Tasks by kind and state", samples: tasks.map((t) => ({ labels: { kind: t.kind, state: t.state }, value: t.n })) },
            {
              name: "cairn_ready_queue_depth",
              help: "Tasks ready and waiting for a worker",
              samples: [{ value: tasks.filter((t) => t.state === "ready").reduce((n, t) => n + t.n, 0) }]
            },
            { name: "cairn_futures", help: "Futures by state", samples: futures.map((f) => ({ labels: { state: f.state }, value: f.n })) },
            { name: "cairn_workers_alive", help: "Registered live workers", samples: [{ value: alive?.n ?? 0 }] },
            { name: "cairn_long_polls", help: "Long-polls waiting in this process", samples: [{ value: yield* waiters.size }] },
            {
              name: "cairn_db_pool_connections",
              help: "This process's database pool",
              samples: [
                { labels: { state: "total" }, value: pool.totalCount },
                { labels: { state: "idle" }, value: pool.idleCount },
                { labels: { state: "waiting" }, value: pool.waitingCount }
              ]
            }
          ]),
          { contentType: "text/plain; version=0.0.4" }
        )
      })
    )
  })
)

/**
 * `Retry-After` on the refusals that ask the client to come back: 429 (its long-polls are at the
 * per-client limit; one answers within a minute at most, usually sooner) and 503 (the database is
 * away; the server reconnects by itself). A pre-response handler, because the server writes the
 * response (errors included, encoded with the contract's body) before a serve middleware returns.
 */
const RETRY_AFTER_SECONDS: Partial<Record<number, string>> = { 429: "1", 503: "2" }

const withRetryAfter = (app: HttpApp.Default): HttpApp.Default =>
  HttpApp.withPreResponseHandler(app, (_request, response) => {
    const seconds = RETRY_AFTER_SECONDS[response.status]
    return Effect.succeed(seconds === undefined ? response : HttpServerResponse.setHeader(response, "retry-after", seconds))
  })

export const ApiLive = HttpApiBuilder.api(CairnApi).pipe(
  Layer.provide([GraphsLive, TasksLive, FuturesLive, WorkersLive, RepositoriesLive, RemotesLive, DistributionsLive, UploadsLive]),
  Layer.provide(AuthorizationLive)
)

/**
 * The listener's end: at shutdown, before the listener closes (finalizers run in reverse), answers every waiting
 * long-poll with its current state and closes idle keep-alive connections, so that closing does not
 * wait for them.
 */
const lifecycle = (nodeServer: () => Server | undefined) =>
  Layer.scopedDiscard(
    Effect.gen(function*() {
      const waiters = yield* FutureWaiters
      yield* Effect.addFinalizer(() =>
        waiters.wakeAll.pipe(
          Effect.zipRight(Effect.sleep(Duration.millis(50))),
          Effect.zipRight(Effect.sync(() => nodeServer()?.closeIdleConnections()))
        )
      )
    })
  )

/**
 * Content requests skip the HttpApi app: its per-request fiber, router, middleware and tracing
 * span cost far more than answering a cached file (see src/content/app/serve.ts). The platform
 * registers the app as the server's "request" listener, so the content app goes in front of every
 * listener by intercepting the event itself.
 */
const contentFirst = (server: Server, content: (req: IncomingMessage, res: ServerResponse) => void) => {
  const emit = server.emit
  // `arguments`, not rest parameters: this runs for every request, and V8 passes `arguments`
  // through `apply` without building an array.
  server.emit = function(this: Server, event: string | symbol, req?: IncomingMessage, res?: ServerResponse) {
    if (event === "request" && (isContentRequest(req!) || isConsoleRequest(req!))) {
      content(req!, res!)
      return true
    }
    return emit.apply(this, arguments as unknown as Parameters<typeof emit>)
  } as typeof server.emit
}

export const ServerLive = Layer.unwrapEffect(
  Effect.gen(function*() {
    const config = yield* CairnConfig
    const content = yield* ContentApp
    let nodeServer: Server | undefined
    // Slow and idle clients. A connection must complete its first request's headers within
    // `httpHeadersTimeout` (slowloris), and a socket with no traffic for `httpIdleTimeout` is closed
    // (longer than the longest long-poll, 60 s). Headers over 16 KiB get 431. A whole request has no
    // time limit, so a large upload may take as long as it keeps sending. (Node's own
    // headersTimeout, combined with a short connectionsCheckingInterval, stops socket timeouts
    // from firing on Node 20; hence the timers here.)
    const create = () => {
      const server = createServer({ requestTimeout: 0, maxHeaderSize: 16 * 1024 })
      const idle = Duration.toMillis(config.httpIdleTimeout)
      const headers = Duration.toMillis(config.httpHeadersTimeout)
      const served = new WeakSet<object>()
      server.on("request", (req) => served.add(req.socket))
      contentFirst(server, (req, res) => {
        served.add(req.socket)
        if (!serveConsole(req, res)) content(req, res)
      })
      server.on("connection", (socket) => {
        socket.setTimeout(idle, () => socket.destroy())
        const slow = setTimeout(() => served.has(socket) || socket.destroy(), headers)
        socket.once("close", () => clearTimeout(slow))
      })
      return (nodeServer = server)
    }
    return HttpApiBuilder.serve(withRetryAfter).pipe(
      Layer.provide(HttpApiBuilder.middlewareOpenApi({ path: "/api/v1/openapi.json" })),
      Layer.provide(OperationsRoutes),
      Layer.provide(ContractErrors.pipe(Layer.provide(AuthorizationLive))),
      Layer.provide(ApiLive),
      Layer.provideMerge(lifecycle(() => nodeServer)),
      Layer.provideMerge(FutureWaitersLive),
      Layer.provideMerge(NodeHttpServer.layer(create, { port: config.port, host: config.host })),
      // The contract's start-up line, once requests are handled (PORT=0 logs the chosen port):
      // `serve` has installed its handler by the time its layer is built.
      Layer.tap((context) =>
        Effect.sync(() => {
          const addr = Context.get(context, HttpServer.HttpServer).address
          if (addr._tag === "TcpAddress") console.log(`cairn listening on http://${addr.hostname}:${addr.port}`)
        })
      )
    )
  })
).pipe(Layer.provide(ContentAppLive))
