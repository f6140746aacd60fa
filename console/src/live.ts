/**
 * Live data for a page, with one open request at a time:
 *
 * - `useLive(path)`: a long-poll loop on an endpoint that takes `?wait=` and `if-none-match`
 *   (GET /graphs, GET /graphs/{id}): the first request answers at once, each next one is held by
 *   the server until the answer differs from the last one (or 30 s pass: 304, ask again). Two
 *   answers are at least MIN_GAP_MS apart, so that a graph that changes all the time costs one
 *   request per MIN_GAP_MS, not a stream of them.
 * - `usePolled(path, ms)`: for an endpoint with no long-poll (GET /workers, whose heartbeats move
 *   every few seconds anyway): one request every `ms`.
 *
 * After a failure both retry with a growing pause (1 s, 2 s, ... 30 s); after a 401 they wait for
 * a new token (auth.version).
 */
import { useEffect, useState } from "preact/hooks"
import { ApiError, auth, request } from "./api.js"

export interface Live<T> {
  readonly data?: T | undefined
  readonly error?: ApiError | undefined
  /** When the last answer came (ms since epoch). */
  readonly at?: number | undefined
}

const WAIT_SECONDS = 30
const MIN_GAP_MS = 750

const pause = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms)
    signal.addEventListener("abort", () => {
      clearTimeout(t)
      resolve()
    })
  })

/** Re-render when the token changes or the server asks for one. */
export const useAuthVersion = () => {
  const [, set] = useState(0)
  useEffect(() => auth.subscribe(() => set((n) => n + 1)), [])
  return auth.version
}

const useLoop = <T>(path: string | undefined, step: (signal: AbortSignal, etag: string | undefined) => Promise<{ res: Response; wait: number }>) => {
  const [state, setState] = useState<Live<T>>({})
  const version = useAuthVersion()
  useEffect(() => {
    setState({})
    if (path === undefined) return
    const ctrl = new AbortController()
    const signal = ctrl.signal
    ;(async () => {
      let etag: string | undefined
      let failures = 0
      let last = 0
      while (!signal.aborted) {
        try {
          const { res, wait } = await step(signal, etag)
          failures = 0
          if (res.status === 200) {
            etag = res.headers.get("etag") ?? undefined
            const data = (await res.json()) as T
            if (signal.aborted) return
            setState({ data, at: Date.now() })
            const gap = Math.max(wait, last + MIN_GAP_MS - Date.now())
            last = Date.now()
            if (gap > 0) await pause(gap, signal)
          }
        } catch (e) {
          if (signal.aborted) return
          const error = e instanceof ApiError ? e : new ApiError(0, "error", String((e as Error)?.message ?? e))
          setState((s) => ({ ...s, error }))
          // A refused token: stop until another one is given (this effect then restarts).
          if (error.status === 401) return
          failures++
          await pause(Math.min(30_000, 1000 * 2 ** (failures - 1)), signal)
        }
      }
    })()
    return () => ctrl.abort()
  }, [path, version])
  return state
}

/** `path` (no `wait` in it) followed live by long-polls. */
export const useLive = <T>(path: string | undefined): Live<T> =>
  useLoop<T>(path, async (signal, etag) => {
    const sep = path!.includes("?") ? "&" : "?"
    const res = await request("GET", etag === undefined ? path! : `${path}${sep}wait=${WAIT_SECONDS}`, {
      signal,
      headers: etag === undefined ? {} : { "if-none-match": etag }
    })
    return { res, wait: 0 }
  })

/** `path` fetched every `ms`. */
export const usePolled = <T>(path: string | undefined, ms: number): Live<T> =>
  useLoop<T>(path, async (signal) => ({ res: await request("GET", path!, { signal }), wait: ms }))

/** A value that changes every `ms`, to redraw relative times ("12s ago"). */
export const useNow = (ms = 1000) => {
  const [now, setNow] = useState(Date.now())
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms)
    return () => clearInterval(t)
  }, [ms])
  return now
}

/** `path` fetched once (again on `reload()`, or when the token changes). */
export const useFetched = <T>(path: string | undefined): Live<T> & { readonly reload: () => void } => {
  const [state, setState] = useState<Live<T>>({})
  const [n, setN] = useState(0)
  const version = useAuthVersion()
  useEffect(() => {
    if (path === undefined) return setState({})
    const ctrl = new AbortController()
    request("GET", path, { signal: ctrl.signal })
      .then((r) => r.json() as Promise<T>)
      .then(
        (data) => setState({ data, at: Date.now() }),
        (e: unknown) => ctrl.signal.aborted || setState({ error: e instanceof ApiError ? e : new ApiError(0, "error", String(e)) })
      )
    return () => ctrl.abort()
  }, [path, n, version])
  return { ...state, reload: () => setN((x) => x + 1) }
}
