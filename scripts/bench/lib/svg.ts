/**
 * Plots as hand-written SVG (no plotting dependency): line/point charts with linear or log axes,
 * error bars (lo/hi) and reference lines, grouped bar charts, and figures of several panels.
 */

export type Marker = "circle" | "square" | "diamond" | "triangle" | "cross" | "none"

export interface Point {
  readonly x: number
  readonly y: number
  /** Error bar (e.g. p5..p95 or min..max). */
  readonly lo?: number | undefined
  readonly hi?: number | undefined
}

export interface Series {
  readonly name: string
  readonly points: ReadonlyArray<Point>
  readonly color?: string
  /** Draw a line through the points (default true). */
  readonly line?: boolean
  readonly dash?: string
  readonly marker?: Marker
}

export interface Axis {
  readonly label: string
  readonly log?: boolean
  readonly min?: number
  readonly max?: number
  /** Explicit tick positions (e.g. worker counts 1, 2, 4, ...). */
  readonly ticks?: ReadonlyArray<number>
}

export interface RefLine {
  readonly y: number
  readonly label: string
  readonly color?: string
  readonly dash?: string
}

export interface LineChart {
  readonly kind: "line"
  readonly title: string
  readonly x: Axis
  readonly y: Axis
  readonly series: ReadonlyArray<Series>
  readonly refLines?: ReadonlyArray<RefLine>
}

export interface BarChart {
  readonly kind: "bar"
  readonly title: string
  readonly categories: ReadonlyArray<string>
  readonly y: Axis
  readonly series: ReadonlyArray<{ readonly name: string; readonly values: ReadonlyArray<number>; readonly lo?: ReadonlyArray<number>; readonly hi?: ReadonlyArray<number>; readonly color?: string }>
  readonly refLines?: ReadonlyArray<RefLine>
}

export type Chart = LineChart | BarChart

export const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]

const W = 560
const H = 380
const M = { left: 74, right: 16, top: 34, bottom: 52 }
const LEGEND_LINE = 15

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")

