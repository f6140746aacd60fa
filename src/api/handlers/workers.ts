import { HttpApiBuilder } from "@effect/platform"
import { sql } from "drizzle-orm"
import { Effect } from "effect"
import { Db } from "../../db/client.js"
import { CairnApi } from "../definition.js"
import { toApi } from "../engine-errors.js"

export const WorkersLive = HttpApiBuilder.group(CairnApi, "workers", (h) =>
  h.handle("list", () =>
    toApi(Effect.flatMap(Db, (db) =>
      db.rows<{ id: string; name: string; host: string; pid: number; slots: number; started_at: Date; last_heartbeat: Date; running: Array<string> }>(sql`
        SELECT w.id, w.name, w.host, w.pid, w.slots, w.started_at, w.last_heartbeat,
               coalesce((SELECT array_agg(t.id ORDER BY t.id) FROM tasks t WHERE t.state = 'running' AND t.worker_id = w.id), '{}') AS running
        FROM workers w ORDER BY w.started_at`)
    )).pipe(
      Effect.map((rows) =>
        rows.map((w) => ({
          ...w,
          started_at: new Date(w.started_at).toISOString(),
          last_heartbeat: new Date(w.last_heartbeat).toISOString()
        }))
      )
    ))
)
