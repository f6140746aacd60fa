/**
 * Command-line flags of a benchmark: every flag has the issue's default and a smaller `--quick`
 * value, so `npm run bench:x -- --quick` iterates in seconds and `npm run bench:x` measures.
 *
 *   --quick            use every flag's quick value (explicit flags still win)
 *   --out <suffix>     write docs/bench/<name>-<suffix>.* instead of the published files
 *   --help
 */
import { parseArgs } from "node:util"

export type FlagValue = number | string | boolean | ReadonlyArray<number>

export interface FlagSpec<V extends FlagValue> {
  readonly default: V
  readonly quick?: V
  readonly help: string
}

type Values<S extends Record<string, FlagSpec<FlagValue>>> = { -readonly [K in keyof S]: S[K]["default"] extends ReadonlyArray<number> ? ReadonlyArray<number> : S[K]["default"] extends number ? number : S[K]["default"] extends boolean ? boolean : string }

export interface Parsed<S extends Record<string, FlagSpec<FlagValue>>> {
  readonly flags: Values<S>
  readonly quick: boolean
  readonly out: string | undefined
  /** The command line as typed, for the report. */
  readonly command: string
}

export const parseFlags = <S extends Record<string, FlagSpec<FlagValue>>>(name: string, description: string, spec: S): Parsed<S> => {
  const options: Record<string, { type: "string" | "boolean" }> = { quick: { type: "boolean" }, out: { type: "string" }, help: { type: "boolean" } }
  for (const [k, s] of Object.entries(spec)) options[k] = { type: typeof s.default === "boolean" ? "boolean" : "string" }
  let values: Record<string, string | boolean | undefined>
  try {
    values = parseArgs({ options, allowPositionals: false }).values as Record<string, string | boolean | undefined>
  } catch (e) {
    console.error(`${(e as Error).message}\n(npm run bench:${name} -- --help)`)
    process.exit(2)
  }
  if (values.help) {
    console.log(`npm run bench:${name} -- [flags]\n\n${description}\n`)
    for (const [k, s] of Object.entries(spec)) {
      const show = (v: FlagValue) => (Array.isArray(v) ? v.join(",") : String(v))
      console.log(`  --${k.padEnd(22)} ${s.help} (default ${show(s.default)}${s.quick !== undefined ? `, --quick ${show(s.quick)}` : ""})`)
    }
    console.log(`  --${"quick".padEnd(22)} small sizes for a fast check\n  --${"out <suffix>".padEnd(22)} write docs/bench/${name}-<suffix>.* instead of the published results`)
    process.exit(0)
  }
  const quick = values.quick === true
  const flags: Record<string, FlagValue> = {}
  for (const [k, s] of Object.entries(spec)) {
    const raw = values[k]
    const fallback = quick && s.quick !== undefined ? s.quick : s.default
    if (raw === undefined) flags[k] = fallback
    else if (typeof s.default === "boolean") flags[k] = raw === true
    else if (typeof s.default === "number") {
      const n = Number(raw)
      if (!Number.isFinite(n)) {
        console.error(`--${k} must be a number, got ${JSON.stringify(raw)}`)
        process.exit(2)
      }
      flags[k] = n
    } else if (Array.isArray(s.default)) {
      const list = String(raw).split(",").map((x) => Number(x.trim()))
      if (list.some((n) => !Number.isFinite(n))) {
        console.error(`--${k} must be a comma-separated list of numbers, got ${JSON.stringify(raw)}`)
        process.exit(2)
      }
      flags[k] = list
    } else flags[k] = String(raw)
  }
  const argv = process.argv.slice(2)
  return {
    flags: flags as Values<S>,
    quick,
    out: typeof values.out === "string" ? values.out : quick ? "quick" : undefined,
    command: `npm run bench:${name}${argv.length ? ` -- ${argv.join(" ")}` : ""}`
  }
}
