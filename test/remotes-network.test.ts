/**
 * Remotes for real networks, end to end with real servers and real cairn processes: an HTTP proxy
 * (CONNECT for https, forwarding for http, with and without credentials), an HTTPS upstream with a
 * test CA, one that requires a client certificate, one that requires basic auth and a header,
 * per-remote timeouts and retries, skip_missing, on-demand fetches with credentials, and the
 * secrets: never in an API answer, a log line or the database in the clear.
 */
import { randomBytes } from "node:crypto"
import * as net from "node:net"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createTestDatabase, watchWrites } from "./support/db.js"
import { makePki, type Pki, type Proxy, startProxy } from "./support/network.js"
import { api, type Server, startServer, startWorker, until } from "./support/processes.js"
import { makeFiles, startUpstream, type Upstream } from "./support/upstream.js"

const SECRET_KEY = randomBytes(32).toString("base64")
const PASSWORD = `pw-${randomBytes(8).toString("hex")}`
const API_KEY = `key-${randomBytes(8).toString("hex")}`
const PROXY_PASSWORD = `pp-${randomBytes(8).toString("hex")}`
/** How long a test may allow for one cairn process to start on a loaded machine (the harness waits up to 100 s). */
const START_BUDGET_MS = 100_000
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`

describe("remotes for real networks", () => {
  let pki: Pki
  let dbUrl: string
  let server: Server
  let c: ReturnType<typeof api>
  /** Every API answer body of this file, for the check that no secret is ever in one. */
  const answers: Array<string> = []
  // Each upstream its own files, so that each test downloads (digests stored by one are not fetched again).
  const filesOf = (seed: number) => makeFiles(6, { seed, maxSize: 50_000 })
  const files = filesOf(1)
  const securedFiles = filesOf(2)
  const tlsFiles = filesOf(3)
  const mtlsFiles = filesOf(4)
  let plain: Upstream
  let secured: Upstream
  let elsewhere: Upstream
  let tlsUp: Upstream
  let mtlsUp: Upstream
  let proxy: Proxy
  let openProxy: Proxy

  /** The client key's base64 body: what would show if the PEM leaked anywhere. */
  const keyBody = () => pki.clientKey.split("\n").filter((l) => l !== "" && !l.startsWith("-----")).join("")
  const secrets = () => [PASSWORD, API_KEY, PROXY_PASSWORD, basic("alice", PASSWORD).slice(6), keyBody().slice(0, 40)]

  const call = async (method: string, path: string, body?: unknown) => {
    const r = await c.call(method, path, body)
    answers.push(JSON.stringify(r.body ?? null))
    return r
  }
  const created = async (path: string, body: unknown) => {
    const r = await call("POST", path, body)
    expect(r.status, JSON.stringify(r.body)).toBe(201)
    return r.body
  }
  /** Run one file.sync and answer its settled future and its task. */
  const sync = async (repository: string, remote: string, params: Record<string, unknown> = {}) => {
    const g = await call("POST", "/api/v1/graphs", { nodes: { sync: { task: "file.sync", params: { repository, remote, ...params } } } })
    expect(g.status, JSON.stringify(g.body)).toBe(201)
    const future = await c.settled(g.body.nodes.sync.outputs.version, 120_000)
    answers.push(JSON.stringify(future))
    const task = (await call("GET", `/api/v1/tasks/${g.body.nodes.sync.task}`)).body
    const graph = (await call("GET", `/api/v1/graphs/${g.body.id}`)).body
    return { future, task, graph }
  }

  const authorized = (req: { headers: Record<string, string | Array<string> | undefined> }) =>
    req.headers.authorization === basic("alice", PASSWORD) && req.headers["x-api-key"] === API_KEY ? undefined : 401

  beforeAll(async () => {
    pki = makePki()
    dbUrl = await createTestDatabase()
    server = await startServer(dbUrl, { CAIRN_SECRET_KEY: SECRET_KEY, CAIRN_WORKERS: "2", CAIRN_LOG_LEVEL: "debug" })
    c = api(server.url)
    plain = await startUpstream(files)
    elsewhere = await startUpstream(securedFiles)
    secured = await startUpstream(securedFiles, { check: authorized })
    tlsUp = await startUpstream(tlsFiles, { tls: { key: pki.serverKey, cert: pki.serverCert } })
    mtlsUp = await startUpstream(mtlsFiles, { tls: { key: pki.serverKey, cert: pki.serverCert, ca: pki.ca, requestCert: true } })
    proxy = await startProxy({ user: "proxy-user", password: PROXY_PASSWORD })
    openProxy = await startProxy()
  }, 180_000)
  afterAll(async () => {
    await server?.stop()
    for (const u of [plain, elsewhere, secured, tlsUp, mtlsUp]) await u?.close()
    await proxy?.close()
    await openProxy?.close()
  })

  it("refuses bad settings with a sentence per problem, writing nothing and echoing no secret", async () => {
    const watch = await watchWrites(dbUrl)
    const before = await watch.fingerprint()
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ proxy_url: "ftp://proxy.example:21" }, /proxy_url must be an http:\/\/ or https:\/\/ URL/],
      [{ proxy_url: "http://proxy.example:3128/some/path" }, /proxy_url must be only scheme/],
      [{ ca_cert: "not a certificate" }, /ca_cert is not a PEM certificate/],
      [{ ca_cert: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n" }, /ca_cert: certificate 1 of 1 does not parse/],
      [{ ca_cert: () => pki.ca + pki.clientKey }, /ca_cert contains a private key/],
      [{ client_cert: () => pki.clientCert }, /client_cert needs client_key too/],
      [{ client_cert: () => pki.clientCert, client_key: `-----BEGIN PRIVATE KEY-----\n${PASSWORD}\n-----END PRIVATE KEY-----\n` }, /client_key does not parse/],
      [{ client_cert: () => pki.clientCert, client_key: () => pki.encryptedClientKey }, /client_key is encrypted/],
      [{ client_cert: () => pki.clientCert, client_key: () => pki.serverKey }, /client_key is not the private key of client_cert/],
      [{ connect_timeout_ms: -5 }, /connect_timeout_ms must be a whole number/],
      [{ total_timeout_ms: 0 }, /total_timeout_ms must be a whole number/],
      [{ max_retries: -1 }, /max_retries must be a whole number/],
      [{ rate_limit: 0 }, /rate_limit must be a number of requests per second above 0/],
      [{ rate_limit: -3 }, /rate_limit must be a number of requests per second above 0/],
      [{ password: PASSWORD }, /password needs username too/],
      [{ password: 12345 }, /password must be a string/],
      [{ headers: { host: "example.org" } }, /headers: host is set by cairn/],
      [{ headers: { "bad name": "x" } }, /headers: "bad name" is not a valid header name/],
      [{ headers: { "x-api-key": `${API_KEY}\r\nx-evil: 1` } }, /headers: the value of x-api-key must be a string .* without CR, LF or NUL/],
      [{ headers: { authorization: "Bearer x" }, username: "alice" }, /authorization cannot be given together with username/]
    ]
    for (const [settings, message] of cases) {
      const body: Record<string, unknown> = { name: "bad", url: plain.url }
      for (const [k, v] of Object.entries(settings)) body[k] = typeof v === "function" ? v() : v
      const r = await call("POST", "/api/v1/remotes", body)
      expect(r.status, JSON.stringify(settings)).toBe(400)
      expect(r.body.error.code).toBe("bad_request")
      expect(r.body.error.message).toMatch(message)
      for (const s of [...secrets(), keyBody().slice(0, 40)]) expect(JSON.stringify(r.body)).not.toContain(s)
    }
    expect(await watch.fingerprint()).toEqual(before)
    await watch.close()
  })

  it("basic auth and headers reach the upstream's origin only; the view shows whether they are set, never them", async () => {
    await created("/api/v1/repositories", { name: "auth" })
    await created("/api/v1/remotes", { name: "no-auth", url: secured.url })
    const refused = await sync("auth", "no-auth")
    expect(refused.future.state).toBe("failed")
    expect(refused.future.error.code).toBe("manifest_unavailable")
    expect(refused.future.error.message).toMatch(/HTTP 401/)

    const remote = await created("/api/v1/remotes", {
      name: "with-auth",
      url: secured.url,
      username: "alice",
      password: PASSWORD,
      headers: { "X-Api-Key": API_KEY }
    })
    expect(remote).toMatchObject({ username: "alice", has_password: true, header_names: ["x-api-key"], has_client_key: false })
    expect(remote).not.toHaveProperty("password")
    expect(remote).not.toHaveProperty("headers")

    // A file moved to another origin: followed, without the remote's credentials.
    const [moved] = Object.keys(securedFiles)
    secured.faults.redirect(moved!, elsewhere.fileUrl(moved!))
    const ok = await sync("auth", "with-auth")
    expect(ok.future.state, JSON.stringify(ok.future.error)).toBe("resolved")
    expect(ok.future.value.number).toBe(1)
    const there = elsewhere.log.filter((r) => r.path === moved)
    expect(there.length).toBe(1)
    expect(there[0]!.headers.authorization).toBeUndefined()
    expect(there[0]!.headers["x-api-key"]).toBeUndefined()
    secured.faults.clear()

    // A PATCH that changes something else keeps the secrets (the next sync is let in again)...
    const patched = await call("PATCH", "/api/v1/remotes/with-auth", { max_retries: 1 })
    expect(patched.status).toBe(201)
    expect(patched.body).toMatchObject({ has_password: true, header_names: ["x-api-key"], max_retries: 1 })
    await created("/api/v1/repositories", { name: "auth2" })
    const again = await sync("auth2", "with-auth")
    expect(again.future.state, JSON.stringify(again.future.error)).toBe("resolved")
    // ...and null clears one.
    const cleared = await call("PATCH", "/api/v1/remotes/with-auth", { password: null, username: null })
    expect(cleared.body).toMatchObject({ has_password: false, username: null })
    const revisions = await call("GET", "/api/v1/remotes/with-auth/revisions")
    expect(revisions.body.map((r: any) => r.has_password)).toEqual([false, true, true])
  })

  it("an http upstream through a proxy is forwarded, an https one tunnelled; the proxy's credentials are write-only", async () => {
    await created("/api/v1/repositories", { name: "proxied" })
    const withCreds = new URL(proxy.url)
    withCreds.username = "proxy-user"
    withCreds.password = PROXY_PASSWORD
    const remote = await created("/api/v1/remotes", { name: "via-proxy", url: plain.url, proxy_url: withCreds.href })
    expect(remote).toMatchObject({ proxy_url: proxy.url, has_proxy_credentials: true })
    const before = plain.log.length
    const forwarded = await sync("proxied", "via-proxy")
    expect(forwarded.future.state, JSON.stringify(forwarded.future.error)).toBe("resolved")
    expect(proxy.forwarded).toContain(plain.url)
    for (const p of Object.keys(files)) expect(proxy.forwarded).toContain(plain.fileUrl(p))
    // Everything the upstream saw came through the proxy.
    expect(plain.log.length - before).toBe(proxy.forwarded.length)

    await created("/api/v1/remotes", { name: "wrong-proxy-creds", url: plain.url, proxy_url: proxy.url.replace("http://", "http://proxy-user:nope@") })
    await created("/api/v1/repositories", { name: "proxied2" })
    const refused = await sync("proxied2", "wrong-proxy-creds")
    expect(refused.future.state).toBe("failed")
    expect(refused.future.error.message).toMatch(/the proxy refused the credentials \(HTTP 407\)/)
    expect(refused.future.error.message).toMatch(/after 1 attempt/)

    await created("/api/v1/repositories", { name: "tunnelled" })
    await created("/api/v1/remotes", { name: "tls-via-proxy", url: tlsUp.url, ca_cert: pki.ca, proxy_url: withCreds.href })
    const tunnelled = await sync("tunnelled", "tls-via-proxy")
    expect(tunnelled.future.state, JSON.stringify(tunnelled.future.error)).toBe("resolved")
    expect(proxy.tunnels).toContain(new URL(tlsUp.url).host)
    expect(proxy.forwarded.some((u) => u.startsWith("https:"))).toBe(false)

    // A proxy without credentials of its own, over CONNECT too.
    await created("/api/v1/repositories", { name: "tunnelled2" })
    await created("/api/v1/remotes", { name: "tls-via-open-proxy", url: tlsUp.url, ca_cert: pki.ca, proxy_url: openProxy.url })
    const open = await sync("tunnelled2", "tls-via-open-proxy")
    expect(open.future.state, JSON.stringify(open.future.error)).toBe("resolved")
    expect(openProxy.tunnels).toContain(new URL(tlsUp.url).host)
  })

  it("a custom CA: an unknown issuer fails at once (no retry); the right CA verifies", async () => {
    await created("/api/v1/repositories", { name: "tls" })
    await created("/api/v1/remotes", { name: "tls-system-roots", url: tlsUp.url })
    await created("/api/v1/remotes", { name: "tls-other-ca", url: tlsUp.url, ca_cert: pki.otherCa })
    await created("/api/v1/remotes", { name: "tls-test-ca", url: tlsUp.url, ca_cert: pki.ca })
    for (const remote of ["tls-system-roots", "tls-other-ca"]) {
      const r = await sync("tls", remote)
      expect(r.future.state, remote).toBe("failed")
      expect(r.future.error.message, remote).toMatch(/failed after 1 attempt: TLS: /)
    }
    const ok = await sync("tls", "tls-test-ca")
    expect(ok.future.state, JSON.stringify(ok.future.error)).toBe("resolved")
  })

  it("a client certificate: an upstream that requires one refuses a client without it", async () => {
    await created("/api/v1/repositories", { name: "mtls" })
    await created("/api/v1/remotes", { name: "mtls-no-cert", url: mtlsUp.url, ca_cert: pki.ca, max_retries: 0 })
    const served = mtlsUp.log.length
    const refused = await sync("mtls", "mtls-no-cert")
    expect(refused.future.state).toBe("failed")
    expect(mtlsUp.log.length).toBe(served)
    const remote = await created("/api/v1/remotes", {
      name: "mtls-cert",
      url: mtlsUp.url,
      ca_cert: pki.ca,
      client_cert: pki.clientCert,
      client_key: pki.clientKey
    })
    expect(remote).toMatchObject({ client_cert: pki.clientCert, has_client_key: true })
    expect(remote).not.toHaveProperty("client_key")
    const ok = await sync("mtls", "mtls-cert")
    expect(ok.future.state, JSON.stringify(ok.future.error)).toBe("resolved")
    expect(mtlsUp.log.length).toBeGreaterThan(served)
  })

  it("per-remote retries and whole-request timeout", async () => {
    const p = "slow.bin"
    await created("/api/v1/repositories", { name: "faults" })
    await created("/api/v1/remotes", { name: "no-retries", url: elsewhere.url, max_retries: 0 })
    await created("/api/v1/remotes", { name: "two-retries", url: elsewhere.url, max_retries: 2 })
    await created("/api/v1/remotes", { name: "impatient", url: elsewhere.url, total_timeout_ms: 5000, max_retries: 0 })
    elsewhere.faults.fail5xx("PULP_MANIFEST", 2)
    const once = await sync("faults", "no-retries")
    expect(once.future.error?.message).toMatch(/failed after 1 attempt: HTTP 503/)
    elsewhere.faults.fail5xx("PULP_MANIFEST", 2)
    const retried = await sync("faults", "two-retries")
    expect(retried.future.state, JSON.stringify(retried.future.error)).toBe("resolved")
    elsewhere.faults.clear()
    // A new file: half of it, then a pause far longer than the whole-request limit (and the idle timeout).
    elsewhere.setFile(p, randomBytes(100_000))
    elsewhere.faults.slow(p, 600_000)
    await created("/api/v1/repositories", { name: "faults2" })
    const slow = await sync("faults2", "impatient")
    expect(slow.future.state).toBe("failed")
    expect(slow.future.error.message).toMatch(/slow\.bin: GET .* failed after 1 attempt: the request took longer than 5000 ms$/)
    elsewhere.faults.clear()
  })

  it("connect_timeout_ms bounds opening the connection (here a TLS handshake the server never answers)", async () => {
    // Accepts TCP connections and says nothing: the client's TLS hello goes unanswered.
    const sockets = new Set<net.Socket>()
    const silent = net.createServer((s) => {
      sockets.add(s)
      s.on("error", () => undefined)
    })
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve))
    try {
      const url = `https://127.0.0.1:${(silent.address() as net.AddressInfo).port}/PULP_MANIFEST`
      await created("/api/v1/remotes", { name: "silent", url, ca_cert: pki.ca, connect_timeout_ms: 300, max_retries: 0 })
      await created("/api/v1/repositories", { name: "silent" })
      const r = await sync("silent", "silent")
      expect(r.future.state).toBe("failed")
      expect(r.future.error.message).toMatch(/failed after 1 attempt: could not connect in time \(.*timeout: 300ms/)
      expect(sockets.size).toBeGreaterThan(0)
    } finally {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => silent.close(() => resolve()))
    }
  })

  it("skip_missing: files the upstream answers 404 for are left out and listed; without it the sync fails", async () => {
    const up = await startUpstream(files)
    try {
      const gone = ["gone/a.bin", "gone/b.bin"]
      const entries = Object.entries(files).map(([p, b]) => ({ p, sha: up.sha256(p), n: b.length }))
      // Two missing paths, one of which shares its digest with a file that is there.
      const manifest = [
        ...entries.map((e) => `${e.p},${e.sha},${e.n}`),
        `${gone[0]},${"ab".repeat(32)},10`,
        `${gone[1]},${entries[0]!.sha},${entries[0]!.n}`
      ].join("\n")
      up.setManifestOverride(`${manifest}\n`)
      await created("/api/v1/remotes", { name: "holes", url: up.url })
      await created("/api/v1/repositories", { name: "holes" })
      const strict = await sync("holes", "holes")
      expect(strict.future.state).toBe("failed")
      expect(strict.future.error.code).toBe("download_failed")
      expect(strict.future.error.message).toMatch(/gone\/a\.bin: .*HTTP 404/)

      const lenient = await sync("holes", "holes", { skip_missing: true, mirror: true })
      expect(lenient.future.state, JSON.stringify(lenient.future.error)).toBe("resolved")
      expect(lenient.future.value.missing).toEqual(["gone/a.bin"])
      const content = await call("GET", `/api/v1/repositories/holes/versions/${lenient.future.value.number}/content?limit=100`)
      const paths = content.body.items.map((i: any) => i.relative_path).sort()
      // gone/b.bin has the digest of a stored file: it was never asked for, so it is kept.
      expect(paths).toEqual([...Object.keys(files), gone[1]].sort())
      expect(up.requests.get(gone[0]!)).toBe(2)
    } finally {
      await up.close()
    }
  })

  it("on-demand content is fetched by the content app with the remote's credentials", async () => {
    const lazyFiles = filesOf(6)
    const lazyUp = await startUpstream(lazyFiles, { check: authorized })
    await created("/api/v1/remotes", {
      name: "lazy-auth",
      url: lazyUp.url,
      policy: "on_demand",
      username: "alice",
      password: PASSWORD,
      headers: { "x-api-key": API_KEY }
    })
    await created("/api/v1/repositories", { name: "lazy" })
    await created("/api/v1/distributions", { name: "lazy", base_path: "lazy" })
    const g = await call("POST", "/api/v1/graphs", {
      nodes: {
        sync: { task: "file.sync", params: { repository: "lazy", remote: "lazy-auth" } },
        publish: { task: "file.publish", params: { version: { $ref: "sync.version" } } },
        serve: { task: "distribution.set", params: { distribution: "lazy", publication: { $ref: "publish.publication" } } }
      }
    })
    try {
      expect((await c.settled(g.body.nodes.serve.outputs.distribution, 120_000)).state).toBe("resolved")
      expect(lazyUp.requests.size).toBe(1) // the manifest only
      const [p, bytes] = Object.entries(lazyFiles)[1]!
      const r = await fetch(`${server.url}/content/lazy/${p}`)
      expect(r.status).toBe(200)
      expect(Buffer.from(await r.arrayBuffer())).toEqual(bytes)
      expect(lazyUp.log.filter((l) => l.path === p).map((l) => l.refused)).toEqual([undefined])
    } finally {
      await lazyUp.close()
    }
  })

  it("no secret is in any API answer, in the processes' logs, or in the clear anywhere in the database", async () => {
    // Every view of remotes, their revisions, and the tasks, graphs and futures of the syncs above.
    for (const path of ["/api/v1/remotes", "/api/v1/tasks?limit=1000", "/api/v1/graphs?limit=1000"]) {
      const r = await call("GET", path)
      expect(r.status).toBe(200)
      for (const item of r.body.items ?? r.body) {
        if (item.name !== undefined) await call("GET", `/api/v1/remotes/${item.name}/revisions`)
        if (item.outputs !== undefined) for (const f of Object.values(item.outputs)) await call("GET", `/api/v1/futures/${f}`)
        if (item.tasks !== undefined) await call("GET", `/api/v1/graphs/${item.id}`)
      }
    }
    const all = answers.join("\n")
    for (const s of secrets()) expect(all).not.toContain(s)
    expect(all).toContain("has_password")

    for (const s of secrets()) expect(server.output()).not.toContain(s)
    expect(server.output()).toMatch(/remote secrets are sealed with key [0-9a-f]{16}/)

    const db = new pg.Client({ connectionString: dbUrl })
    await db.connect()
    try {
      const tables = (await db.query<{ t: string }>(
        "SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
      )).rows.map((r) => r.t)
      for (const t of tables) {
        const dump = (await db.query<{ d: string | null }>(`SELECT string_agg(x::text, E'\\n') AS d FROM "${t}" x`)).rows[0]!.d ?? ""
        for (const s of secrets()) expect(dump, t).not.toContain(s)
      }
      const rows = (await db.query<{ secrets: string }>("SELECT secrets FROM remote_revisions WHERE secrets IS NOT NULL")).rows
      expect(rows.length).toBeGreaterThan(0)
      for (const r of rows) expect(r.secrets).toMatch(/^v1\.[0-9a-f]{16}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/)
    } finally {
      await db.end()
    }
  })
})

