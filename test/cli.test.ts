/**
 * The `cairn` command, run as users run it: the real binary (bin/cairn.js) as a child process,
 * against a real server that is itself started by the binary (`cairn serve --workers 0`), with
 * every task run by a `cairn worker` process, and a fixture upstream to sync from.
 *
 * stdout is a pipe here, so `submit --wait` shows its line-per-change form (the terminal form
 * redraws in place and is not tested). Each invocation costs a second or more (tsx), so each test
 * asks several things of few invocations, and independent ones run in parallel.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createTestDatabase } from "./support/db.js"
import { dataDirOf, until } from "./support/processes.js"
import { makeFiles, startUpstream, type Upstream } from "./support/upstream.js"

const root = fileURLToPath(new URL("..", import.meta.url))
const bin = path.join(root, "bin", "cairn.js")
const sha = (b: Buffer | string) => createHash("sha256").update(b).digest("hex")

/** Fast liveness timings, as test/support/processes.ts gives the processes it starts. */
const processEnv = {
  CAIRN_HEARTBEAT_MS: "200",
  CAIRN_HEARTBEAT_TIMEOUT_MS: "3000",
  CAIRN_REAP_INTERVAL_MS: "250",
  CAIRN_POLL_INTERVAL_MS: "2000",
  CAIRN_SHUTDOWN_GRACE_MS: "5000"
}

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

let dbUrl: string
let url: string
let serve: ChildProcess
let worker: ChildProcess
let serveOut = ""
let upstream: Upstream
let tmp: string
const files = makeFiles(6, { seed: 7, maxSize: 40_000 })

const start = (args: ReadonlyArray<string>, env: Record<string, string>) => {
  const child = spawn(process.execPath, [bin, ...args], { cwd: root, env: { ...process.env, ...processEnv, ...env }, stdio: ["ignore", "pipe", "pipe"] })
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  return { child, exited }
}

/** `cairn <args>` to the end, with CAIRN_URL pointing at the test server. */
const cairn = (args: ReadonlyArray<string>, opts: { stdin?: string; env?: Record<string, string> } = {}): Promise<Run> =>
  new Promise((resolve, reject) => {
    const env: Record<string, string | undefined> = { ...process.env, CAIRN_URL: url, NO_COLOR: "1", ...opts.env }
    delete env.CAIRN_TOKEN
    const child = spawn(process.execPath, [bin, ...args], { cwd: root, env, stdio: ["pipe", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d) => (stdout += d))
    child.stderr.on("data", (d) => (stderr += d))
    child.on("error", reject)
    child.stdin.end(opts.stdin ?? "")
    const timer = setTimeout(() => child.kill("SIGKILL"), 90_000)
    child.on("close", (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })

/** A failure as the CLI promises it: non-zero, one line on stderr, no stack trace. */
const expectOneSentence = (r: Run, pattern: RegExp) => {
  expect(r.code, r.stderr).not.toBe(0)
  const lines = r.stderr.trim().split("\n")
  expect(lines, r.stderr).toHaveLength(1)
  expect(lines[0]).toMatch(/^cairn: /)
  expect(lines[0]).toMatch(pattern)
  expect(r.stderr).not.toMatch(/\n\s+at /)
}

const writeTmp = (name: string, content: string | Buffer) => {
  const p = path.join(tmp, name)
  fs.writeFileSync(p, content)
  return p
}

const closedPort = () =>
  new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port
      s.close(() => resolve(port))
    })
  })

beforeAll(async () => {
  dbUrl = await createTestDatabase()
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "cairn-cli-"))
  upstream = await startUpstream(files)
  const env = { DATABASE_URL: dbUrl, CAIRN_DATA_DIR: dataDirOf(dbUrl) }
  // The API alone; every task below is run by the `cairn worker` process.
  const s = start(["serve", "--port", "0", "--workers", "0"], env)
  serve = s.child
  serve.stdout!.on("data", (d) => (serveOut += d))
  serve.stderr!.on("data", (d) => (serveOut += d))
  url = await until("`cairn serve` to listen", () => {
    if (serve.exitCode !== null) throw new Error(`cairn serve exited early:\n${serveOut}`)
    return /cairn listening on (http:\/\/[\d.]+:\d+)/.exec(serveOut)?.[1]
  }, 60_000)
  worker = start(["worker", "--workers", "2"], env).child
  await until("the worker to register", async () => ((await (await fetch(`${url}/api/v1/workers`)).json()) as Array<unknown>).length > 0, 60_000, 100)
})

afterAll(async () => {
  for (const p of [worker, serve]) {
    if (p && p.exitCode === null) {
      const exited = new Promise((r) => p.once("exit", r))
      p.kill("SIGTERM")
      await exited
    }
  }
  await upstream?.close()
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true })
})

