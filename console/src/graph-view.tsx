/**
 * The drawing of a graph: boxes coloured by state (and marked by a glyph, never colour alone),
 * arrows labelled with the output they carry; resource-key arrows are dashed and purple, an arrow
 * a task waits on right now is thick and amber.
 *
 * Pan and zoom change one transform attribute (no re-render of a thousand boxes): drag or the
 * arrow keys pan, the wheel or +/- zoom, 0 fits. Far out, labels go first, then the second line of
 * each box. Every time a new layout is on screen the page announces it with a DOM event
 * `cairn:graph-rendered` (detail: boxes, arrows, tasks, layout and total times), which the
 * browser tests wait for.
 */
import { Component } from "preact"
import { useEffect, useLayoutEffect, useRef } from "preact/hooks"
import { TASK_GLYPH } from "./dag.js"
import type { Arrow, Box, Drawing } from "./drawing.js"
import { BOX_HEIGHT, BOX_WIDTH, type Layout } from "./layout.js"

export interface GraphViewProps {
  readonly graphId: string
  readonly drawing: Drawing
  readonly layout: Layout | undefined
  /** How many tasks the drawing stands for (grouped ones included). */
  readonly tasks: number
  readonly selected?: string | undefined
  /** Box ids that match the search; undefined when there is no search. */
  readonly matches?: ReadonlySet<string> | undefined
  /** Centre this box; a new `n` centres again. */
  readonly focus?: { readonly box: string; readonly n: number } | undefined
  readonly onActivate: (box: Box) => void
  /** Called with the zoom controls once mounted. */
  readonly controls?: (c: ViewControls) => void
}

export interface ViewControls {
  readonly zoomIn: () => void
  readonly zoomOut: () => void
  readonly fit: () => void
}

/** Far enough out for a graph thousands of boxes wide. */
const MIN_ZOOM = 0.002

const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s)

const pathOf = (pts: ReadonlyArray<readonly [number, number]>) => {
  if (pts.length < 2) return ""
  let d = `M${pts[0]![0]},${pts[0]![1]}`
  for (let i = 1; i < pts.length - 1; i++) {
    const [x, y] = pts[i]!
    const [nx, ny] = pts[i + 1]!
    d += ` Q${x},${y} ${(x + nx) / 2},${(y + ny) / 2}`
  }
  const last = pts[pts.length - 1]!
  return `${d} L${last[0]},${last[1]}`
}

const subtitle = (b: Box) => {
  if (b.type === "group") {
    return (["running", "ready", "blocked", "failed", "canceled", "succeeded"] as const)
      .filter((s) => b.counts[s])
      .map((s) => `${b.counts[s]} ${TASK_GLYPH[s]}`)
      .join("  ")
  }
  const p = b.task.progress
  const pct = b.task.state === "running" && p?.total ? ` ${Math.floor((100 * p.done) / p.total)}%` : ""
  return b.type === "external" ? `graph …${b.task.graph.slice(-6)} · ${b.state}` : `${b.task.task} · ${b.state}${pct}`
}

const describe = (b: Box) =>
  b.type === "group"
    ? `${b.title}: ${subtitle(b)} (${b.members.length} similar tasks; activate to expand)`
    : `${b.task.node} (${b.task.task}) ${b.state}${b.type === "external" ? ` in graph ${b.task.graph}` : ""}${
      b.task.error ? `: ${b.task.error.code} ${b.task.error.message}` : ""
    }`

const GROUP_BAR: ReadonlyArray<Box["state"]> = ["succeeded", "running", "ready", "blocked", "failed", "canceled"]

interface BoxProps {
  readonly b: Box
  readonly x: number
  readonly y: number
  readonly selected: boolean
  readonly dim: boolean
  readonly match: boolean
  readonly onActivate: (b: Box) => void
}

/** What a box shows: a live update re-renders only the boxes whose signature changed. */
const boxSignature = (p: BoxProps) =>
  `${p.x},${p.y},${p.selected},${p.dim},${p.match},${p.b.state},${p.b.title},${subtitle(p.b)},${p.b.task.error?.code ?? ""}`

