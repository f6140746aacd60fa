/** Small pieces every page uses. */
import type { ComponentChildren, JSX } from "preact"
import { useEffect, useRef } from "preact/hooks"
import type { ApiError } from "./api.js"
import { formatDuration, TASK_GLYPH, type TaskState } from "./dag.js"
import type { Sentence } from "./explain.js"
import { href } from "./route.js"

export type AnyState = TaskState | "pending" | "resolved"

const GLYPH: Record<string, string> = { ...TASK_GLYPH, pending: "◌", resolved: "✔" }

/** A state as a word with a glyph (never colour alone). */
export const StateBadge = ({ state }: { state: string }) => (
  <span class={`badge s-${state}`}>
    <span aria-hidden="true">{GLYPH[state] ?? "•"}</span> {state}
  </span>
)

/** "12s ago", with the exact time on hover and for screen readers' "title". */
export const Ago = ({ at, now }: { at: string | undefined; now: number }) => {
  if (!at) return <span class="muted">—</span>
  const ms = now - Date.parse(at)
  return <time dateTime={at} title={at}>{ms < 1000 ? "just now" : `${formatDuration(ms)} ago`}</time>
}

export const Json = ({ value }: { value: unknown }) => <pre class="json">{JSON.stringify(value, null, 2)}</pre>

export const ErrorNote = ({ error, what }: { error: ApiError | undefined; what?: string }) =>
  error && error.status !== 401
    ? (
      <p class="error-note" role="alert">
        {what ? `${what}: ` : ""}
        {error.message}
      </p>
    )
    : null

export const Loading = ({ what }: { what: string }) => <p class="muted" aria-live="polite">Loading {what}…</p>

export const taskHref = (id: string) => href(["tasks", id])
export const futureHref = (id: string) => href(["futures", id])
export const graphHref = (id: string) => href(["graphs", id])

/** An explanation (./explain.ts) with its tasks as links. */
export const SentenceView = ({ sentence, linkTo = taskHref }: { sentence: Sentence; linkTo?: (task: string) => string }) => (
  <>
    {sentence.map((p, i) =>
      "task" in p
        ? <a key={i} href={linkTo(p.task)} class="task-link">{p.label}</a>
        : "code" in p
        ? <code key={i}>{p.code}</code>
        : <span key={i}>{p.text}</span>
    )}
  </>
)

/** Whether a page was shown already (the first one leaves the focus where the browser put it). */
let shown = false

/**
 * The page's main heading: focused when the user moves to another page, so that a screen reader
 * announces it and keyboard users start from the top of the new content.
 */
export const PageTitle = ({ children, title }: { children: ComponentChildren; title: string }) => {
  const ref = useRef<HTMLHeadingElement>(null)
  useEffect(() => {
    if (shown) ref.current?.focus({ preventScroll: true })
    shown = true
  }, [])
  useEffect(() => {
    document.title = `${title} · cairn`
  }, [title])
  return <h1 tabIndex={-1} ref={ref}>{children}</h1>
}

/**
 * Arrow keys in a list of rows (elements marked data-row): ArrowDown/ArrowUp (or j/k) move the
 * focus to the next/previous row's first link or button (or the row itself when it has none and
 * is focusable), Home/End to the first/last; Enter follows the link as usual.
 */
export const listKeys = (e: JSX.TargetedKeyboardEvent<HTMLElement>) => {
  const keys: Record<string, number | "first" | "last"> = { ArrowDown: 1, j: 1, ArrowUp: -1, k: -1, Home: "first", End: "last" }
  const step = keys[e.key]
  if (step === undefined || e.altKey || e.ctrlKey || e.metaKey) return
  const rows = [...e.currentTarget.querySelectorAll<HTMLElement>("[data-row]")]
  if (rows.length === 0) return
  const at = rows.findIndex((r) => r.contains(document.activeElement))
  const next = step === "first" ? 0 : step === "last" ? rows.length - 1 : Math.max(0, Math.min(rows.length - 1, (at < 0 ? -1 : at) + step))
  e.preventDefault()
  const row = rows[next]!
  ;(row.querySelector<HTMLElement>("a[href], button") ?? row).focus()
}

/** A table that scrolls sideways on a narrow screen instead of overflowing the page. */
export const TableWrap = ({ children, label }: { children: ComponentChildren; label: string }) => (
  <div class="table-wrap" role="region" aria-label={label} tabIndex={0}>
    {children}
  </div>
)

export const bytes = (n: number) =>
  n < 1024 ? `${n} B` : n < 1024 ** 2 ? `${(n / 1024).toFixed(1)} KiB` : n < 1024 ** 3 ? `${(n / 1024 ** 2).toFixed(1)} MiB` : `${(n / 1024 ** 3).toFixed(2)} GiB`

export const shortId = (id: string) => `…${id.slice(-8)}`
