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
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createTestDatabase } from "./support/db.js"
import { makePki } from "./support/network.js"
import { dataDirOf, until } from "./support/processes.js"
import { makeFiles, startUpstream, type Upstream } from "./support/upstream.js"

const root = fileURLToPath(new URL("..", import.meta.url))
const bin = path.join(root, "bin", "cairn.js")
const sha = (b: Buffer | string) => createHash("sha256").update(b).digest("hex")

/** The timings test/support/processes.ts gives the processes it starts (and why the heartbeat timeout is long). */
const processEnv = {
  CAIRN_HEARTBEAT_MS: "200",
  CAIRN_HEARTBEAT_TIMEOUT_MS: "60000",
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

/**
 * A port nothing listens on. Not one the test frees itself: another process's listen(0) (a server
 * of a test file running alongside) can take it before the client tries it. A privileged port is
 * never handed out by listen(0) (nor to outgoing connections), and port 2 is not on the Fetch
 * standard's list of ports that fetch refuses outright (1 is).
 */
const CLOSED_PORT = 2

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
    const [invalid, refused, unknown, unreachable, usage, badBackoff, longBackoff] = await Promise.all([
      cairn(["submit", notJson]),
      cairn(["submit", "-"], { stdin: JSON.stringify({ nodes: { good: { task: "debug.sleep" }, odd: { task: "no.such.kind" } } }) }),
      cairn(["status", "01ARZ3NDEKTSV4RRFFQ69G5FAV"]),
      cairn(["workers"], { env: { CAIRN_URL: `http://127.0.0.1:${CLOSED_PORT}` } }),
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
    expectOneSentence(unreachable, new RegExp(`cannot reach the cairn server at http://127\\.0\\.0\\.1:${CLOSED_PORT} \\(ECONNREFUSED\\)`))
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

  it("dist update guards the content with tokens from a file or signed URLs, dist sign prints one, --no-guard opens it; mistakes fail in one sentence", async () => {
    const [name, bytes] = Object.entries(files)[0]!
    const file = `${url}/content/pub/files/${name}`
    const tokens = writeTmp("guard-tokens.txt", "# tokens of the files distribution\ncli-guard-token-1\n\n  cli-guard-token-2  \n")
    const guarded = await cairn(["dist", "update", "files", "--guard-token-file", tokens, "--json"])
    expect(guarded.code, guarded.stderr).toBe(0)
    expect(JSON.parse(guarded.stdout).guard).toEqual({ type: "token", token_count: 2 })
    expect(guarded.stdout + guarded.stderr).not.toContain("cli-guard-token")
    expect((await fetch(file)).status).toBe(401)
    const allowed = await fetch(file, { headers: { authorization: "Bearer cli-guard-token-2" } })
    expect(allowed.status).toBe(200)
    expect(sha(Buffer.from(await allowed.arrayBuffer()))).toBe(sha(bytes))

    const bad = [
      [["dist", "update", "files", "--guard-token-file", path.join(tmp, "missing.txt")], /cannot read .*missing\.txt: no such file/],
      [["dist", "update", "files", "--guard-token-file", writeTmp("bad-tokens.txt", "cli-guard-fine\ncli guard secret\n")], /bad-tokens\.txt line 2: a guard token is/],
      [["dist", "update", "files", "--guard", "signed", "--no-guard"], /give only one of/],
      [["dist", "sign", "files", name], /does not serve signed URLs/]
    ] as const
    const failed = await Promise.all(bad.map(([args]) => cairn(args)))
    for (const [i, r] of failed.entries()) {
      expectOneSentence(r, bad[i]![1])
      expect(r.stderr).not.toContain("secret")
    }
    // Nothing changed: still the token guard.
    expect((await fetch(file)).status).toBe(401)

    expect((await cairn(["dist", "update", "files", "--guard", "signed"])).code).toBe(0)
    const [signed, signedJson] = await Promise.all([cairn(["dist", "sign", "files", name, "--expires", "10m"]), cairn(["dist", "sign", "files", name, "--json"])])
    expect(signed.code, signed.stderr).toBe(0)
    const signedUrl = signed.stdout.trim()
    expect(signedUrl).toMatch(new RegExp(`^${url}/content/pub/files/.+\\?expires=\\d+&signature=[0-9a-f]{64}$`))
    expect((await fetch(signedUrl)).status).toBe(200)
    expect((await fetch(file)).status).toBe(403)
    const json = JSON.parse(signedJson.stdout)
    expect(json.url).toBe(url + json.path)
    // The default lifetime is an hour.
    expect(json.expires - Math.floor(Date.now() / 1000)).toBeGreaterThan(3500)
    expect(json.expires - Math.floor(Date.now() / 1000)).toBeLessThanOrEqual(3600)

    const opened = await cairn(["dist", "update", "files", "--no-guard", "--json"])
    expect(opened.code, opened.stderr).toBe(0)
    expect(JSON.parse(opened.stdout).guard).toBeNull()
    expect((await fetch(file)).status).toBe(200)
    // A dozen invocations of the binary, a second or more each (several on a loaded machine).
  }, 300_000)

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

  describe("remote network settings", () => {
    const PASSWORD = "pa55-word-from-env"
    const HEADER_VALUE = "key-value-not-to-show"
    const getRemote = async (name: string) => (await (await fetch(`${url}/api/v1/remotes/${name}`)).json()) as Record<string, unknown>

    it("create takes every setting (certificates and key from files, the password from an env variable); show displays them without secrets", async () => {
      const pki = makePki()
      const [ca, cert, key] = [writeTmp("ca.pem", pki.ca), writeTmp("client.pem", pki.clientCert), writeTmp("client.key", pki.clientKey)]
      const r = await cairn([
        "remote", "create", "net", upstream.url, "--json",
        "--proxy-url", "http://proxy.internal:3128", "--ca-cert", ca, "--client-cert", cert, "--client-key", key,
        "--username", "sync", "--password-env", "REMOTE_PASSWORD",
        "--header", `X-Api-Key: ${HEADER_VALUE}`, "--header", "X-Trace:a:b",
        "--connect-timeout", "5s", "--total-timeout", "10m", "--max-retries", "5", "--rate-limit", "2.5"
      ], { env: { REMOTE_PASSWORD: PASSWORD } })
      expect(r.code, r.stderr).toBe(0)
      expect(await getRemote("net")).toMatchObject({
        proxy_url: "http://proxy.internal:3128/", ca_cert: pki.ca, client_cert: pki.clientCert, has_client_key: true,
        username: "sync", has_password: true, header_names: ["x-api-key", "x-trace"],
        connect_timeout_ms: 5000, total_timeout_ms: 600_000, max_retries: 5, rate_limit: 2.5
      })

      const [shown, json] = await Promise.all([cairn(["remote", "show", "net"]), cairn(["remote", "show", "net", "--json"])])
      expect(shown.code, shown.stderr).toBe(0)
      const line = (field: string) => new RegExp(`^${field}:\\s+(.*)$`, "m").exec(shown.stdout)?.[1]
      expect(line("ca_cert")).toMatch(/^CN=cairn test ca, expires \d{4}-\d\d-\d\d$/)
      expect(line("client_cert")).toMatch(/^CN=cairn test client, expires /)
      expect(line("header_names")).toBe("x-api-key, x-trace")
      expect(line("has_password")).toBe("true")
      expect(line("connect_timeout_ms")).toBe("5000")
      expect(line("rate_limit")).toBe("2.5")
      expect(line("proxy_url")).toBe("http://proxy.internal:3128/")
      for (const out of [shown.stdout, json.stdout]) {
        expect(out).not.toContain(PASSWORD)
        expect(out).not.toContain(HEADER_VALUE)
        expect(out).not.toContain("PRIVATE KEY")
      }
      expect(JSON.parse(json.stdout)).toMatchObject({ ca_cert: pki.ca, header_names: ["x-api-key", "x-trace"] })
    })

    it("update changes settings (password from stdin, headers replaced) and --clear unsets them", async () => {
      const changed = await cairn(["remote", "update", "net", "--password-stdin", "--header", "X-Other: 1", "--max-retries", "0", "--clear", "proxy-url", "--clear", "rate-limit"], {
        stdin: "new-secret\n"
      })
      expect(changed.code, changed.stderr).toBe(0)
      expect(changed.stdout).toMatch(/^remote net is at revision [0-9A-Z]{26}$/m)
      expect(await getRemote("net")).toMatchObject({
        proxy_url: null, rate_limit: null, max_retries: 0, header_names: ["x-other"], has_password: true, username: "sync",
        has_client_key: true, connect_timeout_ms: 5000
      })
      const cleared = await cairn(["remote", "update", "net", "--clear", "client-cert", "--clear", "client-key", "--clear", "password", "--clear", "username",
        "--clear", "header", "--clear", "ca-cert", "--clear", "connect-timeout", "--clear", "total-timeout", "--clear", "max-retries"])
      expect(cleared.code, cleared.stderr).toBe(0)
      expect(await getRemote("net")).toMatchObject({
        ca_cert: null, client_cert: null, has_client_key: false, username: null, has_password: false, header_names: [],
        connect_timeout_ms: null, total_timeout_ms: null, max_retries: null
      })
      const shown = await cairn(["remote", "show", "net"])
      expect(shown.stdout).toMatch(/^header_names:\s+-$/m)
    })

    it("bad input stops with one sentence naming the problem and sends nothing", async () => {
      const before = await getRemote("net")
      const pem = writeTmp("not-a-key.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
      const missing = path.join(tmp, "no-such.pem")
      const cases: Array<[ReadonlyArray<string>, RegExp, Record<string, string>?]> = [
        [["--ca-cert", missing], new RegExp(`cannot read --ca-cert ${missing.replace(/[.]/g, "\\.")}: no such file`)],
        [["--client-key", tmp], /cannot read --client-key .*: EISDIR/],
        [["--header", `X-Api-Key ${HEADER_VALUE}`], /--header number 1 has no colon: give it as "Name: value"/],
        [["--header", "A: 1", "--header", ": value"], /--header number 2 must be "Name: value", with a header name before the colon/],
        [["--password-env", "CAIRN_TEST_UNSET_VAR"], /--password-env CAIRN_TEST_UNSET_VAR: the environment variable CAIRN_TEST_UNSET_VAR is not set/],
        [["--password-stdin"], /--password-stdin: stdin is empty/],
        [["--password-env", "P", "--password-stdin"], /give --password-env or --password-stdin, not both/, { P: "x" }],
        [["--proxy-url", "http://u:secret@proxy:3128"], /--proxy-url must not carry credentials .* give --proxy-url-env/],
        [["--proxy-url-env", "CAIRN_TEST_UNSET_VAR"], /--proxy-url-env CAIRN_TEST_UNSET_VAR: the environment variable CAIRN_TEST_UNSET_VAR is not set/],
        [["--connect-timeout", "5 parsecs"], /--connect-timeout must be a duration like 24h/],
        [["--clear", "rate-limit", "--rate-limit", "3"], /--clear rate-limit and a new rate-limit cannot be given together/],
        // The server's own check, as it says it (the file was read; the value is refused).
        [["--ca-cert", pem], /ca_cert: certificate 1 of 1 does not parse/]
      ]
      const runs = await Promise.all(cases.map(([args, , env]) => cairn(["remote", "update", "net", ...args], env ? { env } : {})))
      runs.forEach((r, i) => {
        expectOneSentence(r, cases[i]![1])
        expect(r.stderr).not.toContain(HEADER_VALUE)
      })
      expectOneSentence(await cairn(["remote", "update", "net"]), /nothing to change: give an option to change/)
      const create = await cairn(["remote", "create", "never", upstream.url, "--client-cert", missing])
      expectOneSentence(create, /cannot read --client-cert/)
      expect((await fetch(`${url}/api/v1/remotes/never`)).status).toBe(404)
      expect(await getRemote("net")).toEqual(before)
    })
  })

  it("lifecycle: repo create/update --retain, repo versions [show|delete], gc --reclaim, purge --older-than, with --help", async () => {
    expect((await cairn(["repo", "create", "kept", "--retain", "2"])).code).toBe(0)
    // Three versions, through the API (the sync command is tested above).
    for (let i = 1; i <= 3; i++) {
      upstream.setFile("kept.txt", `kept ${i}\n`)
      const g = await (await fetch(`${url}/api/v1/graphs`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ nodes: { sync: { task: "file.sync", params: { repository: "kept", remote: "up" } } } })
      })).json() as { nodes: { sync: { outputs: { version: string } } } }
      await until("the sync", async () => ((await (await fetch(`${url}/api/v1/futures/${g.nodes.sync.outputs.version}?wait=5`)).json()) as { state: string }).state === "resolved", 60_000, 0)
    }
    upstream.removeFile("kept.txt")
    const [list, badRetain, help] = await Promise.all([
      cairn(["repo", "versions", "kept"]),
      cairn(["repo", "update", "kept", "--retain", "0"]),
      cairn(["purge", "--help"])
    ])
    expect(list.code, list.stderr).toBe(0)
    expect(list.stdout.split("\n")[0]).toMatch(/^version\s+files\s+created_at\s+held by$/)
    expect(list.stdout).toMatch(/^3\s+.*repository \(latest version\), repository \(retained\)$/m)
    expect(list.stdout).toMatch(/^2\s+.*repository \(retained\)$/m)
    expect(list.stdout).not.toMatch(/^1\s/m)
    expect(badRetain.code).toBe(2)
    expect(badRetain.stderr + badRetain.stdout).toMatch(/--retain must be a whole number >= 1 or "all"/)
    expect(help.code).toBe(0)
    expect(help.stdout).toMatch(/--older-than/)
    expect(help.stdout).toMatch(/history\.purge/)

    const [lower, deleted] = await Promise.all([
      cairn(["repo", "update", "kept", "--retain", "all", "--json"]),
      cairn(["repo", "versions", "delete", "kept", "2", "--wait"])
    ])
    expect(lower.code, lower.stderr).toBe(0)
    expect(JSON.parse(lower.stdout).retain_versions).toBeNull()
    expect(deleted.code, deleted.stderr).toBe(0)
    expect(deleted.stdout).toMatch(/^released:\s+\[2\]$/m)
    const [gone, unknown] = await Promise.all([cairn(["repo", "versions", "show", "kept", "2"]), cairn(["repo", "versions", "delete", "kept", "9"])])
    expectOneSentence(gone, /repository kept has no version 2/)
    expectOneSentence(unknown, /repository kept has no version 9/)

    const gc = await cairn(["gc", "--protection", "0s", "--reclaim", "kept", "--wait"])
    expect(gc.code, gc.stderr).toBe(0)
    expect(gc.stdout).toMatch(/^repository_versions:\s+[1-9]\d*$/m)
    expect(gc.stdout).toMatch(/^demoted:\s+\d+$/m)
    const purge = await cairn(["purge", "--older-than", "0s", "--wait"])
    expect(purge.code, purge.stderr).toBe(0)
    expect(purge.stdout).toMatch(/^graphs:\s+[1-9]\d*$/m)
    expectOneSentence(await cairn(["purge", "--older-than", "soon"]), /--older-than must be a duration/)
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
