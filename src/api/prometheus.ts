/**
 * GET /metrics in the Prometheus text format: this process's Effect metrics (counters, gauges,
 * histograms) plus gauges read from the database at scrape time.
 */
import { Metric, MetricState } from "effect"

const esc = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, "\\\"").replace(/\n/g, "\\n")
const labels = (tags: ReadonlyArray<{ key: string; value: string }>, extra: Record<string, string> = {}) => {
  const all = [...tags.map((t) => [t.key, t.value] as const), ...Object.entries(extra)]
  return all.length === 0 ? "" : `{${all.map(([k, v]) => `${k}="${esc(v)}"`).join(",")}}`
}

export interface Gauge {
  readonly name: string
  readonly help: string
  readonly samples: ReadonlyArray<{ readonly labels?: Record<string, string>; readonly value: number }>
}

export const renderPrometheus = (gauges: ReadonlyArray<Gauge>): string => {
  const out: Array<string> = []
  const seen = new Set<string>()
  const header = (name: string, type: string, help?: string) => {
    if (seen.has(name)) return
    seen.add(name)
    if (help) out.push(`# HELP ${name} ${help}`)
    out.push(`# TYPE ${name} ${type}`)
  }
  for (const g of gauges) {
    header(g.name, "gauge", g.help)
    for (const s of g.samples) out.push(`${g.name}${labels([], s.labels)} ${s.value}`)
  }
  for (const pair of Metric.unsafeSnapshot()) {
    const { name, tags, description } = pair.metricKey
    const st = pair.metricState
    const help = description._tag === "Some" ? description.value : undefined
    if (MetricState.isCounterState(st)) {
      header(name, "counter", help)
      out.push(`${name}${labels(tags)} ${Number(st.count)}`)
    } else if (MetricState.isGaugeState(st)) {
      header(name, "gauge", help)
      out.push(`${name}${labels(tags)} ${Number(st.value)}`)
    } else if (MetricState.isHistogramState(st)) {
      header(name, "histogram", help)
      let cumulative = 0
      for (const [bound, count] of st.buckets) {
        cumulative = count // Effect's histogram buckets are already cumulative
        out.push(`${name}_bucket${labels(tags, { le: String(bound) })} ${cumulative}`)
      }
      out.push(`${name}_bucket${labels(tags, { le: "+Inf" })} ${st.count}`)
      out.push(`${name}_sum${labels(tags)} ${st.sum}`)
      out.push(`${name}_count${labels(tags)} ${st.count}`)
    }
  }
  return out.join("\n") + "\n"
}
