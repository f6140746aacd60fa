/**
 * What every client command shares: the --json/--url/--token options, the client they build, the
 * error a command fails with (one sentence and an exit code), and small output helpers.
 */
import * as Options from "@effect/cli/Options"
import { Console, Data, Effect, Option } from "effect"
import * as fs from "node:fs/promises"
import { type CairnClientShape, DEFAULT_URL, layer } from "../client/effect.js"
import { CairnClient } from "../client/effect.js"

/** A failure to report as one sentence (printed as `cairn: <message>`), with the process's exit code. */
export class CliError extends Data.TaggedError("CliError")<{ readonly message: string; readonly exitCode?: number }> {}

export const common = {
  json: Options.boolean("json").pipe(Options.withDescription("Print the result as JSON, for scripts.")),
  url: Options.text("url").pipe(
    Options.withDescription(`The cairn server (default: $CAIRN_URL, else ${DEFAULT_URL}).`),
    Options.optional
  ),
  token: Options.text("token").pipe(
    Options.withDescription("API token, for a server with CAIRN_API_TOKENS (default: $CAIRN_TOKEN)."),
    Options.optional
  )
}

export interface Common {
  readonly json: boolean
  readonly url: Option.Option<string>
  readonly token: Option.Option<string>
}

const env = (name: string) => {
  const v = process.env[name]?.trim()
  return v === undefined || v === "" ? undefined : v
}

/** Where the server is: --url, then CAIRN_URL, then the default; checked to be an http(s) URL. */
export const connection = (c: Common) =>
  Effect.gen(function*() {
    const [url, from] = Option.isSome(c.url) ? [c.url.value, "--url"] : env("CAIRN_URL") ? [env("CAIRN_URL")!, "CAIRN_URL"] : [DEFAULT_URL, "default"]
    let parsed: URL | undefined
    try {
      parsed = new URL(url)
    } catch {
      parsed = undefined
    }
    if (parsed === undefined || (parsed.protocol !== "http:" && parsed.protocol !== "https:")) {
      return yield* new CliError({ message: `${from} ${JSON.stringify(url)} is not an http(s) URL`, exitCode: 2 })
    }
    return { url, token: Option.getOrUndefined(c.token) ?? env("CAIRN_TOKEN") }
  })

/** Run `f` with a client for the server these options name. */
export const withClient = <A, E, R>(c: Common, f: (client: CairnClientShape) => Effect.Effect<A, E, R>) =>
  Effect.flatMap(connection(c), (conn) => Effect.flatMap(CairnClient, f).pipe(Effect.provide(layer(conn))))

// ---- output ---------------------------------------------------------------------------------------

export const printJson = (value: unknown) => Console.log(JSON.stringify(value, null, 2))

/** Columns padded to their widest cell; the last column is not padded. */
export const table = (rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths: Array<number> = []
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)))
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join("  ").trimEnd()).join("\n")
}

/** `key: value` lines, keys aligned; undefined values are left out. */
export const fields = (entries: ReadonlyArray<readonly [string, string | number | null | undefined]>): string =>
  table(entries.filter(([, v]) => v !== undefined).map(([k, v]) => [`${k}:`, v === null ? "-" : String(v)]))

/** Print `value` as JSON with --json, else the human text. */
export const output = (c: Pick<Common, "json">, value: unknown, human: () => string) =>
  c.json ? printJson(value) : Console.log(human())

export const isTty = () => process.stdout.isTTY === true
export const useColor = () => isTty() && env("NO_COLOR") === undefined

// ---- arguments ------------------------------------------------------------------------------------

const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/

/** A cairn id as typed (any case) to the ULID the API takes, or a usage error naming what was expected. */
export const parseId = (raw: string, what: string) => {
  const id = raw.trim().toUpperCase()
  return ULID.test(id)
    ? Effect.succeed(id)
    : Effect.fail(new CliError({ message: `${JSON.stringify(raw)} is not a ${what} id (a ULID: 26 characters, Crockford base32)`, exitCode: 2 }))
}

const UNITS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 }

/** "24h", "30m", "1h30m", "0s", "90" (seconds) to seconds. */
export const parseDuration = (raw: string, option: string): Effect.Effect<number, CliError> => {
  const text = raw.trim()
  if (/^\d+$/.test(text)) return Effect.succeed(Number(text))
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)]
  if (parts.length === 0 || parts.map((p) => p[0]).join("") !== text) {
    return Effect.fail(new CliError({ message: `${option} must be a duration like 24h, 30m, 1h30m or 0s, not ${JSON.stringify(raw)}`, exitCode: 2 }))
  }
  return Effect.succeed(parts.reduce((sum, p) => sum + Number(p[1]) * UNITS[p[2]!]!, 0))
}

const readAll = async (stream: NodeJS.ReadableStream) => {
  const chunks: Array<Buffer> = []
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array))
  return Buffer.concat(chunks).toString("utf8")
}

/** A file's text (stdin for "-"), or one sentence naming the file and why it cannot be read. */
export const readText = (file: string, what = file === "-" ? "stdin" : file) =>
  Effect.tryPromise({
    try: () => (file === "-" ? readAll(process.stdin) : fs.readFile(file, "utf8")),
    catch: (e) =>
      new CliError({ message: `cannot read ${what}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}` })
  })
