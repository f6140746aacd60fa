/**
 * Commands that submit work: `submit` (any graph, from a file or stdin), `sync` (the
 * <type>.sync -> <type>.publish -> distribution.set chain, by the remote's content type) and `gc`
 * (orphans.cleanup).
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { Console, Effect, Option } from "effect"
import { awaitFuture } from "../../client/graphs.js"
import { named } from "../../client/named.js"
import { CliError, common, parseDuration, readText, withClient } from "../common.js"
import { submitAndFollow } from "../follow.js"
import { runReporting, wait } from "./lifecycle.js"

/** `--priority`: the graph body's per-node `priority`, for every task the command submits. */
const priority = Options.integer("priority").pipe(
  Options.withDescription("Claim order among ready tasks: higher first (default 0). It never passes an earlier task on the same resource key."),
  Options.optional
)
const withPriority = <N extends Record<string, object>>(nodes: N, p: Option.Option<number>): N =>
  Option.isNone(p) ? nodes : Object.fromEntries(Object.entries(nodes).map(([k, n]) => [k, { ...n, priority: p.value }])) as N

// ---- submit ---------------------------------------------------------------------------------------

/** The graph file (or stdin for "-") as JSON, or one sentence saying why not. */
export const readGraph = (file: string) =>
  Effect.gen(function*() {
    const name = file === "-" ? "stdin" : file
    const text = yield* readText(file, name)
    return yield* Effect.try({
      try: () => JSON.parse(text) as unknown,
      catch: (e) => new CliError({ message: `${name} is not valid JSON: ${(e as Error).message}` })
    })
  })

const submit = Command.make(
  "submit",
  { ...common, wait, file: Args.text({ name: "graph.json" }).pipe(Args.withDescription("The graph (the body of POST /api/v1/graphs), or - for stdin.")) },
  (c) => Effect.flatMap(readGraph(c.file), (graph) => withClient(c, (client) => submitAndFollow(client, graph, c, c.wait)))
).pipe(Command.withDescription("Submit a graph of tasks; with --wait, follow it to its end."))

// ---- sync -----------------------------------------------------------------------------------------

const syncOptions = {
  ...common,
  wait,
  repository: Args.text({ name: "repository" }).pipe(Args.withDescription("The repository to sync into.")),
  remote: Options.text("remote").pipe(Options.withDescription("The remote to sync from.")),
  mirror: Options.boolean("mirror").pipe(Options.withDescription("Make the new version exactly what the remote lists (remove what it no longer does).")),
  priority,
  attempts: Options.integer("attempts").pipe(
    Options.withDescription("How many times the sync may run before its failure is final (default 1)."),
    Options.optional
  ),
  retryBackoff: Options.text("retry-backoff").pipe(
    Options.withDescription("Wait this long before the sync's first retry (2s, 500ms, 1m), twice as long before each next one, at most 10m."),
    Options.optional
  ),
  publish: Options.boolean("publish").pipe(Options.withDescription("Publish the new version.")),
  distribute: Options.text("distribute").pipe(
    Options.withDescription("Serve the publication from this distribution (implies --publish)."),
    Options.optional
  )
}

/**
 * The chain as one graph: every future exists at once, and a failure stops what follows it.
 * `retries` (max_attempts, retry_backoff_ms) apply to the sync, the step that talks to the network.
 */
export const syncGraph = (o: {
  /** The remote's content type: the chain is `<type>.sync` then `<type>.publish`. */
  type: string
  repository: string
  remote: string
  mirror: boolean
  publish: boolean
  distribute: Option.Option<string>
  priority?: Option.Option<number>
  retries?: { readonly max_attempts?: number; readonly retry_backoff_ms?: number }
}) => {
  const publish = o.publish || Option.isSome(o.distribute)
  const nodes = {
    sync: { task: `${o.type}.sync`, params: { repository: o.repository, remote: o.remote, ...(o.mirror ? { mirror: true } : {}) }, ...o.retries },
      ...(publish ? { publish: { task: `${o.type}.publish`, params: { version: { $ref: "sync.version" } } } } : {}),
      ...(Option.isSome(o.distribute)
        ? { distribute: { task: "distribution.set", params: { distribution: o.distribute.value, publication: { $ref: "publish.publication" } } } }
        : {})
  }
  return { label: `sync ${o.repository} from ${o.remote}`, nodes: withPriority(nodes, o.priority ?? Option.none()) }
}

const sync = Command.make("sync", syncOptions, (c) =>
  withClient(c, (client) =>
    Effect.gen(function*() {
      const backoffSeconds = Option.isSome(c.retryBackoff) ? yield* parseDuration(c.retryBackoff.value, "--retry-backoff") : undefined
      const retries = {
        ...(Option.isSome(c.attempts) ? { max_attempts: c.attempts.value } : {}),
        ...(backoffSeconds === undefined ? {} : { retry_backoff_ms: Math.round(backoffSeconds * 1000) })
      }
      // The remote's type picks the tasks (a repository of another type is refused at submission).
      // No such remote: the default type's sync, so that the server's 400 says what is wrong
      // with the graph (that remote among it).
      const type = yield* named(client, "remotes").get(c.remote).pipe(
        Effect.map((r) => r.type),
        Effect.catchIf((e) => e.code === "not_found", () => Effect.succeed("file"))
      )
      const done = yield* submitAndFollow(client, syncGraph({ ...c, type, retries }), c, c.wait)
      if (done === undefined || c.json) return
      // What the user synced for: the version made, and where it is served.
      const version = yield* awaitFuture(client, done.nodes.sync!.outputs.version!)
      const number = (version.value as { number?: number } | undefined)?.number
      yield* Console.log(`repository ${c.repository} is at version ${number ?? "?"}`)
      if (Option.isSome(c.distribute)) {
        const dist = yield* awaitFuture(client, done.nodes.distribute!.outputs.distribution!)
        const basePath = (dist.value as { base_path?: string } | undefined)?.base_path
        yield* Console.log(`distribution ${c.distribute.value} serves it at ${client.url}/content/${basePath ?? "?"}/`)
      }
    })
  )).pipe(Command.withDescription("Sync a repository from a remote, optionally publish and distribute it, as one graph."))

// ---- gc -------------------------------------------------------------------------------------------

const gc = Command.make(
  "gc",
  {
    ...common,
    wait,
    priority,
    protection: Options.text("protection").pipe(
      Options.withDescription("Keep orphans younger than this (24h, 30m, 0s, ...); default: the task's (a day)."),
      Options.optional
    ),
    reclaim: Options.text("reclaim").pipe(
      Options.withDescription(
        "Also drop the stored bytes of this repository's content that its remote can serve again (repeatable); " +
          "the content app fetches such a file again on its next request."
      ),
      Options.repeated
    )
  },
  (c) =>
    withClient(c, (client) =>
      Effect.gen(function*() {
        const seconds = Option.isSome(c.protection) ? yield* parseDuration(c.protection.value, "--protection") : undefined
        yield* runReporting(client, c, c.wait, "orphans cleanup", "orphans.cleanup", {
          ...(seconds === undefined ? {} : { protection_seconds: Math.round(seconds) }),
          ...(c.reclaim.length > 0 ? { reclaim: c.reclaim } : {})
        }, c.priority)
      })
    )
).pipe(Command.withDescription(
  "Reclaim what nothing holds any more (an orphans.cleanup task): released versions and publications, then the content " +
    "and artifacts (rows and bytes) only they held, and orphans older than --protection."
))

export const graphCommands = [submit, sync, gc] as const
