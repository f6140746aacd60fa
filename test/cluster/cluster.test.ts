/**
 * A cluster across network namespaces (support/cluster.ts): two API hosts, two worker hosts,
 * PostgreSQL and the upstream each on its own address. The scenarios run in order on one cluster.
 */
import { createHash } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { watchWrites } from "../support/db.js"
import { makeFiles } from "../support/upstream.js"
import { type ApiHost, type Cluster, startCluster } from "./support/cluster.js"
import { get, post, settled, taskRow, until } from "./support/client.js"
import type { HostProc } from "./support/procs.js"

let cluster: Cluster
let a1: ApiHost
let a2: ApiHost
let w1: HostProc & { readonly pid: number }
let w2: HostProc & { readonly pid: number }
const files = makeFiles(24, { minSize: 1, maxSize: 96 * 1024, seed: 7 })

beforeAll(async () => {
  cluster = await startCluster({ files, logStatements: true })
  ;[a1, a2] = await Promise.all([cluster.startApi("a1"), cluster.startApi("a2")])
  ;[w1, w2] = await Promise.all([cluster.startWorker("w1"), cluster.startWorker("w2")])
})

afterAll(async () => {
  await cluster?.destroy()
})

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex")

describe("a cluster on separate network hosts", () => {
  it("runs a sync -> publish -> distribute graph submitted to one API host on the worker hosts, and serves every file from the other", async () => {
    expect((await post(a1.url, "/api/v1/remotes", { name: "up", url: cluster.upstreamUrl })).status).toBe(201)
    expect((await post(a1.url, "/api/v1/repositories", { name: "repo" })).status).toBe(201)
    expect((await post(a1.url, "/api/v1/distributions", { name: "dist", base_path: "dist" })).status).toBe(201)
    const graph = await post(a1.url, "/api/v1/graphs", {
      label: "mirror",
      nodes: {
        sync: { task: "file.sync", params: { repository: "repo", remote: "up" } },
        publish: { task: "file.publish", params: { version: { $ref: "sync.version" } } },
        serve: { task: "distribution.set", params: { distribution: "dist", publication: { $ref: "publish.publication" } } }
      }
    })
    expect(graph.status).toBe(201)
    const done = await settled(a1.url, graph.body.nodes.serve.outputs.distribution)
    expect(done.error).toBeUndefined()
    expect(done.state).toBe("resolved")

    // Every task ran on a worker host (the API hosts run no worker slots).
    const workerPids = new Set([w1.pid, w2.pid])
    for (const node of ["sync", "publish", "serve"]) {
      const t = await taskRow(cluster.db, graph.body.nodes[node].task)
      expect(t.state).toBe("succeeded")
      expect(workerPids.has(t.worker_pid!)).toBe(true)
    }

    // The other API host serves every file, byte for byte.
    const manifest = await fetch(`${a2.url}/content/dist/PULP_MANIFEST`)
    expect(manifest.status).toBe(200)
    const listed = (await manifest.text()).trim().split("\n").map((l) => l.split(",")[0])
    expect(listed.sort()).toEqual([...cluster.upstreamFiles.keys()].sort())
    for (const [rel, digest] of cluster.upstreamFiles) {
      const res = await fetch(`${a2.url}/content/dist/${rel}`)
      expect(res.status).toBe(200)
      expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(digest)
    }
  })
})

/** Workers by pid, so that a task's worker row tells which host ran it. */
const hostOfPid = (pid: number | null) => (pid === w1.pid ? "w1" : pid === w2.pid ? "w2" : undefined)

/**
 * The completed execution of a settle statement of `task`'s attempt `attempt`, sent from `addr`,
 * in the database's statement log: a handed-back task's cairn_release (the task and attempt are
 * its first and third parameters), or a batch of settles (src/engine/queries/settle.ts,
 * `settleBatch`: cairn_settle_batch, whose second parameter lists each settle as {"t": task,
 * "a": attempt, ...}). Found by its parameters line (which carries the client's address) and the
 * settle call in the statement above it (a statement may span lines).
 */
