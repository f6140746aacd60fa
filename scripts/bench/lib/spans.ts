/**
 * When each cairn task's handler began, from the worker's own `cairn.run` span (started just
 * before the handler runs: src/engine/worker/executor.ts): a minimal OTLP/HTTP collector that
 * keeps the start time of every such span by task id. The worker exports its spans when
 * OTEL_EXPORTER_OTLP_ENDPOINT points here (JSON over HTTP, every 100 ms).
 *
 * Span times are on Effect's clock, aligned to the epoch from Date.now(), which differs from the
 * performance.timeOrigin + performance.now() every other timestamp here is read from by a
 * millisecond or more; the worker is started with lib/effect-clock-offset.mjs preloaded, which
 * prints the offset to correct by.
 */
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { fileURLToPath } from "node:url"
import { type Proc, waitForLine } from "../../lib/processes.js"

interface OtlpAttribute {
  readonly key: string
  readonly value: Record<string, unknown>
}
interface OtlpBody {
  readonly resourceSpans?: ReadonlyArray<{ readonly scopeSpans?: ReadonlyArray<{ readonly spans?: ReadonlyArray<{ readonly name: string; readonly startTimeUnixNano: string | number; readonly attributes?: ReadonlyArray<OtlpAttribute> }> }> }>
}

export interface SpanCollector {
  /** Environment and node flags for a cairn worker that exports its spans here. */
  readonly env: Record<string, string>
  readonly nodeArgs: ReadonlyArray<string>
  /** The worker's Effect-clock offset (ms), printed by the preload. */
  readonly offsetOf: (p: Proc) => Promise<number>
  /** Handler start (epoch ms on the benchmark's clock, offset applied) by task id. */
  readonly starts: (offsetMs: number) => Map<string, number>
  readonly close: () => Promise<void>
}

const preload = fileURLToPath(new URL("./effect-clock-offset.mjs", import.meta.url))

export const startSpanCollector = async (): Promise<SpanCollector> => {
  const startNs = new Map<string, bigint>()
  const server = http.createServer((req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (d: Buffer) => chunks.push(d))
    req.on("end", () => {
      if (req.url === "/v1/traces") {
        const body = JSON.parse(Buffer.concat(chunks).toString() || "{}") as OtlpBody
        for (const rs of body.resourceSpans ?? []) {
          for (const ss of rs.scopeSpans ?? []) {
            for (const sp of ss.spans ?? []) {
              if (sp.name !== "cairn.run") continue
              const task = sp.attributes?.find((a) => a.key === "task")?.value.stringValue
              if (typeof task === "string") startNs.set(task, BigInt(sp.startTimeUnixNano))
            }
          }
        }
      }
      res.writeHead(200, { "content-type": "application/json" }).end("{}")
    })
  })
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
  const port = (server.address() as AddressInfo).port
  return {
    env: { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`, OTEL_BSP_SCHEDULE_DELAY: "100", OTEL_SERVICE_NAME: "cairn-bench-worker" },
    nodeArgs: ["--import", preload],
    offsetOf: async (p) => Number((await waitForLine(p, /^EFFECT_CLOCK_OFFSET_MS (\S+)$/, "the worker's clock offset"))[1]),
    starts: (offsetMs) => new Map([...startNs].map(([k, ns]) => [k, Number(ns / 1000n) / 1000 - offsetMs])),
    close: () => new Promise<void>((r) => server.close(() => r()))
  }
}