class MemoBox extends Component<BoxProps> {
  override shouldComponentUpdate(next: BoxProps) {
    return boxSignature(next) !== boxSignature(this.props) || next.onActivate !== this.props.onActivate
  }
  override render() {
    return <BoxView {...this.props} />
  }
}

class MemoArrow extends Component<ArrowProps> {
  override shouldComponentUpdate(next: ArrowProps) {
    const a = this.props
    return next.pts !== a.pts || next.dim !== a.dim || next.a.waiting !== a.a.waiting || next.a.label !== a.a.label
  }
  override render() {
    return <ArrowView {...this.props} />
  }
}

const BoxView = ({ b, x, y, selected, dim, match, onActivate }: BoxProps) => {
  const total = b.members.length
  let offset = 0
  const progress = b.task.progress
  return (
    <g
      class={`box s-${b.state} t-${b.type}${selected ? " selected" : ""}${dim ? " dim" : ""}${match ? " match" : ""}`}
      transform={`translate(${x - BOX_WIDTH / 2},${y - BOX_HEIGHT / 2})`}
      data-box={b.id}
      data-node={b.type === "group" ? undefined : b.task.node}
      data-state={b.state}
      role="button"
      tabindex={-1}
      aria-label={describe(b)}
      onClick={(e) => {
        if ((e.currentTarget.ownerSVGElement as SVGSVGElement & { dragged?: boolean }).dragged) return
        onActivate(b)
      }}
    >
      <title>{describe(b)}</title>
      <rect class="frame" width={BOX_WIDTH} height={BOX_HEIGHT} rx={8} />
      <text class="title" x={10} y={21}>
        <tspan class="glyph" aria-hidden="true">{TASK_GLYPH[b.state]}</tspan> {clip(b.title, 22)}
      </text>
      <text class="sub" x={10} y={39}>{clip(subtitle(b), 30)}</text>
      {b.type === "group" &&
        GROUP_BAR.map((s) => {
          const n = b.counts[s] ?? 0
          if (n === 0) return null
          const w = ((BOX_WIDTH - 16) * n) / total
          const r = <rect key={s} class={`bar s-${s}`} x={8 + offset} y={BOX_HEIGHT - 8} width={w} height={4} />
          offset += w
          return r
        })}
      {b.type !== "group" && b.state === "running" && progress?.total
        ? <rect class="bar s-running" x={8} y={BOX_HEIGHT - 8} width={((BOX_WIDTH - 16) * Math.min(progress.done, progress.total)) / progress.total} height={4} />
        : null}
    </g>
  )
}

interface ArrowProps {
  readonly a: Arrow
  readonly pts: ReadonlyArray<readonly [number, number]>
  readonly dim: boolean
}

const ArrowView = ({ a, pts, dim }: ArrowProps) => {
  const mid = pts[Math.floor(pts.length / 2)]
  const kind = a.waiting ? "waiting" : a.reason
  return (
    <g class={`arrow a-${a.reason}${a.waiting ? " waiting" : ""}${dim ? " dim" : ""}`} data-arrow={a.id}>
      <path d={pathOf(pts)} marker-end={`url(#head-${kind})`} />
      {mid && <text class="arrow-label" x={mid[0] + 4} y={mid[1] - 3}>{clip(a.label, 28)}</text>}
    </g>
  )
}