describe("remote secrets and CAIRN_SECRET_KEY", () => {
  it("a sync fails with a clear error when this process has no key, or not the key that sealed them; PATCH then refuses", async () => {
    const files = makeFiles(3, { seed: 9 })
    const up = await startUpstream(files, { check: (req) => req.headers.authorization === basic("bob", PASSWORD) ? undefined : 401 })
    const dbUrl = await createTestDatabase()
    let server = await startServer(dbUrl, { CAIRN_SECRET_KEY: SECRET_KEY, CAIRN_WORKERS: "0" })
    try {
      const c = api(server.url)
      expect((await c.post("/api/v1/remotes", { name: "sealed", url: up.url, username: "bob", password: PASSWORD })).status).toBe(201)
      expect((await c.post("/api/v1/repositories", { name: "r" })).status).toBe(201)
      await server.stop()

      for (const env of [{}, { CAIRN_SECRET_KEY: randomBytes(32).toString("base64") }] as Array<Record<string, string>>) {
        server = await startServer(dbUrl, { ...env, CAIRN_WORKERS: "1" })
        const c2 = api(server.url)
        if (!("CAIRN_SECRET_KEY" in env)) {
          await until("the start-up warning", () => /CAIRN_SECRET_KEY is not set: remote secrets .* stored in the database in the clear/.test(server.output()))
        }
        // Reading the remote needs no key.
        expect((await c2.get("/api/v1/remotes/sealed")).body).toMatchObject({ has_password: true })
        const g = await c2.post("/api/v1/graphs", { nodes: { s: { task: "file.sync", params: { repository: "r", remote: "sealed" } } } })
        const f = await c2.settled(g.body.nodes.s.outputs.version, 60_000)
        expect(f.state).toBe("failed")
        expect(f.error.code).toBe("remote_unavailable")
        expect(f.error.message).toMatch(
          "CAIRN_SECRET_KEY" in env
            ? /^remote sealed: its secrets are encrypted with key [0-9a-f]{16}, which is not among the keys of CAIRN_SECRET_KEY \([0-9a-f]{16}\)$/
            : /^remote sealed: its secrets are encrypted with key [0-9a-f]{16}, and CAIRN_SECRET_KEY is not set in this process$/
        )
        const patch = await c2.call("PATCH", "/api/v1/remotes/sealed", { max_retries: 1 })
        expect(patch.status).toBe(409)
        expect(patch.body.error.message).toMatch(/^remote sealed cannot be changed by this server: its secrets are encrypted with key/)
        expect(up.requests.size).toBe(0)
        await server.stop()
      }

      // With the key again (listed second: an old key still opens what it sealed).
      server = await startServer(dbUrl, { CAIRN_SECRET_KEY: `${randomBytes(32).toString("base64")},${SECRET_KEY}`, CAIRN_WORKERS: "1" })
      const c3 = api(server.url)
      const g = await c3.post("/api/v1/graphs", { nodes: { s: { task: "file.sync", params: { repository: "r", remote: "sealed" } } } })
      const f = await c3.settled(g.body.nodes.s.outputs.version, 60_000)
      expect(f.state, JSON.stringify(f.error)).toBe("resolved")
    } finally {
      await server.stop()
      await up.close()
    }
  }, 4 * START_BUDGET_MS) // four server starts in a row
})

