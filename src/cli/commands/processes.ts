/**
 * `cairn serve`, `cairn worker`, `cairn migrate`: the server processes, in this process. They run
 * the same main layers as src/main/serve.ts and src/main/worker.ts (src/main/layers.ts), configured by the same environment variables; the few flags only set
 * those variables. The layers are imported when a command runs, so that client commands do not
 * load the server.
 *
 * SIGINT/SIGTERM interrupt the command (NodeRuntime.runMain in main.ts): the layers' finalizers
 * drain the workers, close the pools and stop an embedded PostgreSQL this process started, exactly
 * as for `npm start`.
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { Console, Effect, Layer, Option, Redacted } from "effect"
import { exitOnSignal } from "../exit.js"

/** Flags that override environment variables, read by CairnConfig when the layers are built. */
const setEnv = (vars: Record<string, Option.Option<number | string>>) =>
  Effect.sync(() => {
    for (const [name, v] of Object.entries(vars)) if (Option.isSome(v)) process.env[name] = String(v.value)
  })

/** Run a process's main layer until a signal, logging like `npm start` (src/main/runtime.ts `launch`). */
const launch = <E>(main: () => Promise<Layer.Layer<never, E, never>>) =>
  Effect.gen(function*() {
    const runtime = yield* Effect.promise(() => import("../../main/runtime.js"))
    const layer = yield* Effect.promise(main)
    // Stopped by a signal is how a server ends: exit 0, not the 130 of an interrupted client command.
    exitOnSignal(0)
    return yield* Layer.launch(layer).pipe(Effect.provide(runtime.ObservabilityLive))
  })

const workersOption = (description: string) =>
  Options.integer("workers").pipe(Options.withDescription(`${description} (CAIRN_WORKERS).`), Options.optional)

const serve = Command.make(
  "serve",
  {
    host: Options.text("host").pipe(Options.withDescription("Address to listen on (HOST; default 127.0.0.1)."), Options.optional),
    port: Options.integer("port").pipe(Options.withDescription("Port; 0 picks a free one (PORT; default 8080)."), Options.optional),
    workers: workersOption("Worker slots in this process, 0 for none; default 2")
  },
  (c) =>
    Effect.zipRight(
      setEnv({ HOST: c.host, PORT: c.port, CAIRN_WORKERS: c.workers }),
      launch(async () => (await import("../../main/layers.js")).ServeMain)
    )
).pipe(Command.withDescription("Run the API, the content app and worker slots (configured by environment variables; see README)."))

const worker = Command.make("worker", { workers: workersOption("Worker slots; default 2, at least 1") }, (c) =>
  Effect.zipRight(
    setEnv({ CAIRN_WORKERS: c.workers }),
    launch(async () => (await import("../../main/layers.js")).WorkerMain)
  )).pipe(Command.withDescription("Run a worker process: worker slots and no HTTP listener. Run as many as you like."))

const migrate = Command.make("migrate", {}, () =>
  Effect.gen(function*() {
    const [runtime, { CairnConfigLive }, { resolveDatabaseUrl }, { runMigrations }] = yield* Effect.promise(() =>
      Promise.all([
        import("../../main/runtime.js"),
        import("../../config/config.js"),
        import("../../db/database.js"),
        import("../../db/migrate.js")
      ])
    )
    // The database of DATABASE_URL, or the embedded one (started for this, and stopped after).
    yield* Effect.scoped(Effect.flatMap(resolveDatabaseUrl, (url) => runMigrations(Redacted.value(url)))).pipe(
      Effect.provide(CairnConfigLive),
      Effect.provide(runtime.LoggingLive.pipe(Layer.provide(CairnConfigLive)))
    )
    yield* Console.log("migrations applied")
  })).pipe(Command.withDescription("Apply the database migrations and exit (serve and worker also do it at start)."))

export const processCommands = [serve, worker, migrate] as const
