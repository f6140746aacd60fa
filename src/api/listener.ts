/**
 * The HTTP listener of `cairn serve`, as the platform's `HttpServer`: one Node server whose one
 * request handler is the composition of plain Node handlers in front (`FrontHandler`: the content
 * app, ...) and the HttpApi app's own Node handler behind them.
 *
 * Front handlers exist for speed: the HttpApi app's per-request fiber, router, middleware and
 * tracing span cost far more than answering a cached file (see src/content/app/serve.ts). They get
 * the same slow-client protections as the API, since those are the listener's.
 */
import { HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Duration, Effect, Layer } from "effect"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"

export type NodeHandler = (req: IncomingMessage, res: ServerResponse) => void

/** A plain Node request handler for the requests `claims` picks, ahead of the HttpApi app. */
export interface FrontHandler {
  /** Synchronous and cheap: it runs for every request. */
  readonly claims: (req: IncomingMessage) => boolean
  readonly handle: NodeHandler
}

/** The first front handler that claims a request answers it; `rest` answers the others. */
export const inFront = (front: ReadonlyArray<FrontHandler>, rest: NodeHandler): NodeHandler => (req, res) => {
  for (const h of front) if (h.claims(req)) return h.handle(req, res)
  rest(req, res)
}

export interface ListenerOptions<R> {
  readonly port: number
  readonly host: string
  /** A connection must complete its first request's headers within this (slowloris). */
  readonly headersTimeout: Duration.Duration
  /** A socket with no traffic for this long is closed. */
  readonly idleTimeout: Duration.Duration
  readonly front: ReadonlyArray<FrontHandler>
  /**
   * Runs at shutdown once no handler takes new requests, before idle keep-alive connections are
   * closed and the listener closes (which waits for the connections still busy).
   */
  readonly beforeClose: Effect.Effect<void, never, R>
}

/**
 * Slow and idle clients. Headers over 16 KiB get 431 (`maxHeaderSize`). A whole request has no
 * time limit (`requestTimeout: 0`), so a large upload may take as long as it keeps sending.
 * Node's own headersTimeout, combined with a short connectionsCheckingInterval, stops socket
 * timeouts from firing on Node 20; hence the timers here. Returns what marks a connection's
 * first request as arrived.
 */
const createGuardedServer = (headersTimeout: Duration.Duration, idleTimeout: Duration.Duration) => {
  const server = createServer({ requestTimeout: 0, maxHeaderSize: 16 * 1024 })
  const idle = Duration.toMillis(idleTimeout)
  const headers = Duration.toMillis(headersTimeout)
  const served = new WeakSet<object>()
  server.on("connection", (socket) => {
    socket.setTimeout(idle, () => socket.destroy())
    const slow = setTimeout(() => served.has(socket) || socket.destroy(), headers)
    socket.once("close", () => clearTimeout(slow))
  })
  return { server, markServed: (req: IncomingMessage) => void served.add(req.socket) }
}

/** The listener, its handlers installed by `HttpApiBuilder.serve` (or `HttpServer.serve`). */
export const ListenerLive = <R>(options: ListenerOptions<R>) =>
  Layer.merge(
    Layer.scoped(
      HttpServer.HttpServer,
      Effect.gen(function*() {
        const { markServed, server } = createGuardedServer(options.headersTimeout, options.idleTimeout)
        // Listens now; closes the listener when the scope closes.
        const listening = yield* NodeHttpServer.make(() => server, { port: options.port, host: options.host })
        // Finalizers run in reverse order: this one before the listener closes.
        yield* Effect.addFinalizer(() => Effect.zipRight(options.beforeClose, Effect.sync(() => server.closeIdleConnections())))
        return HttpServer.make({
          address: listening.address,
          serve: (app, middleware) =>
            Effect.gen(function*() {
              const api = yield* NodeHttpServer.makeHandler(app, middleware!)
              const handler = inFront(options.front, api)
              const onRequest = (req: IncomingMessage, res: ServerResponse) => {
                markServed(req)
                handler(req, res)
              }
              yield* Effect.acquireRelease(
                Effect.sync(() => server.on("request", onRequest)),
                () => Effect.sync(() => server.off("request", onRequest))
              )
            })
        })
      })
    ),
    NodeHttpServer.layerContext
  )