const fmtTick = (v: number): string => {
  if (v === 0) return "0"
  const a = Math.abs(v)
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`
  if (a >= 1e4) return `${+(v / 1e3).toPrecision(3)}k`
  if (a >= 1) return `${+v.toPrecision(4)}`
  return `${+v.toPrecision(2)}`
}

const niceStep = (span: number, count: number) => {
  const raw = span / Math.max(1, count)
  const mag = 10 ** Math.floor(Math.log10(raw))
  const n = raw / mag
  return (n < 1.5 ? 1 : n < 3 ? 2 : n < 7 ? 5 : 10) * mag
}

interface Scale {
  readonly map: (v: number) => number
  readonly ticks: ReadonlyArray<number>
}

const makeScale = (axis: Axis, values: ReadonlyArray<number>, from: number, to: number): Scale => {
  const finite = values.filter((v) => Number.isFinite(v) && (!axis.log || v > 0))
  let lo = axis.min ?? (finite.length ? Math.min(...finite) : 0)
  let hi = axis.max ?? (finite.length ? Math.max(...finite) : 1)
  if (axis.log) {
    lo = Math.max(lo, 1e-9)
    if (axis.min === undefined) lo = 10 ** Math.floor(Math.log10(lo) + 1e-9)
    if (axis.max === undefined) hi = 10 ** Math.ceil(Math.log10(Math.max(hi, lo * 10)) - 1e-9)
    if (hi <= lo) hi = lo * 10
    const l0 = Math.log10(lo)
    const l1 = Math.log10(hi)
    const map = (v: number) => from + ((Math.log10(Math.max(v, lo / 10)) - l0) / (l1 - l0)) * (to - from)
    let ticks: Array<number> = []
    if (axis.ticks) ticks = [...axis.ticks]
    else {
      const decades = l1 - l0
      for (let e = Math.floor(l0); e <= Math.ceil(l1); e++) {
        for (const m of decades <= 2 ? [1, 2, 5] : decades <= 4 ? [1, 3] : [1]) {
          const t = m * 10 ** e
          if (t >= lo * 0.999 && t <= hi * 1.001) ticks.push(t)
        }
      }
    }
    return { map, ticks }
  }
  if (axis.min === undefined) lo = Math.min(0, lo)
  if (hi <= lo) hi = lo + 1
  const step = niceStep(hi - lo, 5)
  if (axis.max === undefined) hi = Math.ceil(hi / step - 1e-9) * step
  if (axis.min === undefined) lo = Math.floor(lo / step + 1e-9) * step
  const map = (v: number) => from + ((v - lo) / (hi - lo)) * (to - from)
  const ticks: Array<number> = []
  if (axis.ticks) ticks.push(...axis.ticks)
  else for (let t = lo; t <= hi + step * 1e-6; t += step) ticks.push(+t.toPrecision(12))
  return { map, ticks }
}

const marker = (kind: Marker, x: number, y: number, color: string, hollow = false): string => {
  const fill = hollow ? "white" : color
  const s = 4
  switch (kind) {
    case "none":
      return ""
    case "square":
      return `<rect x="${x - s}" y="${y - s}" width="${2 * s}" height="${2 * s}" fill="${fill}" stroke="${color}" stroke-width="1.5"/>`
    case "diamond":
      return `<path d="M${x} ${y - s - 1}L${x + s + 1} ${y}L${x} ${y + s + 1}L${x - s - 1} ${y}Z" fill="${fill}" stroke="${color}" stroke-width="1.5"/>`
    case "triangle":
      return `<path d="M${x} ${y - s - 1}L${x + s + 1} ${y + s}L${x - s - 1} ${y + s}Z" fill="${fill}" stroke="${color}" stroke-width="1.5"/>`
    case "cross":
      return `<path d="M${x - s} ${y - s}L${x + s} ${y + s}M${x - s} ${y + s}L${x + s} ${y - s}" stroke="${color}" stroke-width="2"/>`
    default:
      return `<circle cx="${x}" cy="${y}" r="${s}" fill="${fill}" stroke="${color}" stroke-width="1.5"/>`
  }
}

const frame = (title: string, xLabel: string, yLabel: string, legend: ReadonlyArray<{ name: string; color: string; dash?: string | undefined; marker?: Marker | undefined; line?: boolean | undefined }>, extraBottom = 0) => {
  const legendH = legend.length * LEGEND_LINE
  const plotTop = M.top
  const plotBottom = H - M.bottom - extraBottom
  const out: Array<string> = []
  out.push(`<rect x="0" y="0" width="${W}" height="${H + legendH}" fill="white"/>`)
  out.push(`<text x="${W / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${esc(title)}</text>`)
  out.push(`<text x="${(M.left + W - M.right) / 2}" y="${plotBottom + 38}" text-anchor="middle" font-size="12">${esc(xLabel)}</text>`)
  out.push(`<text transform="translate(16 ${(plotTop + plotBottom) / 2}) rotate(-90)" text-anchor="middle" font-size="12">${esc(yLabel)}</text>`)
  legend.forEach((l, i) => {
    const y = H - M.bottom + 50 + i * LEGEND_LINE
    const x = M.left
    if (l.line !== false) out.push(`<line x1="${x}" y1="${y}" x2="${x + 26}" y2="${y}" stroke="${l.color}" stroke-width="2"${l.dash ? ` stroke-dasharray="${l.dash}"` : ""}/>`)
    out.push(marker(l.marker ?? "circle", x + 13, y, l.color))
    out.push(`<text x="${x + 34}" y="${y + 4}" font-size="11">${esc(l.name)}</text>`)
  })
  return { out, plotTop, plotBottom, legendH }
}

const grid = (out: Array<string>, xs: Scale | undefined, ys: Scale, plotTop: number, plotBottom: number, fmtX = fmtTick) => {
  for (const t of ys.ticks) {
    const y = ys.map(t)
    if (y < plotTop - 0.5 || y > plotBottom + 0.5) continue
    out.push(`<line x1="${M.left}" y1="${y}" x2="${W - M.right}" y2="${y}" stroke="#e5e5e5"/>`)
    out.push(`<text x="${M.left - 6}" y="${y + 4}" text-anchor="end" font-size="11">${fmtTick(t)}</text>`)
  }
  if (xs) {
    for (const t of xs.ticks) {
      const x = xs.map(t)
      if (x < M.left - 0.5 || x > W - M.right + 0.5) continue
      out.push(`<line x1="${x}" y1="${plotTop}" x2="${x}" y2="${plotBottom}" stroke="#f0f0f0"/>`)
      out.push(`<text x="${x}" y="${plotBottom + 16}" text-anchor="middle" font-size="11">${fmtX(t)}</text>`)
    }
  }
  out.push(`<rect x="${M.left}" y="${plotTop}" width="${W - M.left - M.right}" height="${plotBottom - plotTop}" fill="none" stroke="#333"/>`)
}