const settleFrom = (log: string, addr: string, task: string, attempt: number) => {
  const lines = log.split("\n")
  return lines.some((l, i) => {
    if (!(l.includes(`host=${addr} `) && /DETAIL: +parameters:/i.test(l))) return false
    const above = lines.slice(Math.max(0, i - 12), i)
    if (!above.some((s) => /duration: .* execute /.test(s))) return false
    const alone = l.includes(`$1 = '${task}'`) && l.includes(`$3 = '${attempt}'`) && above.some((s) => /cairn_notify\(cairn_(resolve|fail|release)\(/.test(s))
    // The batch's jsonb parameter as the server logs it: keys sorted ("a", then the failure's
    // "c", "m", "n", "s", then "t"), a space after each colon.
    const element = new RegExp(`\\{"a": ?${attempt},[^{}]*"t": ?"${task}"`)
    const batched = element.test(l) && above.some((s) => /cairn_settle_batch\(/.test(s))
    return alone || batched
  })
}

/**
 * The database server's TCP keepalive timers of the connections from `addr`, by client port (ms
 * until the next probe), as `ss` shows them in the database host's namespace.
 */
const keepaliveTimers = async (addr: string) => {
  const out = await cluster.net.run("pg", "ss", ["-tnoH", "state", "established", "dst", addr])
  const timers = new Map<number, number>()
  for (const line of out.split("\n")) {
    const peer = new RegExp(`${addr.replace(/\./g, "\\.")}:(\\d+)`).exec(line)
    const t = /timer:\(keepalive,(?:(\d+)min)?(?:([\d.]+)sec)?(?:([\d.]+)ms)?/.exec(line)
    // ss writes "119min", "4.500sec", "752ms", and this iproute2 also "8.080ms" for 8.080 s.
    const ms = t?.[3] === undefined ? 0 : t[3].includes(".") ? Number(t[3]) * 1000 : Number(t[3])
    if (peer && t) timers.set(Number(peer[1]), Number(t[1] ?? 0) * 60_000 + Number(t[2] ?? 0) * 1000 + ms)
  }
  if (process.env.CAIRN_CLUSTER_LOGS) console.log(`ss (${addr}):\n${out}`)
  return timers
}

describe("a worker host whose link is cut mid-task", () => {
  it("loses the task to the other worker; back on the network it commits nothing of it, rejoins and takes new work", async () => {
    const graph = await post(a1.url, "/api/v1/graphs", {
      nodes: { long: { task: "debug.sleep", params: { ms: 3000, value: "done" }, max_attempts: 2 } }
    })
    expect(graph.status).toBe(201)
    const taskId: string = graph.body.nodes.long.task
    const first = await until("the task to run", async () => {
      const t = await taskRow(cluster.db, taskId)
      return t.state === "running" && t.worker_pid !== null ? t : undefined
    }, 60_000, 20)
    const victim = hostOfPid(first.worker_pid)!
    const [cut, other] = victim === "w1" ? [w1, w2] : [w2, w1]
    const cutAddr = cluster.net.host(victim).addr

    // The server side of the cut worker's session has short TCP keepalives (ss shows the timer).
    const session = (await cluster.db.query<{ port: number }>(
      `SELECT a.client_port AS port FROM workers w JOIN pg_stat_activity a ON a.pid = w.backend_pid WHERE w.id = $1`,
      [first.worker_id]
    )).rows[0]!
    const keepalive = (await keepaliveTimers(cutAddr)).get(session.port)
    expect(keepalive).toBeLessThanOrEqual(10_000)

    const cutAt = Date.now()
    await cluster.net.cut(victim)
    const taken = await until("the other worker to take the task over", async () => {
      const t = await taskRow(cluster.db, taskId)
      return t.attempts === 2 && t.worker_pid === other.pid ? t : undefined
    }, 120_000)
    const takeoverMs = Date.now() - cutAt
    // It fenced itself (stopped claiming its tasks as its own) before the other worker started the
    // retry: its log line's time against the retry's start, on the one clock of this machine.
    const fenced = await cut.waitFor(/timestamp=(\S+) .*stopped: no heartbeat for/, "the cut worker to fence itself", 60_000)
    const retryStarted = (await cluster.db.query<{ at: Date }>(`SELECT started_at AS at FROM tasks WHERE id = $1`, [taskId])).rows[0]!.at
    expect(new Date(fenced[1]!).getTime()).toBeLessThan(retryStarted.getTime())
    const done = await settled(a2.url, graph.body.nodes.long.outputs.result)
    expect(done.state).toBe("resolved")
    const after = await taskRow(cluster.db, taskId)
    expect(after).toMatchObject({ state: "succeeded", attempts: 2, worker_id: taken.worker_id })
    const writes = await watchWrites(cluster.dbUrl)
    const before = await writes.fingerprint()

    await cluster.net.restore(victim)
    // Its attempt ended one way or the other: it either stopped the handler when it fenced itself,
    // or finished it and tried to settle; then it registered again.
    const registrations = () => cut.output().match(/worker \S+ registered/g)?.length ?? 0
    await until("the cut worker to register again", async () => registrations() >= 2, 180_000)
    const finished = /task debug\.sleep succeeded/.test(cut.output())
    // If it finished, its settle either reached the database late (and matched nothing), or its
    // pooled connection had died with the link and the settle failed there (which it logs): wait
    // for whichever happened, so that the check below sees everything it sent.
    let lateSettle: "reached the database" | "failed on its dead connection" | undefined
    if (finished) {
      lateSettle = await until("the cut worker's late settle to reach the database or fail", async () =>
        settleFrom(await cluster.pgLog(), cutAddr, taskId, 1) ? "reached the database" as const
          : new RegExp(`could not settle task ${taskId}`).test(cut.output()) ? "failed on its dead connection" as const
          : undefined, 180_000)
    }
    // Whatever it sent changed nothing: the task settled once, by the other worker.
    expect(await writes.fingerprint()).toEqual(before)
    expect(await taskRow(cluster.db, taskId)).toMatchObject({ state: "succeeded", attempts: 2, worker_id: taken.worker_id })
    await writes.close()
    console.log(
      `worker cut: keepalive timer ${keepalive} ms on its session; task taken over ${takeoverMs} ms after the cut; ` +
        `the cut worker ${finished ? `finished its attempt and its late settle ${lateSettle}` : "stopped its attempt"}; its log: ` +
        JSON.stringify(cut.output().split("\n").filter((l) => /stopped|fenc|lost|could not settle/.test(l)).map((l) => /message="([^"]*)"/.exec(l)?.[1]))
    )

    // It takes new work: while the other worker is busy, the next task can only go to it. (Busy
    // until canceled: a task of a few seconds could end before a loaded machine had the next one
    // claimed, and its worker would then take that one too.)
    const busy = await post(a1.url, "/api/v1/graphs", { nodes: { busy: { task: "debug.sleep", params: { ms: 600_000 } } } })
    const busyTask = await until("the busy task to run", async () => {
      const t = await taskRow(cluster.db, busy.body.nodes.busy.task)
      return t.state === "running" ? t : undefined
    }, 60_000, 20)
    const next = await post(a1.url, "/api/v1/graphs", { nodes: { next: { task: "debug.sleep", params: { ms: 10 } } } })
    expect((await settled(a1.url, next.body.nodes.next.outputs.result)).state).toBe("resolved")
    const ranOn = new Set([hostOfPid(busyTask.worker_pid), hostOfPid((await taskRow(cluster.db, next.body.nodes.next.task)).worker_pid)])
    expect(ranOn.has(victim)).toBe(true)
    expect((await post(a1.url, `/api/v1/graphs/${busy.body.id}/cancel`, {})).status).toBe(202)
    expect((await settled(a1.url, busy.body.nodes.busy.outputs.result)).state).toBe("canceled")
  })
})

describe("an API host cut off from PostgreSQL", () => {
  it("answers 503 with the contract's error body and recovers by itself; clients of the other API host see nothing", async () => {
    const g = await post(a1.url, "/api/v1/graphs", { nodes: { a: { task: "debug.sleep", params: { value: 1 } } } })
    expect(g.status).toBe(201)
    await settled(a1.url, g.body.nodes.a.outputs.result)

    // Its session is the connection with the short keepalive (10 s; the pool's have the system's 2 h).
    const sessionPorts = [...(await keepaliveTimers(cluster.net.host("a1").addr))].filter(([, ms]) => ms <= 10_000).map(([port]) => port)
    expect(sessionPorts).toHaveLength(1)

    const cutAt = Date.now()
    await cluster.net.cut("a1")
    // Requests that need the database: 503 with the contract's body (and Retry-After).
    const refused = await until("a1 to answer 503", async () => {
      const r = await get(a1.url, `/api/v1/graphs/${g.body.id}`)
      return r.status === 503 ? r : (console.log(`a1 answered ${r.status} ${Date.now() - cutAt} ms after the cut`), undefined)
    }, 180_000, 0)
    const firstRefusalMs = Date.now() - cutAt
    expect(refused.body).toEqual({ error: { code: "unavailable", message: expect.any(String) } })
    expect(refused.headers.get("retry-after")).toBe("2")
    const health = await get(a1.url, "/healthz")
    expect(health.status).toBe(503)
    const t0 = Date.now()
    const again = await get(a1.url, `/api/v1/graphs/${g.body.id}`)
    const refusalMs = Date.now() - t0
    expect(again.status).toBe(503)

    // Meanwhile the other API host works as ever: submit, await, serve.
    const other = await post(a2.url, "/api/v1/graphs", { nodes: { b: { task: "debug.sleep", params: { value: 2 } } } })
    expect(other.status).toBe(201)
    expect(await settled(a2.url, other.body.nodes.b.outputs.result)).toMatchObject({ state: "resolved", value: 2 })
    const [rel, digest] = [...cluster.upstreamFiles][0]!
    const file = await fetch(`${a2.url}/content/dist/${rel}`)
    expect(sha256(Buffer.from(await file.arrayBuffer()))).toBe(digest)

    // The partition lasts until the database server has given up on a1's session (keepalives).
    await until("the server to drop a1's session", async () =>
      (await cluster.db.query(`SELECT 1 FROM pg_stat_activity WHERE client_port = $1`, [sessionPorts[0]])).rowCount === 0, 120_000, 200)
    const sessionDroppedMs = Date.now() - cutAt
    await cluster.net.restore("a1")
    const restoredAt = Date.now()
    const back = await until("a1 to answer 200 again", async () => {
      const r = await get(a1.url, `/api/v1/graphs/${g.body.id}`)
      return r.status === 200 ? r : undefined
    }, 180_000, 200)
    expect(back.body.state).toBe("succeeded")
    expect((await get(a1.url, "/healthz")).status).toBe(200)

    // It hears of changes again (its LISTEN session came back too): a file it serves gets new
    // content through the other API host, and this one follows without anyone asking for a 404.
    const bytes = Buffer.from(`new content of ${rel} after the partition`)
    const up = await fetch(`${a2.url}/api/v1/uploads`, { method: "POST", body: bytes })
    expect(up.status).toBe(201)
    const change = await post(a2.url, "/api/v1/graphs", {
      nodes: {
        modify: { task: "repository.modify", params: { repository: "repo", add: [{ relative_path: rel, artifact: ((await up.json()) as { artifact: string }).artifact }] } },
        publish: { task: "file.publish", params: { version: { $ref: "modify.version" } } },
        serve: { task: "distribution.set", params: { distribution: "dist", publication: { $ref: "publish.publication" } } }
      }
    })
    expect(change.status).toBe(201)
    expect((await settled(a2.url, change.body.nodes.serve.outputs.distribution)).state).toBe("resolved")
    await until("a1 to serve the new content", async () => {
      const res = await fetch(`${a1.url}/content/dist/${rel}`)
      return sha256(Buffer.from(await res.arrayBuffer())) === sha256(bytes)
    }, 60_000, 200)
    console.log(`API cut: first 503 ${firstRefusalMs} ms after the cut, later ones in ${refusalMs} ms; its session dropped by the server ${sessionDroppedMs} ms after the cut; answers again ${Date.now() - restoredAt} ms after the link returned`)
  })
})

describe("connections", () => {
  it("each process opens at most its pool (CAIRN_DB_POOL_SIZE) plus one session connection", async () => {
    const pool = Number(cluster.cairnEnv("a1").CAIRN_DB_POOL_SIZE)
    const hosts = ["a1", "a2", "w1", "w2"] as const
    const addrs = new Map(hosts.map((h) => [cluster.net.host(h).addr, h]))
    const peak = new Map<string, number>()
    const sample = async () => {
      const rows = (await cluster.db.query<{ addr: string; n: number }>(
        `SELECT host(client_addr) AS addr, count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'client backend' GROUP BY 1`
      )).rows
      for (const r of rows) {
        const h = addrs.get(r.addr)
        if (h) peak.set(h, Math.max(peak.get(h) ?? 0, r.n))
      }
    }
    // Load on every process at once: many concurrent requests on both API hosts, tasks on both workers.
    const nodes = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`n${i}`, { task: "debug.sleep", params: { ms: 300 } }]))
    const graph = await post(a1.url, "/api/v1/graphs", { nodes })
    let done = false
    const sampler = (async () => {
      while (!done) {
        await sample()
        await new Promise((r) => setTimeout(r, 50))
      }
    })()
    await Promise.all([
      ...[a1, a2].flatMap((a) => Array.from({ length: 24 }, () => get(a.url, `/api/v1/graphs/${graph.body.id}`))),
      ...Object.values<any>(graph.body.nodes).map((n) => settled(a2.url, n.outputs.result))
    ])
    done = true
    await sampler
    console.log(`connections per host at peak: ${JSON.stringify(Object.fromEntries(peak))} (pool ${pool} + 1 session)`)
    for (const h of hosts) {
      expect(peak.get(h), h).toBeGreaterThanOrEqual(1)
      expect(peak.get(h), h).toBeLessThanOrEqual(pool + 1)
    }
  })
})
