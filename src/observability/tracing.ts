/**
 * OpenTelemetry tracing of the engine's spans (cairn.submit, cairn.claim, cairn.run, cairn.settle,
 * and the HTTP server's), through Effect's tracer. Off by default; on when the standard OTEL
 * variables ask for it: OTEL_TRACES_EXPORTER=otlp, or an OTLP endpoint
 * (OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, read by the exporter itself).
 * OTEL_SERVICE_NAME names the service (default "cairn"); OTEL_SDK_DISABLED=true turns it off.
 */
import { NodeSdk } from "@effect/opentelemetry"
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http"
import { BatchSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Layer } from "effect"

export const tracingEnabled = (env: NodeJS.ProcessEnv = process.env): boolean => {
  if (env.OTEL_SDK_DISABLED === "true") return false
  const exporter = env.OTEL_TRACES_EXPORTER
  if (exporter !== undefined) return exporter.split(",").map((s) => s.trim()).includes("otlp")
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
}

export const TracingLive: Layer.Layer<never> = tracingEnabled()
  ? NodeSdk.layer(() => ({
    resource: { serviceName: process.env.OTEL_SERVICE_NAME ?? "cairn" },
    spanProcessor: new BatchSpanProcessor(new OTLPTraceExporter())
  }))
  : Layer.empty
