/**
 * The HTTP API as a `Source`: GET /api/v1/{graphs,tasks,futures}/:id with an optional bearer token.
 * 404 means "no such object"; anything else that is not 200 is a problem worth one sentence.
 */
import { DagError, type FutureView, type GraphView, type Source, type TaskView } from "./model.js"

export interface HttpSourceOptions {
  readonly baseUrl: string
  readonly token?: string | undefined
  readonly timeoutMs?: number
}

export const httpSource = (opts: HttpSourceOptions): Source => {
  const base = opts.baseUrl.replace(/\/+$/, "")
  const get = async <A>(path: string): Promise<A | undefined> => {
    const url = `${base}/api/v1/${path}`
    let res: Response
    try {
      res = await fetch(url, {
        headers: { accept: "application/json", ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}) },
        signal: AbortSignal.timeout(opts.timeoutMs ?? 15_000)
      })
    } catch (e) {
      const err = e as Error & { cause?: { code?: string; message?: string } }
      const why = err.name === "TimeoutError" ? "it did not answer in time" : (err.cause?.code ?? err.cause?.message ?? err.message)
      throw new DagError(`cannot reach the cairn server at ${base} (${why}); start it or set CAIRN_URL`)
    }
    if (res.status === 404) {
      await res.body?.cancel()
      return undefined
    }
    const text = await res.text()
    if (res.status === 401) {
      throw new DagError(
        `the cairn server at ${base} wants an API token: ${opts.token ? "CAIRN_TOKEN was rejected" : "set CAIRN_TOKEN"}`
      )
    }
    if (!res.ok) {
      let message = text.slice(0, 300)
      try {
        const body = JSON.parse(text) as { error?: { message?: string } }
        if (body.error?.message) message = body.error.message
      } catch {
        // not JSON: keep the text
      }
      throw new DagError(`GET ${url} answered ${res.status}: ${message}`)
    }
    try {
      return JSON.parse(text) as A
    } catch {
      throw new DagError(`GET ${url} answered 200 with something that is not JSON; is ${base} a cairn server?`)
    }
  }
  return {
    name: base,
    getGraph: (id) => get<GraphView>(`graphs/${id}`),
    getTask: (id) => get<TaskView>(`tasks/${id}`),
    getFuture: (id) => get<FutureView>(`futures/${id}`),
    close: async () => undefined
  }
}