const refLines = (out: Array<string>, lines: ReadonlyArray<RefLine> | undefined, ys: Scale, plotTop: number, plotBottom: number) => {
  for (const r of lines ?? []) {
    const y = ys.map(r.y)
    if (y < plotTop || y > plotBottom) continue
    const color = r.color ?? "#555"
    out.push(`<line x1="${M.left}" y1="${y}" x2="${W - M.right}" y2="${y}" stroke="${color}" stroke-width="1.5" stroke-dasharray="${r.dash ?? "6 4"}"/>`)
    out.push(`<text x="${W - M.right - 4}" y="${y - 4}" text-anchor="end" font-size="10" fill="${color}">${esc(r.label)}</text>`)
  }
}

const renderLine = (c: LineChart): string => {
  const series = c.series.map((s, i) => ({ ...s, color: s.color ?? PALETTE[i % PALETTE.length]! }))
  const { out, plotTop, plotBottom } = frame(c.title, c.x.label, c.y.label, series.map((s) => ({ name: s.name, color: s.color, dash: s.dash, marker: s.marker, line: s.line })))
  const xs = makeScale(c.x, series.flatMap((s) => s.points.map((p) => p.x)), M.left + 8, W - M.right - 8)
  const yVals = [...series.flatMap((s) => s.points.flatMap((p) => [p.y, p.lo ?? p.y, p.hi ?? p.y])), ...(c.refLines ?? []).map((r) => r.y)]
  const ys = makeScale(c.y, yVals, plotBottom, plotTop)
  grid(out, xs, ys, plotTop, plotBottom)
  refLines(out, c.refLines, ys, plotTop, plotBottom)
  for (const s of series) {
    const pts = s.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y) && (!c.y.log || p.y > 0))
    for (const p of pts) {
      if (p.lo !== undefined && p.hi !== undefined && Number.isFinite(p.lo) && Number.isFinite(p.hi)) {
        const x = xs.map(p.x)
        out.push(`<line x1="${x}" y1="${ys.map(p.lo)}" x2="${x}" y2="${ys.map(p.hi)}" stroke="${s.color}" stroke-width="1" opacity="0.7"/>`)
        out.push(`<line x1="${x - 3}" y1="${ys.map(p.lo)}" x2="${x + 3}" y2="${ys.map(p.lo)}" stroke="${s.color}" opacity="0.7"/>`)
        out.push(`<line x1="${x - 3}" y1="${ys.map(p.hi)}" x2="${x + 3}" y2="${ys.map(p.hi)}" stroke="${s.color}" opacity="0.7"/>`)
      }
    }
    if (s.line !== false && pts.length > 1) {
      const d = pts.map((p, i) => `${i === 0 ? "M" : "L"}${xs.map(p.x).toFixed(1)} ${ys.map(p.y).toFixed(1)}`).join("")
      out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ""}/>`)
    }
    for (const p of pts) out.push(marker(s.marker ?? "circle", +xs.map(p.x).toFixed(1), +ys.map(p.y).toFixed(1), s.color))
  }
  return out.join("\n")
}

const renderBar = (c: BarChart): string => {
  const series = c.series.map((s, i) => ({ ...s, color: s.color ?? PALETTE[i % PALETTE.length]! }))
  // Many or long category names are written at an angle, with room made for them under the plot.
  const rotate = c.categories.length > 4 || c.categories.some((k) => k.length > 14)
  const { out, plotTop, plotBottom } = frame(c.title, "", c.y.label, series.map((s) => ({ name: s.name, color: s.color, marker: "square" as const, line: false })), rotate ? 44 : 0)
  const yVals = [...series.flatMap((s) => [...s.values, ...(s.hi ?? [])]), ...(c.refLines ?? []).map((r) => r.y)]
  const ys = makeScale(c.y, yVals, plotBottom, plotTop)
  grid(out, undefined, ys, plotTop, plotBottom)
  const groupW = (W - M.left - M.right) / Math.max(1, c.categories.length)
  const barW = (groupW * 0.8) / Math.max(1, series.length)
  c.categories.forEach((cat, ci) => {
    const gx = M.left + ci * groupW + groupW * 0.1
    const lx = gx + groupW * 0.4
    out.push(rotate
      ? `<text transform="translate(${lx} ${plotBottom + 12}) rotate(-30)" text-anchor="end" font-size="11">${esc(cat)}</text>`
      : `<text x="${lx}" y="${plotBottom + 16}" text-anchor="middle" font-size="11">${esc(cat)}</text>`)
    series.forEach((s, si) => {
      const v = s.values[ci]
      if (v === undefined || !Number.isFinite(v) || (c.y.log && v <= 0)) return
      const x = gx + si * barW
      const base = c.y.log ? plotBottom : ys.map(0)
      const y = ys.map(v)
      out.push(`<rect x="${x.toFixed(1)}" y="${Math.min(y, base).toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${Math.abs(base - y).toFixed(1)}" fill="${s.color}"/>`)
      const lo = s.lo?.[ci]
      const hi = s.hi?.[ci]
      if (lo !== undefined && hi !== undefined && Number.isFinite(lo) && Number.isFinite(hi)) {
        const cx = x + (barW - 2) / 2
        out.push(`<line x1="${cx}" y1="${ys.map(lo)}" x2="${cx}" y2="${ys.map(hi)}" stroke="#222"/>`)
        out.push(`<line x1="${cx - 3}" y1="${ys.map(lo)}" x2="${cx + 3}" y2="${ys.map(lo)}" stroke="#222"/>`)
        out.push(`<line x1="${cx - 3}" y1="${ys.map(hi)}" x2="${cx + 3}" y2="${ys.map(hi)}" stroke="#222"/>`)
      }
    })
  })
  refLines(out, c.refLines, ys, plotTop, plotBottom)
  return out.join("\n")
}

/** The height a panel needs (its legend grows it). */
const panelHeight = (c: Chart) => H + c.series.length * LEGEND_LINE

/** Several charts in one SVG document, `columns` per row, with an overall title and footnote. */
export const figure = (charts: ReadonlyArray<Chart>, opts: { readonly title?: string; readonly columns?: number; readonly footnote?: string } = {}): string => {
  const columns = Math.max(1, Math.min(opts.columns ?? 2, charts.length))
  const rows: Array<Array<Chart>> = []
  for (let i = 0; i < charts.length; i += columns) rows.push(charts.slice(i, i + columns))
  const head = opts.title ? 30 : 0
  const foot = opts.footnote ? 14 * opts.footnote.split("\n").length + 10 : 0
  const rowHeights = rows.map((r) => Math.max(...r.map(panelHeight)))
  const total = head + rowHeights.reduce((a, b) => a + b, 0) + foot
  const out: Array<string> = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W * columns}" height="${total}" viewBox="0 0 ${W * columns} ${total}" font-family="Helvetica, Arial, sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`
  ]
  if (opts.title) out.push(`<text x="${(W * columns) / 2}" y="21" text-anchor="middle" font-size="16" font-weight="bold">${esc(opts.title)}</text>`)
  let y = head
  rows.forEach((r, ri) => {
    r.forEach((c, ci) => {
      const h = panelHeight(c)
      const body = c.kind === "line" ? renderLine(c) : renderBar(c)
      // Each panel is drawn in its own W x h box; the legend sits under the plot.
      out.push(`<g transform="translate(${ci * W} ${y})"><svg width="${W}" height="${h}" viewBox="0 0 ${W} ${h}">${body}</svg></g>`)
    })
    y += rowHeights[ri]!
  })
  if (opts.footnote) {
    opts.footnote.split("\n").forEach((line, i) => {
      out.push(`<text x="10" y="${y + 14 + i * 14}" font-size="11" fill="#444">${esc(line)}</text>`)
    })
  }
  out.push("</svg>")
  return out.join("\n")
}
