/**
 * Wake-ups. Every engine transaction that makes work ready, settles futures or asks for a cancel
 * sends its NOTIFYs once, summarising all of it (never one per row), on three kinds of channel, so
 * that no process is woken for what it does not care about:
 *
 *   `cairn`          API long-polls: `f` = settled future ids (or "*" when too many to list:
 *                    listeners then re-check everything they wait for);
 *   `cairn_work`     every worker runtime: `r` = tasks made ready, for any idle worker, `c` = task
 *                    ids whose cancel was requested (or "*");
 *   `cairn_w_<id>`   one worker runtime: `r` ready tasks it is asked to claim (`w` = [its id]);
 *                    a wake-up for ready work names about as many idle workers as there is work.
 * It is encoded in SQL by `cairn_notify(changes)` (src/engine/sql/cairn_notify.sql), so that a
 * worker settles a task and wakes everyone in one autocommit statement:
 * `SELECT cairn_notify(cairn_resolve(...))`.
 *
 * Other modules send their own notifications on their own channels (the content store:
 * `cairn_content`), with a JSON object as payload; a session announces every channel it listens on
 * as a `Wakeup` with its `channel`, and the fields below read nothing from a payload they do not know.
 */
import { sql } from "drizzle-orm"
import { Effect } from "effect"
import { type Tx, txRows } from "../db/client.js"

/** API long-polls: settled futures. */
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
  /**
   * A task now waits for its retry (cairn_fail, cairn_reap) or another retry is still waiting
   * (cairn_wake_retries): in how many ms the first of them is due, by the database's clock.
   */
  readonly retryInMs?: number | undefined
}

export interface Wakeup {
  /** The channel it came on; undefined for the session's "anything may have changed" after a (re)connect. */
  readonly channel: string | undefined
  readonly ready: number
  readonly futures: ReadonlyArray<string> | "*"
  readonly cancel: ReadonlyArray<string> | "*"
  /** The workers asked to claim the `ready` work; undefined: every worker with a free slot. */
  readonly workers: ReadonlyArray<string> | undefined
}

export const decodeWakeup = (payload: string | undefined, channel?: string): Wakeup => {
  try {
    const o = JSON.parse(payload ?? "{}") as { r?: number; f?: string[] | "*"; c?: string[] | "*"; w?: string[] }
    return { channel, ready: o.r ?? 0, futures: o.f ?? [], cancel: o.c ?? [], workers: Array.isArray(o.w) ? o.w : undefined }
  } catch {
    // An unreadable payload still means "something changed": re-check everything.
    return { channel, ready: 1, futures: "*", cancel: "*", workers: undefined }
  }
}

/** Send the transaction's one NOTIFY (delivered at commit), if anything changed. */
export const notifyChanges = (tx: Tx, c: Changes) =>
  c.ready === 0 && c.futures.length === 0 && (c.cancel ?? []).length === 0
    ? Effect.void
    : Effect.asVoid(txRows(tx, sql`SELECT cairn_notify(${JSON.stringify(c)}::jsonb)`))

/** Read the jsonb a cascade function returned. */
export const toChanges = (j: unknown): Changes => {
  const o = (j ?? {}) as { ready?: number; tasks?: string[]; futures?: string[]; cancel?: string[]; retry_in_ms?: number }
  return { ready: o.ready ?? 0, tasks: o.tasks ?? [], futures: o.futures ?? [], cancel: o.cancel ?? [], retryInMs: o.retry_in_ms }
}
