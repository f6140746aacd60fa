/** The contract as a client on the frontend network sees it, and the database as an operator does. */
import type pg from "pg"

export interface Reply {
  readonly status: number
  readonly body: any
  readonly headers: Headers
}

export const call = async (base: string, method: string, path: string, body?: unknown, timeoutMs = 120_000): Promise<Reply> => {
  const res = await fetch(base + path, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs)
  })
  const text = await res.text()
  let json: unknown
  try {
    json = text === "" ? undefined : JSON.parse(text)
  } catch {
    json = text
  }
  return { status: res.status, body: json, headers: res.headers }
}

export const get = (base: string, path: string) => call(base, "GET", path)
export const post = (base: string, path: string, body: unknown) => call(base, "POST", path, body)

/** Long-polls a future on `base` until it settles (bounded). */
export const settled = async (base: string, future: string, timeoutMs = 180_000) => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const r = await get(base, `/api/v1/futures/${future}?wait=20`)
    if (r.status === 200 && r.body.state !== "pending") return r.body
    if (Date.now() > deadline) throw new Error(`future ${future} still ${JSON.stringify(r.body)} after ${timeoutMs} ms`)
  }
}

/** Polls until a value comes (bounded); for state read from the database. */
export { until } from "../../support/processes.js"

export interface TaskRow {
  readonly id: string
  readonly state: string
  readonly attempts: number
  readonly worker_id: string | null
  readonly worker_pid: number | null
}

/** A task's state, attempt and the pid of the worker process running (or last running) it. */
export const taskRow = async (db: pg.Pool, id: string): Promise<TaskRow> =>
  (await db.query<TaskRow>(
    `SELECT t.id, t.state, t.attempts, t.worker_id, w.pid AS worker_pid
     FROM tasks t LEFT JOIN workers w ON w.id = t.worker_id WHERE t.id = $1`,
    [id]
  )).rows[0]!
