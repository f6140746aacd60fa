/**
 * Layered layout of a drawing (./drawing.ts) by dagre, in a Web Worker: laying out a thousand
 * boxes takes a second or more, and the page stays responsive meanwhile.
 *
 * Arrows get no label boxes in the layout (dagre would add a rank of dummy nodes per labelled
 * edge, which doubles the work); the page writes each label at the middle of its arrow. Past a few
 * hundred boxes (LARGE) the ranking uses dagre's tight-tree ranker instead of network-simplex:
 * the drawing is a little less compact and the layout several times faster.
 *
 * Also past LARGE, resource-key arrows do not shape the layout (they are drawn straight between
 * the boxes the data arrows placed): a first-come-first-served chain through a hundred tasks of a
 * layer would otherwise stack them a hundred ranks deep, and every data arrow from an early one
 * would cross all those ranks, which costs dagre a dummy node per rank crossed (tens of seconds
 * for a thousand tasks instead of one or two). A graph with no data arrows at all keeps them.
 */
import dagre from "@dagrejs/dagre"
import type { LayoutRequest, LayoutResult } from "./layout.js"

const LARGE = 300

const scope = self as unknown as {
  onmessage: ((e: MessageEvent<LayoutRequest>) => void) | null
  postMessage(message: LayoutResult): void
}

scope.onmessage = (e) => {
  const req = e.data
  const started = performance.now()
  const g = new dagre.graphlib.Graph({ multigraph: true })
  g.setGraph({
    rankdir: "TB",
    nodesep: 24,
    ranksep: 56,
    edgesep: 12,
    marginx: 16,
    marginy: 16,
    ranker: req.boxes.length > LARGE ? "tight-tree" : "network-simplex"
  })
  g.setDefaultEdgeLabel(() => ({}))
  for (const b of req.boxes) g.setNode(b.id, { width: b.width, height: b.height })
  const shaping = req.boxes.length <= LARGE || !req.arrows.some((a) => a.reason === "input")
  const routed = req.arrows.filter((a) => shaping || a.reason === "input")
  for (const a of routed) g.setEdge(a.from, a.to, {}, a.id)
  dagre.layout(g)
  const boxes: LayoutResult["boxes"] = {}
  for (const b of req.boxes) {
    const n = g.node(b.id) as { x: number; y: number }
    boxes[b.id] = { x: n.x, y: n.y }
  }
  const arrows: LayoutResult["arrows"] = {}
  for (const a of routed) {
    const edge = g.edge({ v: a.from, w: a.to, name: a.id }) as { points?: Array<{ x: number; y: number }> } | undefined
    arrows[a.id] = (edge?.points ?? []).map((p) => [Math.round(p.x), Math.round(p.y)] as const)
  }
  const size = new Map(req.boxes.map((b) => [b.id, b]))
  for (const a of req.arrows) {
    if (arrows[a.id]) continue
    const from = boxes[a.from]!
    const to = boxes[a.to]!
    arrows[a.id] = [border(from, size.get(a.from)!, to), border(to, size.get(a.to)!, from)]
  }
  const extent = g.graph() as { width?: number; height?: number }
  scope.postMessage({
    key: req.key,
    boxes,
    arrows,
    width: extent.width ?? 0,
    height: extent.height ?? 0,
    ms: Math.round(performance.now() - started)
  })
}

/** Where the segment from the centre of a box towards `to` leaves the box. */
const border = (c: { x: number; y: number }, box: { width: number; height: number }, to: { x: number; y: number }) => {
  const dx = to.x - c.x
  const dy = to.y - c.y
  if (dx === 0 && dy === 0) return [Math.round(c.x), Math.round(c.y)] as const
  const t = Math.min(Math.abs(box.width / 2 / (dx || 1e-9)), Math.abs(box.height / 2 / (dy || 1e-9)))
  return [Math.round(c.x + dx * t), Math.round(c.y + dy * t)] as const
}