describe("rate_limit across the cluster", () => {
  it("two syncs of one remote on two worker processes stay within its rate, as the upstream counts requests", async () => {
    const RATE = 10
    const files = makeFiles(30, { seed: 12, maxSize: 20_000 })
    const up = await startUpstream(files)
    const dbUrl = await createTestDatabase()
    const server = await startServer(dbUrl, { CAIRN_WORKERS: "0" })
    const workers = [startWorker(dbUrl), startWorker(dbUrl)]
    try {
      const c = api(server.url)
      await until("two workers", async () => (await c.get("/api/v1/workers")).body.length === 2, 120_000)
      expect((await c.post("/api/v1/remotes", { name: "limited", url: up.url, rate_limit: RATE })).status).toBe(201)
      for (const name of ["a", "b"]) expect((await c.post("/api/v1/repositories", { name })).status).toBe(201)
      const g = await c.post("/api/v1/graphs", {
        nodes: {
          a: { task: "file.sync", params: { repository: "a", remote: "limited" } },
          b: { task: "file.sync", params: { repository: "b", remote: "limited" } }
        }
      })
      for (const n of ["a", "b"]) {
        const f = await c.settled(g.body.nodes[n].outputs.version, 180_000)
        expect(f.state, JSON.stringify(f.error)).toBe("resolved")
      }
      const [ta, tb] = await Promise.all(["a", "b"].map(async (n) => (await c.get(`/api/v1/tasks/${g.body.nodes[n].task}`)).body))
      // Two processes, at the same time.
      expect(ta.worker).not.toBe(tb.worker)
      expect(Date.parse(ta.started_at)).toBeLessThan(Date.parse(tb.finished_at))
      expect(Date.parse(tb.started_at)).toBeLessThan(Date.parse(ta.finished_at))

      // Each sync fetched the manifest and every file (neither found the other's downloads stored).
      const times = up.log.map((r) => r.at).sort((x, y) => x - y)
      expect(times.length).toBeGreaterThanOrEqual(2 * 31 - 30)
      // The tolerance DESIGN.md argues ("Remote rate limits"): rate * (1 + slack + latency) + 1 starts
      // per second, plus how unevenly requests reach this busy test process: half the rate.
      const tolerance = Math.floor(RATE * 1.5) + 1
      const perSecond = new Map<number, number>()
      for (const t of times) perSecond.set(Math.floor((t - times[0]!) / 1000), (perSecond.get(Math.floor((t - times[0]!) / 1000)) ?? 0) + 1)
      expect(Math.max(...perSecond.values()), JSON.stringify([...perSecond])).toBeLessThanOrEqual(tolerance)
      let worst = 0
      for (let i = 0, j = 0; i < times.length; i++) {
        while (j < times.length && times[j]! < times[i]! + 1000) j++
        worst = Math.max(worst, j - i)
      }
      expect(worst).toBeLessThanOrEqual(tolerance)
      // And on average, no faster than the rate (within 10%).
      const seconds = (times.at(-1)! - times[0]!) / 1000
      expect((times.length - 1) / seconds).toBeLessThanOrEqual(RATE * 1.1)
    } finally {
      await Promise.all(workers.map((w) => w.stop()))
      await server.stop()
      await up.close()
    }
  }, 3 * START_BUDGET_MS) // three process starts, then two syncs at 10 requests per second
})
