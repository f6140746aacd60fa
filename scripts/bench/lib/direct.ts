/**
 * cairn's submission without HTTP: the engine's own `submitGraph` called in this process (the
 * library call graphile-worker's addJob and pg-boss's send are the peers of), on its own pool.
 */
import { Effect, Layer, ManagedRuntime, Option, Redacted } from "effect"
import { CairnConfigFrom } from "../../../src/config/config.js"
import { DbLive } from "../../../src/db/client.js"
import { TaskKinds } from "../../../src/engine/kind.js"
import { builtinKinds } from "../../../src/engine/kinds/index.js"
import { type GraphSpec, submitGraph } from "../../../src/engine/submit.js"

export const directSubmitter = (url: string, poolSize = 4) => {
  const layer = Layer.mergeAll(
    DbLive(Redacted.make(url), poolSize),
    TaskKinds.layer(builtinKinds),
    CairnConfigFrom({ databaseUrl: Option.some(Redacted.make(url)) })
  )
  const runtime = ManagedRuntime.make(layer)
  return {
    submit: (spec: GraphSpec) => runtime.runPromise(submitGraph(spec).pipe(Effect.orDie)),
    close: () => runtime.dispose()
  }
}