// (In SVG, attributes keep their case: focusability needs `tabindex`, not `tabIndex`.)
export const GraphView = (p: GraphViewProps) => {
  const svg = useRef<SVGSVGElement>(null)
  const root = useRef<SVGGElement>(null)
  const view = useRef({ x: 0, y: 0, k: 1 })
  const fitted = useRef<string | undefined>(undefined)
  const renders = useRef(0)

  const apply = () => {
    const { x, y, k } = view.current
    root.current?.setAttribute("transform", `translate(${x},${y}) scale(${k})`)
    svg.current?.classList.toggle("far", k < 0.55)
    svg.current?.classList.toggle("very-far", k < 0.3)
  }
  const size = () => ({ w: svg.current?.clientWidth || 800, h: svg.current?.clientHeight || 500 })
  const zoomAt = (f: number, px?: number, py?: number) => {
    const { w, h } = size()
    const v = view.current
    const k = Math.min(3, Math.max(MIN_ZOOM, v.k * f))
    const cx = px ?? w / 2
    const cy = py ?? h / 2
    view.current = { k, x: cx - (cx - v.x) * (k / v.k), y: cy - (cy - v.y) * (k / v.k) }
    apply()
  }
  /**
   * The whole drawing in view; with `readable`, no smaller than a scale where box names can still
   * be read (a graph a hundred boxes wide then shows its top middle, and Fit shows all of it).
   */
  const fit = (readable = false) => {
    const l = p.layout
    if (!l) return
    const { w, h } = size()
    const whole = Math.max(MIN_ZOOM, Math.min(1.2, (w - 16) / Math.max(1, l.width), (h - 16) / Math.max(1, l.height)))
    const k = readable ? Math.max(whole, 0.35) : whole
    view.current = { k, x: (w - l.width * k) / 2, y: Math.max(8, (h - l.height * k) / 2) }
    apply()
  }
  /** Bring a box into view: left alone if it is in view already, else centred (zoomed in if far out). */
  const centre = (box: string) => {
    const c = p.layout?.boxes[box]
    if (!c) return
    const { w, h } = size()
    const v = view.current
    const sx = v.x + c.x * v.k
    const sy = v.y + c.y * v.k
    const mx = (BOX_WIDTH / 2) * v.k
    const my = (BOX_HEIGHT / 2) * v.k
    if (v.k >= 0.5 && sx - mx >= 0 && sx + mx <= w && sy - my >= 0 && sy + my <= h) return
    const k = Math.max(v.k, 0.9)
    view.current = { k, x: w / 2 - c.x * k, y: h / 2 - c.y * k }
    apply()
  }

  useEffect(() => p.controls?.({ zoomIn: () => zoomAt(1.25), zoomOut: () => zoomAt(0.8), fit: () => fit() }), [p.layout])

  // A new graph, or the first layout of one: fit it. Later layouts keep the user's view.
  useLayoutEffect(() => {
    if (p.layout && fitted.current !== p.graphId) {
      fitted.current = p.graphId
      fit(true)
    }
  }, [p.layout, p.graphId])

  useEffect(() => {
    if (p.focus) centre(p.focus.box)
  }, [p.focus?.n, p.layout])

  // Tell whoever listens that this layout is on screen (after the browser painted it).
  useEffect(() => {
    if (!p.layout) return
    const l = p.layout
    renders.current++
    svg.current?.setAttribute("data-render-count", String(renders.current))
    const frame = requestAnimationFrame(() =>
      requestAnimationFrame(() =>
        document.dispatchEvent(
          new CustomEvent("cairn:graph-rendered", {
            detail: {
              graph: p.graphId,
              boxes: p.drawing.boxes.length,
              arrows: p.drawing.arrows.length,
              groups: p.drawing.boxes.filter((b) => b.type === "group").length,
              tasks: p.tasks,
              layoutMs: l.ms,
              totalMs: Math.round(performance.now() - l.requestedAt)
            }
          })
        )
      )
    )
    return () => cancelAnimationFrame(frame)
  }, [p.layout])

  // Wheel zoom and drag pan (the wheel listener must not be passive to keep the page still).
  useEffect(() => {
    const el = svg.current!
    const onWheel = (e: WheelEvent) => {
      e.preventDefault()
      const r = el.getBoundingClientRect()
      zoomAt(Math.exp(-e.deltaY * 0.0015), e.clientX - r.left, e.clientY - r.top)
    }
    let start: { x: number; y: number; vx: number; vy: number } | undefined
    const onDown = (e: PointerEvent) => {
      if (e.button !== 0) return
      start = { x: e.clientX, y: e.clientY, vx: view.current.x, vy: view.current.y }
      ;(el as SVGSVGElement & { dragged?: boolean }).dragged = false
    }
    const onMove = (e: PointerEvent) => {
      if (!start) return
      const dx = e.clientX - start.x
      const dy = e.clientY - start.y
      const d = el as SVGSVGElement & { dragged?: boolean }
      if (!d.dragged && Math.hypot(dx, dy) < 4) return
      if (!d.dragged) el.setPointerCapture(e.pointerId)
      d.dragged = true
      view.current = { ...view.current, x: start.vx + dx, y: start.vy + dy }
      apply()
    }
    const onUp = () => {
      start = undefined
      // The click that ends a drag comes after pointerup: forget the drag once it has been seen.
      setTimeout(() => ((el as SVGSVGElement & { dragged?: boolean }).dragged = false), 0)
    }
    el.addEventListener("wheel", onWheel, { passive: false })
    el.addEventListener("pointerdown", onDown)
    el.addEventListener("pointermove", onMove)
    el.addEventListener("pointerup", onUp)
    el.addEventListener("pointercancel", onUp)
    return () => {
      el.removeEventListener("wheel", onWheel)
      el.removeEventListener("pointerdown", onDown)
      el.removeEventListener("pointermove", onMove)
      el.removeEventListener("pointerup", onUp)
      el.removeEventListener("pointercancel", onUp)
    }
  }, [])

  const onKey = (e: KeyboardEvent) => {
    const pan: Record<string, [number, number]> = { ArrowLeft: [60, 0], ArrowRight: [-60, 0], ArrowUp: [0, 60], ArrowDown: [0, -60] }
    if (pan[e.key]) {
      const [dx, dy] = pan[e.key]!
      view.current = { ...view.current, x: view.current.x + dx, y: view.current.y + dy }
      apply()
    } else if (e.key === "+" || e.key === "=") zoomAt(1.25)
    else if (e.key === "-") zoomAt(0.8)
    else if (e.key === "0") fit()
    else return
    e.preventDefault()
  }

  const l = p.layout
  const boxes = new Map(p.drawing.boxes.map((b) => [b.id, b]))
  return (
    <svg
      ref={svg}
      class="graph-svg"
      tabindex={0}
      role="group"
      aria-label={`Drawing of the graph: ${p.drawing.boxes.length} boxes for ${p.tasks} tasks. Arrow keys pan, plus and minus zoom, 0 fits. The task table below lists every task.`}
      aria-busy={l === undefined}
      data-graph={p.graphId}
      onKeyDown={onKey}
    >
      <defs>
        {(["input", "resource", "waiting"] as const).map((k) => (
          <marker key={k} id={`head-${k}`} class={`head-${k}`} viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="10" markerHeight="10" orient="auto-start-reverse">
            <path d="M0,0 L10,5 L0,10 z" />
          </marker>
        ))}
      </defs>
      <g ref={root}>
        {l &&
          p.drawing.arrows.map((a) => {
            const pts = l.arrows[a.id]
            if (!pts || !boxes.has(a.from) || !boxes.has(a.to)) return null
            const dim = p.matches !== undefined && !(p.matches.has(a.from) || p.matches.has(a.to))
            return <MemoArrow key={a.id} a={a} pts={pts} dim={dim} />
          })}
        {l &&
          p.drawing.boxes.map((b) => {
            const c = l.boxes[b.id]
            if (!c) return null
            const match = p.matches?.has(b.id) ?? false
            return (
              <MemoBox
                key={b.id}
                b={b}
                x={c.x}
                y={c.y}
                selected={p.selected === b.id}
                dim={p.matches !== undefined && !match}
                match={match}
                onActivate={p.onActivate}
              />
            )
          })}
      </g>
    </svg>
  )
}
