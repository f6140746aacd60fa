/**
 * The page's side of the layout worker (./layout-worker.ts): one worker per page, one layout at a
 * time; a newer request supersedes one still running (its answer is dropped).
 */
import { useEffect, useRef, useState } from "preact/hooks"
import type { Drawing } from "./drawing.js"

/** Set by the build (src/console/build.ts): the worker's hashed file name. */
declare const __LAYOUT_WORKER__: string

export const BOX_WIDTH = 196
export const BOX_HEIGHT = 54

export interface LayoutRequest {
  readonly key: number
  readonly boxes: ReadonlyArray<{ readonly id: string; readonly width: number; readonly height: number }>
  readonly arrows: ReadonlyArray<{ readonly id: string; readonly from: string; readonly to: string; readonly reason: "input" | "resource" }>
}

export interface LayoutResult {
  readonly key: number
  /** Box centres. */
  readonly boxes: Record<string, { readonly x: number; readonly y: number }>
  readonly arrows: Record<string, ReadonlyArray<readonly [number, number]>>
  readonly width: number
  readonly height: number
  /** Time dagre took, in the worker. */
  readonly ms: number
}

export interface Layout extends LayoutResult {
  /** The drawing structure it is the layout of. */
  readonly structure: string
  /** When it was asked for (performance.now()). */
  readonly requestedAt: number
}

/** The layout of `drawing`, redone when its structure changes; undefined until the first arrives. */
export const useLayout = (drawing: Drawing | undefined): { layout?: Layout | undefined; busy: boolean; error?: string | undefined } => {
  const worker = useRef<Worker>()
  const sent = useRef({ key: 0, structure: "", at: 0 })
  const [state, setState] = useState<{ layout?: Layout; busy: boolean; error?: string }>({ busy: false })

  useEffect(() => {
    const w = new Worker(new URL(__LAYOUT_WORKER__, document.baseURI), { type: "module" })
    worker.current = w
    w.onmessage = (e: MessageEvent<LayoutResult>) => {
      if (e.data.key !== sent.current.key) return
      setState({ layout: { ...e.data, structure: sent.current.structure, requestedAt: sent.current.at }, busy: false })
    }
    w.onerror = (e) => setState((s) => ({ ...s, busy: false, error: `the layout failed: ${e.message}` }))
    return () => w.terminate()
  }, [])

  useEffect(() => {
    if (!drawing || !worker.current || drawing.structure === sent.current.structure) return
    const key = sent.current.key + 1
    sent.current = { key, structure: drawing.structure, at: performance.now() }
    setState((s) => ({ ...s, busy: true }))
    const req: LayoutRequest = {
      key,
      boxes: drawing.boxes.map((b) => ({ id: b.id, width: BOX_WIDTH, height: BOX_HEIGHT })),
      arrows: drawing.arrows.map((a) => ({ id: a.id, from: a.from, to: a.to, reason: a.reason }))
    }
    worker.current.postMessage(req)
  }, [drawing?.structure])

  return state
}
