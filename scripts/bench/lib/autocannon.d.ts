/** The part of autocannon 9's programmatic API the benchmarks use (the package ships no types). */
declare module "autocannon" {
  interface RequestParams {
    method?: string
    path?: string
    headers?: Record<string, string>
    setupRequest?: (req: RequestParams, context: Record<string, unknown>) => RequestParams
  }
  interface Options {
    url: string
    connections?: number
    duration?: number
    amount?: number
    pipelining?: number
    timeout?: number
    workers?: number
    requests?: ReadonlyArray<RequestParams>
  }
  interface Histogram {
    average: number
    mean: number
    stddev: number
    min: number
    max: number
    total: number
    p50: number
    p90: number
    p97_5: number
    p99: number
    [key: string]: number
  }
  interface Result {
    requests: Histogram & { sent: number }
    latency: Histogram
    throughput: Histogram
    errors: number
    timeouts: number
    non2xx: number
    "2xx": number
    duration: number
  }
  function autocannon(opts: Options): Promise<Result>
  export default autocannon
}
