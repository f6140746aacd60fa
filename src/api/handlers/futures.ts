/**
 * GET /futures/{id}?wait=N: the long-poll. The waiter is registered *before* the row is read, so a
 * settlement that commits between the read and the wait still wakes us. The etag is the state (a
 * settled future never changes again); `if-none-match` with the current etag answers 304. A client
 * address holds at most CAIRN_LONG_POLLS_PER_CLIENT long-polls at once (429 past that).
 */
import { HttpApiBuilder, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Effect } from "effect"
import { getFuture } from "../../engine/views.js"
import { CairnApi } from "../definition.js"
import { toApi } from "../engine-errors.js"
import { NotFoundError } from "../errors.js"
import { asLongPoll, awaitOrTimeout, FutureWaiters } from "../waiters.js"

const etagOf = (state: string) => `"${state}"`

export const FuturesLive = HttpApiBuilder.group(CairnApi, "futures", (h) =>
  h.handle("get", ({ path, urlParams }) =>
    Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const waiters = yield* FutureWaiters
      const wait = urlParams.wait ?? 0
      const read = Effect.flatMap(
        toApi(getFuture(path.id)),
        (f) => f ? Effect.succeed(f) : Effect.fail(new NotFoundError({ message: `future ${path.id} does not exist` }))
      )
      const f = wait === 0
        ? yield* read
        : yield* asLongPoll(
          Effect.acquireUseRelease(
            waiters.register(path.id),
            (d) =>
              Effect.gen(function*() {
                const first = yield* read
                if (first.state !== "pending") return first
                yield* awaitOrTimeout(d, wait)
                return yield* read
              }),
            (d) => waiters.unregister(path.id, d)
          )
        )
      const etag = etagOf(f.state)
      if (request.headers["if-none-match"] === etag) return HttpServerResponse.empty({ status: 304, headers: { etag } })
      return yield* HttpServerResponse.json(f, { headers: { etag } }).pipe(Effect.orDie)
    }))
)