describe("cairn", () => {
  it("submit --wait follows a graph to its end: a line per task change, the final state, exit 0", async () => {
    const graph = writeTmp("ok.json", JSON.stringify({
      label: "cli ok",
      nodes: {
        first: { task: "debug.sleep", params: { ms: 300, value: { n: 1 } } },
        second: { task: "debug.sleep", params: { value: { $ref: "first.result" } } }
      }
    }))
    const r = await cairn(["submit", graph, "--wait"])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toBe("")
    const lines = r.stdout.trim().split("\n")
    expect(lines[0]).toMatch(/^submitted graph [0-9A-Z]{26} \(2 tasks\)$/)
    // Plain lines (stdout is not a terminal): no escapes, every task ends with a "succeeded" line.
    expect(r.stdout).not.toMatch(/\x1b\[/)
    for (const node of ["first", "second"]) {
      expect(lines.filter((l) => l.startsWith(`${node} `)).at(-1)).toMatch(new RegExp(`^${node}\\s+debug\\.sleep\\s+succeeded\\s+took `))
    }
    expect(lines.at(-1)).toMatch(/^graph [0-9A-Z]{26} succeeded in /)
  })

  it("a failing graph exits non-zero, naming the task and the cause; --json gives the final view", async () => {
    const graph = JSON.stringify({
      nodes: {
        fetch: { task: "debug.sleep", params: { ms: 100 } },
        store: { task: "debug.sleep", params: { fail: "no disk left", inputs: [{ $ref: "fetch.result" }] } },
        after: { task: "debug.sleep", params: { inputs: [{ $ref: "store.result" }] } }
      }
    })
    const [plain, json] = await Promise.all([
      cairn(["submit", "-", "--wait"], { stdin: graph }),
      cairn(["submit", "-", "--wait", "--json"], { stdin: graph })
    ])
    expectOneSentence(plain, /graph [0-9A-Z]{26} failed: task store \(debug\.sleep\) failed: no disk left/)
    expect(plain.stdout).toMatch(/^after\s+debug\.sleep\s+failed .*because store failed: no disk left$/m)
    expect(plain.stdout).toMatch(/^graph [0-9A-Z]{26} failed in .*: task store \(debug\.sleep\) failed: no disk left$/m)

    expectOneSentence(json, /task store \(debug\.sleep\) failed: no disk left/)
    const view = JSON.parse(json.stdout)
    expect(view.state).toBe("failed")
    expect(view.nodes.fetch.state).toBe("succeeded")
    expect(view.nodes.store.error).toMatchObject({ code: "task_failed", message: "no disk left" })
    expect(view.nodes.after.error).toMatchObject({ code: "upstream_failed", cause_task: view.nodes.store.id })
  })

  it("fails in one sentence: unreadable graph, a graph the server refuses, an unknown id, an unreachable server, a bad command line", async () => {
    const notJson = writeTmp("bad.json", "{ nodes: oops")
    const port = await closedPort()
    const [invalid, refused, unknown, unreachable, usage, badBackoff, longBackoff] = await Promise.all([
      cairn(["submit", notJson]),
      cairn(["submit", "-"], { stdin: JSON.stringify({ nodes: { good: { task: "debug.sleep" }, odd: { task: "no.such.kind" } } }) }),
      cairn(["status", "01ARZ3NDEKTSV4RRFFQ69G5FAV"]),
      cairn(["workers"], { env: { CAIRN_URL: `http://127.0.0.1:${port}` } }),
      cairn(["sync", "files"]),
      cairn(["sync", "nothing", "--remote", "none", "--retry-backoff", "soon"]),
      cairn(["sync", "nothing", "--remote", "none", "--retry-backoff", "11m"])
    ])
    expectOneSentence(badBackoff, /--retry-backoff must be a duration like/)
    // Passed through to the graph body, where the server's 400 names the node and the limit.
    expectOneSentence(longBackoff, /the graph is invalid: .*sync.*retry_backoff_ms/)
    expectOneSentence(invalid, /bad\.json is not valid JSON/)
    // The server's 400 names the offending node and what is wrong with it.
    expectOneSentence(refused, /the graph is invalid: .*odd: unknown task kind "no\.such\.kind"/)
    expect(refused.stderr).not.toMatch(/good:/)
    expectOneSentence(unknown, /01ARZ3NDEKTSV4RRFFQ69G5FAV is not a graph, task or future known to http/)
    expectOneSentence(unreachable, new RegExp(`cannot reach the cairn server at http://127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\)`))
    // A command line that does not parse: exit 2, the parser's message.
    expect(usage.code).toBe(2)
    expect(usage.stderr).toMatch(/--remote/)
  })

  it("--json output parses: submit, status and wait", async () => {
    const submitted = await cairn(["submit", "-", "--json"], {
      stdin: JSON.stringify({ nodes: { hello: { task: "debug.sleep", params: { ms: 200, value: { greeting: "hello" } }, priority: 3, retry_backoff_ms: 250 } } })
    })
    expect(submitted.code, submitted.stderr).toBe(0)
    const g = JSON.parse(submitted.stdout)
    expect(g.id).toMatch(/^[0-9A-Z]{26}$/)
    const future = g.nodes.hello.outputs.result
    const [waited, status] = await Promise.all([cairn(["wait", future, "--json"]), cairn(["status", g.id.toLowerCase(), "--json"])])
    expect(waited.code, waited.stderr).toBe(0)
    expect(JSON.parse(waited.stdout)).toMatchObject({ id: future, state: "resolved", value: { greeting: "hello" } })
    expect(status.code, status.stderr).toBe(0)
    expect(JSON.parse(status.stdout).graph).toMatchObject({ id: g.id, nodes: { hello: { task: "debug.sleep", priority: 3, retry_backoff_ms: 250 } } })
  })

  it("creates a remote, a repository and a distribution, syncs -> publishes -> distributes with --wait, and the file is served", async () => {
    const created = await Promise.all([
      cairn(["remote", "create", "up", upstream.url, "--json"]),
      cairn(["repo", "create", "files", "--description", "from the fixture"]),
      cairn(["dist", "create", "files", "--base-path", "pub/files"])
    ])
    for (const r of created) expect(r.code, r.stderr).toBe(0)
    expect(JSON.parse(created[0]!.stdout)).toMatchObject({ name: "up", url: upstream.url, policy: "immediate" })
    expect(created[1]!.stdout).toMatch(/^created repository files \(revision [0-9A-Z]{26}\)/)

    const sync = await cairn([
      "sync", "files", "--remote", "up", "--publish", "--distribute", "files", "--wait",
      "--priority", "5", "--attempts", "3", "--retry-backoff", "1s"
    ])
    expect(sync.code, sync.stderr + sync.stdout).toBe(0)
    // --priority on every node; --attempts and --retry-backoff on the sync, which talks to the network.
    const graphId = /^submitted graph ([0-9A-Z]{26})/m.exec(sync.stdout)?.[1]
    const graph = (await (await fetch(`${url}/api/v1/graphs/${graphId}`)).json()) as { nodes: Record<string, object> }
    expect(graph.nodes.sync).toMatchObject({ priority: 5, max_attempts: 3, retry_backoff_ms: 1000 })
    expect(graph.nodes.publish).toMatchObject({ priority: 5, max_attempts: 1, retry_backoff_ms: 0 })
    expect(graph.nodes.distribute).toMatchObject({ priority: 5 })
    const lines = sync.stdout.trim().split("\n")
    for (const node of ["sync", "publish", "distribute"]) {
      expect(lines.filter((l) => l.startsWith(`${node} `)).at(-1), sync.stdout).toMatch(/\ssucceeded\s/)
    }
    // The sync's line carries its progress: files done/total.
    expect(sync.stdout).toMatch(new RegExp(`^sync\\s+file\\.sync\\s+succeeded\\s+\\d+/${Object.keys(files).length} files`, "m"))
    expect(sync.stdout).toMatch(/^repository files is at version 1$/m)
    expect(sync.stdout).toContain(`serves it at ${url}/content/pub/files/`)

    const [name, bytes] = Object.entries(files)[0]!
    const res = await fetch(`${url}/content/pub/files/${name}`)
    expect(res.status).toBe(200)
    expect(sha(Buffer.from(await res.arrayBuffer()))).toBe(sha(bytes))
  })

  it("upload --repo streams a file into an artifact and adds it to the repository as a new version", async () => {
    const content = Buffer.from("uploaded through the cli\n".repeat(1000))
    const file = writeTmp("notes.txt", content)
    const up = await cairn(["upload", file, "--repo", "files", "--path", "docs/notes.txt", "--json"])
    expect(up.code, up.stderr).toBe(0)
    const out = JSON.parse(up.stdout)
    expect(out.upload).toMatchObject({ sha256: sha(content), size: content.length })
    expect(out.graph.state).toBe("succeeded")
    expect(out.version.number).toBe(2)

    const listed = await cairn(["repo", "content", "files", "--json"])
    expect(listed.code, listed.stderr).toBe(0)
    const items = JSON.parse(listed.stdout) as Array<{ relative_path: string; sha256: string }>
    expect(items).toHaveLength(Object.keys(files).length + 1)
    expect(items.find((i) => i.relative_path === "docs/notes.txt")?.sha256).toBe(sha(content))
  })

  it("migrate applies migrations; SIGTERM stops serve and worker cleanly (exit 0)", async () => {
    const migrate = await cairn(["migrate"], { env: { DATABASE_URL: dbUrl, CAIRN_LOG_LEVEL: "warning" } })
    expect(migrate.code, migrate.stderr).toBe(0)
    expect(migrate.stdout.trim()).toBe("migrations applied")
    for (const p of [worker, serve]) {
      const exited = new Promise<number | null>((r) => p.once("exit", (code) => r(code)))
      p.kill("SIGTERM")
      expect(await exited).toBe(0)
    }
  })
})
