/**
 * The page's calls to cairn's HTTP API (the v1 contract, src/api/definition.ts), with the user's
 * token. Paths are relative to the page (/ui/ -> ../api/v1), so the console also works when cairn
 * is served under a path prefix.
 *
 * The token is entered once and kept in sessionStorage (gone when the tab closes; never sent
 * anywhere but this server's API). A 401 from any call asks for it (`auth.needed`).
 */

export const API = "../api/v1"
/** The content app's root, for links to served files. */
export const CONTENT = "../content"

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown
  ) {
    super(message)
    this.name = "ApiError"
  }
}

// ---- the token ------------------------------------------------------------------------------------

const TOKEN_KEY = "cairn.token"

type Listener = () => void
const listeners = new Set<Listener>()
const emit = () => listeners.forEach((l) => l())

const storage = (): Storage | undefined => {
  try {
    return window.sessionStorage
  } catch {
    return undefined // storage disabled: the token lives as long as the page
  }
}
let memoryToken: string | undefined

export const auth = {
  /** The server refused a request for want of a (valid) token; cleared by setToken. */
  needed: false,
  /** Bumped at every change of token: live views restart with the new one. */
  version: 0,
  token: (): string | undefined => storage()?.getItem(TOKEN_KEY) ?? memoryToken,
  setToken(token: string | undefined) {
    const s = storage()
    if (token) s?.setItem(TOKEN_KEY, token)
    else s?.removeItem(TOKEN_KEY)
    memoryToken = token || undefined
    auth.needed = false
    auth.version++
    emit()
  },
  demand() {
    if (auth.needed) return
    auth.needed = true
    emit()
  },
  subscribe(l: Listener) {
    listeners.add(l)
    return () => void listeners.delete(l)
  }
}

// ---- requests -------------------------------------------------------------------------------------

export interface RequestOptions {
  readonly body?: unknown
  readonly headers?: Record<string, string>
  readonly signal?: AbortSignal
}

/** One API request; fails with an ApiError for anything but 2xx and 304. */
export const request = async (method: string, path: string, o: RequestOptions = {}): Promise<Response> => {
  const token = auth.token()
  let res: Response
  try {
    res = await fetch(`${API}${path}`, {
      method,
      headers: {
        accept: "application/json",
        ...(o.body === undefined ? {} : { "content-type": "application/json" }),
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...o.headers
      },
      body: o.body === undefined ? undefined : typeof o.body === "string" ? o.body : JSON.stringify(o.body),
      cache: "no-store",
      signal: o.signal ?? null
    })
  } catch (e) {
    if (o.signal?.aborted) throw e
    throw new ApiError(0, "unreachable", `cannot reach the cairn server (${(e as Error).message})`)
  }
  if (res.ok || res.status === 304) return res
  const text = await res.text().catch(() => "")
  let code = `http_${res.status}`
  let message = `${method} ${path} answered ${res.status}`
  let details: unknown
  try {
    const body = JSON.parse(text) as { error?: { code?: string; message?: string; details?: unknown } }
    if (body.error?.message) {
      code = body.error.code ?? code
      message = body.error.message
      details = body.error.details
    }
  } catch {
    // not the contract's error body (a proxy's page?): keep the status line
  }
  if (res.status === 401) auth.demand()
  throw new ApiError(res.status, code, message, details)
}

export const getJson = async <T>(path: string, o: RequestOptions = {}): Promise<T> => (await request("GET", path, o)).json() as Promise<T>

export const postJson = async <T>(path: string, body: unknown = {}, o: RequestOptions = {}): Promise<T> =>
  (await request("POST", path, { ...o, body })).json() as Promise<T>

/** A query string from the defined values, "" when there are none. */
export const query = (params: Record<string, string | number | undefined>) => {
  const q = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== "") q.set(k, String(v))
  const s = q.toString()
  return s ? `?${s}` : ""
}

/** A content path (base path and relative path) as a URL, each segment escaped. */
export const contentUrl = (basePath: string, relativePath = "") =>
  `${CONTENT}/${[...basePath.split("/"), ...(relativePath ? relativePath.split("/") : [])].map(encodeURIComponent).join("/")}`
