/**
 * `cairn`: the command-line interface (bin/cairn.js runs this file through tsx).
 *
 * Every failure ends the same way: one sentence on stderr (`cairn: ...`), no stack trace, and a
 * non-zero exit code: 1 when the operation failed (refused, unreachable, a graph that did not
 * succeed), 2 for a command line that does not parse, 130 when interrupted.
 */
import * as CliConfig from "@effect/cli/CliConfig"
import * as Command from "@effect/cli/Command"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Effect, Exit } from "effect"
import { createRequire } from "node:module"
import { dagCommand } from "./commands/dag.js"
import { graphCommands } from "./commands/graphs.js"
import { inspectCommands } from "./commands/inspect.js"
import { purgeCommand } from "./commands/lifecycle.js"
import { namedCommands } from "./commands/named.js"
import { processCommands } from "./commands/processes.js"
import { scheduleCommands } from "./commands/schedule.js"
import { uploadCommand } from "./commands/upload.js"
import { signalExitCode } from "./exit.js"
import { group } from "./group.js"

const { version } = createRequire(import.meta.url)("../../package.json") as { version: string }

export const cairn = group("cairn", "An immutable-resource content store with futures.", [
  ...processCommands,
  ...graphCommands,
  ...inspectCommands,
  dagCommand,
  ...namedCommands,
  scheduleCommands,
  uploadCommand,
  purgeCommand
])

const cli = Command.run(cairn, {
  name: "cairn",
  version,
  footer: HelpDoc.p(
    "Client commands talk to CAIRN_URL (default http://127.0.0.1:8080) with CAIRN_TOKEN, or --url/--token. " +
      "serve, worker and migrate read the environment variables listed in README.md. " +
      "`cairn <command> --help` describes a command."
  )
})

/** One sentence for any failure; the parser's own errors were already printed with the usage. */
const report = (cause: Cause.Cause<unknown>): Effect.Effect<number> => {
  const e = Cause.squash(cause) as { message?: unknown; exitCode?: unknown; _tag?: unknown }
  if (ValidationError.isValidationError(e)) return Effect.succeed(2)
  const message = typeof e?.message === "string" && e.message !== "" ? e.message : String(e)
  const code = typeof e?.exitCode === "number" ? e.exitCode : 1
  return Effect.sync(() => {
    process.stderr.write(`cairn: ${message.split("\n")[0]}\n`)
    return code
  })
}

/** Help and parse errors come as ANSI text; a pipe, a file or NO_COLOR gets them without escapes. */
const ESCAPES = /\x1b\[[0-9;]*m/g
const plainUnlessTty = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.flatMap(Effect.console, (console) => {
    const strip = (stream: NodeJS.WriteStream, args: ReadonlyArray<unknown>) =>
      stream.isTTY === true && !process.env.NO_COLOR ? args : args.map((a) => (typeof a === "string" ? a.replace(ESCAPES, "") : a))
    return Effect.withConsole(self, {
      ...console,
      log: (...args) => console.log(...strip(process.stdout, args)),
      error: (...args) => console.error(...strip(process.stderr, args))
    })
  })

/**
 * @effect/cli stops looking for options at the first word that starts with "-" and is not one, so
 * `submit - --wait` would lose --wait. A lone "-" (stdin) is a positional argument: move it last.
 */
const stdinLast = (argv: ReadonlyArray<string>) => {
  const [runtime, script, ...args] = argv
  const dashes = args.filter((a) => a === "-")
  return [runtime!, script!, ...args.filter((a) => a !== "-"), ...dashes]
}

const main = cli(stdinLast(process.argv)).pipe(
  Effect.as(0),
  // Interruption (a signal) is left to the teardown below; every other failure is reported here.
  Effect.catchAllCause((cause) => (Cause.isInterruptedOnly(cause) ? Effect.failCause(cause) : report(cause))),
  plainUnlessTty,
  // The built-in options (--help, --version, --completions, ...) work; listing them on every page is noise.
  Effect.provide(CliConfig.layer({ showBuiltIns: false })),
  Effect.provide(NodeContext.layer)
)

NodeRuntime.runMain(main, {
  disableErrorReporting: true,
  disablePrettyLogger: true,
  teardown: (exit) => {
    const code = Exit.isSuccess(exit) ? (typeof exit.value === "number" ? exit.value : 0) : Cause.isInterruptedOnly(exit.cause) ? signalExitCode() : 1
    // Exit once what was written has been flushed (a pipe may still hold it), and not before:
    // keep-alive sockets of the HTTP client must not keep a finished command alive.
    process.stdout.write("", () => process.stderr.write("", () => process.exit(code)))
  }
})
