/**
 * Wake-ups. Every engine transaction that makes work ready, settles futures or asks for a cancel
 * sends its NOTIFYs once, summarising all of it (never one per row), on three kinds of channel, so
 * that no process is woken for what it does not care about:
 *
 *   `cairn`          API long-polls and content apps: `f` = settled future ids (or "*" when too
 *                    many to list: listeners then re-check everything they wait for), `d` = 1 when
 *                    distributions changed (content apps reload their routes);
 *   `cairn_work`     every worker runtime: `r` = tasks made ready, for any idle worker, `c` = task
 *                    ids whose cancel was requested (or "*");
 *   `cairn_w_<id>`   one worker runtime: `r` ready tasks it is asked to claim (`w` = [its id]);
 *                    a wake-up for ready work names about as many idle workers as there is work
 *                    (drizzle/0009_targeted_wakeups.sql, 0010_wakeup_channels.sql).
 * It is encoded in SQL by `cairn_notify(changes)` (drizzle/0005_engine_tuning.sql), so that a
 * worker settles a task and wakes everyone in one autocommit statement:
 * `SELECT cairn_notify(cairn_resolve(...))`.
 */
import { sql } from "drizzle-orm"
import { Effect } from "effect"
import { type Tx, txRows } from "../db/client.js"

/** API long-polls and content apps: settled futures and distribution changes. */
export const CLIENTS_CHANNEL = "cairn"
/** Every worker runtime: ready work for whoever is idle, cancel requests. */
export const WORKERS_CHANNEL = "cairn_work"
/** One worker runtime: ready work it is asked to claim (as cairn_notify names the channel). */
export const workerChannel = (workerId: string) => `cairn_w_${workerId.toLowerCase()}`

/** What a cascade function (cairn_settle_cascade and friends) reports. */
export interface Changes {
  readonly ready: number
  readonly tasks: ReadonlyArray<string>
  readonly futures: ReadonlyArray<string>
  readonly cancel?: ReadonlyArray<string> | undefined
  /** A distribution was created, changed or deleted (content apps reload their routing table). */
  readonly distributions?: boolean | undefined
}

export interface Wakeup {
  readonly ready: number
  readonly futures: ReadonlyArray<string> | "*"
  readonly cancel: ReadonlyArray<string> | "*"
  readonly distributions: boolean
  /** The workers asked to claim the `ready` work; undefined: every worker with a free slot. */
  readonly workers: ReadonlyArray<string> | undefined
}

export const decodeWakeup = (payload: string | undefined): Wakeup => {
  try {
    const o = JSON.parse(payload ?? "{}") as { r?: number; f?: string[] | "*"; c?: string[] | "*"; d?: number; w?: string[] }
    return { ready: o.r ?? 0, futures: o.f ?? [], cancel: o.c ?? [], distributions: o.d === 1, workers: Array.isArray(o.w) ? o.w : undefined }
  } catch {
    // An unreadable payload still means "something changed": re-check everything.
    return { ready: 1, futures: "*", cancel: "*", distributions: true, workers: undefined }
  }
}

/** Send the transaction's one NOTIFY (delivered at commit), if anything changed. */
export const notifyChanges = (tx: Tx, c: Changes) =>
  c.ready === 0 && c.futures.length === 0 && (c.cancel ?? []).length === 0 && !c.distributions
    ? Effect.void
    : Effect.asVoid(txRows(tx, sql`SELECT cairn_notify(${JSON.stringify(c)}::jsonb)`))

/** Read the jsonb a cascade function returned. */
export const toChanges = (j: unknown): Changes => {
  const o = (j ?? {}) as { ready?: number; tasks?: string[]; futures?: string[]; cancel?: string[] }
  return { ready: o.ready ?? 0, tasks: o.tasks ?? [], futures: o.futures ?? [], cancel: o.cancel ?? [] }
}
