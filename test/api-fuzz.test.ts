/**
 * Hostile input against every endpoint of a real `serve` process, walked from the server's own
 * OpenAPI document (a new endpoint is fuzzed without touching this file): random and mutated
 * bodies, query strings, path parameters and headers; huge and deep values, unicode, numbers out
 * of range, duplicate keys, prototype-pollution keys, invalid UTF-8, wrong content types, empty
 * bodies.
 *
 * Every answer: never a 5xx; every 4xx has the contract's body `{ "error": { code, message,
 * details? } }`; a rejected request writes nothing (a fingerprint of every table's rows is the
 * same before and after). The server runs no worker, so nothing else writes.
 */
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createTestDatabase, watchWrites } from "./support/db.js"
import { type Answer, readAnswer } from "./support/http.js"
import { api, type Server, startServer } from "./support/processes.js"

let server: Server
let writes: Awaited<ReturnType<typeof watchWrites>>
let ops: Array<Operation>
/** Ids of real objects, so that fuzzed path parameters also reach existing rows. */
const known = { graph: "", task: "", future: "", settledFuture: "" }

interface Operation {
  readonly method: string
  /** The OpenAPI path, with `{param}` placeholders. */
  readonly path: string
  readonly pathParams: ReadonlyArray<string>
  readonly queryParams: ReadonlyArray<string>
  readonly headerParams: ReadonlyArray<string>
  /** The request body's media type, if the operation documents one. */
  readonly body: string | undefined
}

const operationsOf = (doc: any): Array<Operation> => {
  const out: Array<Operation> = []
  for (const [path, item] of Object.entries<any>(doc.paths)) {
    for (const [method, op] of Object.entries<any>(item)) {
      if (!["get", "post", "put", "patch", "delete"].includes(method)) continue
      const params: Array<{ in: string; name: string }> = op.parameters ?? []
      out.push({
        method: method.toUpperCase(),
        path,
        pathParams: params.filter((p) => p.in === "path").map((p) => p.name),
        queryParams: params.filter((p) => p.in === "query").map((p) => p.name),
        headerParams: params.filter((p) => p.in === "header").map((p) => p.name),
        body: op.requestBody ? Object.keys(op.requestBody.content ?? {})[0] : undefined
      })
    }
  }
  return out
}

// ---- requests and the contract ------------------------------------------------------------------

interface Sent {
  readonly method: string
  readonly path: string
  readonly headers: Record<string, string>
  readonly body?: Buffer | undefined
}

const send = async (r: Sent): Promise<Answer> => {
  current = undefined
  const res = await fetch(server.url + r.path, {
    method: r.method,
    headers: r.headers,
    body: r.method === "GET" || r.method === "HEAD" ? undefined : r.body,
    redirect: "manual",
    signal: AbortSignal.timeout(30_000)
  })
  return readAnswer(res)
}

const show = (r: Sent, a?: Answer) =>
  `${r.method} ${r.path.slice(0, 300)} ${JSON.stringify(r.headers).slice(0, 300)} ${
    r.body === undefined ? "" : JSON.stringify(r.body.subarray(0, 300).toString("latin1"))
  }${a ? ` -> ${a.status} ${a.text.slice(0, 400)}` : ""}`

/** Never a 5xx; a 4xx has exactly the contract's error body. */
const expectContract = (r: Sent, a: Answer) => {
  const what = show(r, a)
  expect(a.status, what).toBeLessThan(500)
  if (a.status < 400) return
  expect(a.contentType ?? "", what).toMatch(/^application\/json/)
  expect(a.json !== null && typeof a.json === "object" && !Array.isArray(a.json), what).toBe(true)
  expect(Object.keys(a.json), what).toEqual(["error"])
  const e = a.json.error
  expect(typeof e.code === "string" && /^[a-z_]+$/.test(e.code), what).toBe(true)
  expect(typeof e.message === "string" && e.message.length > 0, what).toBe(true)
  expect(Object.keys(e).filter((k) => !["code", "message", "details"].includes(k)), what).toEqual([])
}

/** Unchanged = nothing written (support/db.ts, watchWrites). */
const fingerprint = () => writes.fingerprint()

/** The fingerprint after the last request, if that request was refused (so it is still current). */
let current: Record<string, string> | undefined

/** Send, check the contract, and check that a rejected request wrote nothing. */
const probe = async (r: Sent) => {
  const before = current ?? await fingerprint()
  const a = await send(r)
  expectContract(r, a)
  if (a.status >= 400) {
    current = await fingerprint()
    expect(current, `a rejected request wrote: ${show(r, a)}`).toEqual(before)
  }
  return a
}

// ---- hostile values -----------------------------------------------------------------------------

/** JSON text spliced in verbatim: numbers JSON.stringify cannot write, deep nesting, duplicate keys. */
class Raw {
  constructor(readonly text: string) {}
}

/** JSON.stringify, but with `Raw` spliced in and every own key written (`__proto__` too). */
const toJson = (v: unknown): string => {
  if (v instanceof Raw) return v.text
  if (Array.isArray(v)) return `[${v.map(toJson).join(",")}]`
  if (v !== null && typeof v === "object") {
    return `{${Object.keys(v).map((k) => `${JSON.stringify(k)}:${toJson((v as Record<string, unknown>)[k])}`).join(",")}}`
  }
  return JSON.stringify(v) ?? "null"
}

/** Set an own property, even `__proto__`. */
const define = (o: object, k: string, v: unknown) =>
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true })

const deepArrays = (n: number) => new Raw("[".repeat(n) + "]".repeat(n))
const deepObjects = (n: number) => new Raw("{\"a\":".repeat(n) + "1" + "}".repeat(n))

const POLLUTERS = [
  "{\"__proto__\":{\"polluted\":\"yes\",\"task\":\"debug.sleep\",\"max_attempts\":7,\"description\":\"polluted\",\"policy\":\"on_demand\"}}",
  "{\"constructor\":{\"prototype\":{\"polluted\":\"yes\"}}}",
  "{\"__proto__\":{\"__proto__\":{\"polluted\":\"yes\"}}}",
  "{\"prototype\":{\"polluted\":\"yes\"}}",
  "{\"__proto__\":[\"polluted\"]}",
  "{\"__proto__\":null}"
]

const hostileStrings = [
  "", " ", "\u0000", "a\u0000b", "\ud800", "\udfff", "x\ud83d", "\uffff", "\ufeff", "\u202e", "ǅ", "🦀", "e\u0301", "\r\n", "\t",
  "%00", "%", "%FF", "%2e%2e", "..", "../..", "/", "a/b", "\\", "__proto__", "constructor", "prototype", "toString",
  "hasOwnProperty", "polluted", "$ref", "null", "true", "0", "-1", "1e400", "NaN", "Infinity", "01ARZ3NDEKTSV4RRFFQ69G5FAV",
  "x".repeat(5000), "ü".repeat(300), "a.b", "sync.version", "<script>", "' OR 1=1 --", "${x}", "{{x}}"
]

const hostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...hostileStrings) },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 24 }) },
  { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 24 }) },
  { weight: 1, arbitrary: fc.string({ maxLength: 24 }) }
)

const hostileNumber: fc.Arbitrary<unknown> = fc.constantFrom<unknown>(
  new Raw("1e400"), new Raw("-1e400"), new Raw("1e-400"), new Raw("-0"), new Raw("9007199254740993"),
  new Raw("100000000000000000000000000000"), new Raw("0.1e1"), 2147483648, -2147483649, 1.5, -1, 0, 1e21, Number.MAX_SAFE_INTEGER
)

const hostileKey: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom("__proto__", "constructor", "prototype", "$ref", "nodes", "task", "params", "name", "polluted", "", " ", "\u0000", "🦀", "Ä", "a".repeat(300)),
  fc.string({ maxLength: 10 })
)

/** Any hostile JSON value. */
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: hostileString },
  { weight: 2, arbitrary: hostileNumber },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.constantFrom(...POLLUTERS).map((t) => new Raw(t)) },
  { weight: 1, arbitrary: fc.constantFrom(63, 64, 65, 1000, 10_000).chain((n) => fc.constantFrom(deepArrays(n), deepObjects(n))) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>(null, true, false, [], {}, { $ref: "a.result" }, { $ref: 5 }, [{ $ref: "zz.result" }]) },
  { weight: 1, arbitrary: fc.constantFrom(100, 5_000).map((n) => Array.from({ length: n }, (_, i) => `k${i}`)) }
)

// ---- graphs, built from parts that name each other -------------------------------------------

const ulid = fc.stringMatching(/^[0-9A-HJKMNP-TV-Z]{26}$/)

/** Node names: valid ones, names every object has ("constructor"), and invalid ones. */
const nodeName: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom("a", "b", "c", "constructor", "prototype", "polluted", "valueof", "hasownproperty") },
  { weight: 2, arbitrary: fc.stringMatching(/^[a-z][a-z0-9_-]{0,8}$/) },
  { weight: 1, arbitrary: fc.constantFrom("__proto__", "toString", "Ä", "🦀", "", "a".repeat(64), "1a") },
  { weight: 1, arbitrary: hostileKey }
)

const outputName = fc.constantFrom("result", "version", "publication", "constructor", "__proto__", "toString", "nope", "")

const refTo: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(nodeName, outputName).map(([n, o]) => ({ $ref: `${n}.${o}` })) },
  { weight: 1, arbitrary: fc.constantFrom(known).chain((k) => fc.constantFrom(k.future, k.settledFuture)).map(($ref) => ({ $ref })) },
  { weight: 1, arbitrary: ulid.map(($ref) => ({ $ref })) },
  { weight: 1, arbitrary: hostileValue.map(($ref) => ({ $ref })) },
  { weight: 1, arbitrary: fc.tuple(nodeName, hostileKey, hostileValue).map(([n, k, v]) => define({ $ref: `${n}.result` }, k, v)) }
)

const params: fc.Arbitrary<unknown> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record(
      {
        ms: fc.oneof(fc.constantFrom(0, 1), hostileNumber),
        fail: hostileString,
        value: fc.oneof(hostileValue, refTo),
        inputs: fc.array(refTo, { maxLength: 3 }),
        repository: fc.constantFrom("fz-repo", "nope", "__proto__"),
        version: refTo
      },
      { requiredKeys: [] }
    )
  },
  { weight: 1, arbitrary: hostileValue }
)

const node: fc.Arbitrary<unknown> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record(
      {
        task: fc.oneof(fc.constantFrom("debug.sleep", "debug.sleep", "file.publish", "repository.modify", "no.such", "constructor", "__proto__"), hostileString),
        params,
        resources: fc.oneof(
          fc.record({ exclusive: fc.array(hostileString, { maxLength: 3 }), shared: fc.array(hostileString, { maxLength: 3 }) }, { requiredKeys: [] }),
          hostileValue
        ),
        max_attempts: fc.oneof(fc.constantFrom(1, 3, 100), hostileNumber)
      },
      { requiredKeys: ["task"] }
    )
  },
  { weight: 1, arbitrary: hostileValue }
)

/** A graph body: nodes (own keys, "__proto__" included) that refer to each other, well or badly. */
const graphBody: fc.Arbitrary<unknown> = fc.tuple(
  fc.array(fc.tuple(nodeName, node), { minLength: 1, maxLength: 6 }),
  fc.option(fc.oneof(hostileString, hostileValue), { nil: undefined })
).map(([entries, label]) => {
  const nodes = {}
  for (const [k, v] of entries) define(nodes, k, v)
  return label === undefined ? { nodes } : { label, nodes }
})

/** A valid body per operation, to mutate: mutations of valid input reach deeper than random input. */
const examples: Record<string, () => unknown> = {
  "POST /api/v1/graphs": () => ({
    label: "fuzz",
    nodes: {
      a: { task: "debug.sleep", params: { ms: 1, value: { x: [1, "two"] } }, resources: { exclusive: ["k1"], shared: ["k2"] }, max_attempts: 2 },
      b: { task: "debug.sleep", params: { inputs: [{ $ref: "a.result" }, { $ref: known.settledFuture }] } }
    }
  }),
  "POST /api/v1/repositories": () => ({ name: "fz-r", description: "d" }),
  "POST /api/v1/remotes": () => ({ name: "fz-m", url: "http://127.0.0.1:9/PULP_MANIFEST", policy: "on_demand", download_concurrency: 2 }),
  "POST /api/v1/distributions": () => ({ name: "fz-d", base_path: "fz/base" }),
  "PATCH /api/v1/repositories/{name}": () => ({ description: "new" }),
  "PATCH /api/v1/remotes/{name}": () => ({ url: "http://127.0.0.1:9/x/PULP_MANIFEST", policy: "immediate" }),
  "PATCH /api/v1/distributions/{name}": () => ({ base_path: "fz/other" })
}

/** Every object and array inside `v` (including `v`). */
const containers = (v: unknown): Array<object> => {
  const out: Array<object> = []
  const stack = [v]
  while (stack.length > 0) {
    const x = stack.pop()
    if (x === null || typeof x !== "object" || x instanceof Raw) continue
    out.push(x)
    stack.push(...Object.values(x))
  }
  return out
}

interface Mutation {
  readonly at: number
  readonly op: "set" | "delete" | "add"
  readonly pick: number
  readonly key: string
  readonly value: unknown
}

const mutation: fc.Arbitrary<Mutation> = fc.record({
  at: fc.nat(),
  op: fc.constantFrom("set", "delete", "add"),
  pick: fc.nat(),
  key: hostileKey,
  value: hostileValue
})

const mutate = (example: unknown, ms: ReadonlyArray<Mutation>) => {
  const root = structuredClone(example)
  for (const m of ms) {
    const all = containers(root)
    const target = all[m.at % all.length]!
    if (Array.isArray(target)) {
      if (m.op === "delete" && target.length > 0) target.splice(m.pick % target.length, 1)
      else if (m.op === "set" && target.length > 0) target[m.pick % target.length] = m.value
      else target.push(m.value)
    } else {
      const keys = Object.keys(target)
      if (m.op === "delete" && keys.length > 0) delete (target as Record<string, unknown>)[keys[m.pick % keys.length]!]
      else if (m.op === "set" && keys.length > 0) define(target, keys[m.pick % keys.length]!, m.value)
      else define(target, m.key, m.value)
    }
  }
  return root
}

const contentTypes = [
  "application/json", "application/json; charset=utf-8", "APPLICATION/JSON", "text/plain", "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=xyz", "application/octet-stream", "application/vnd.api+json", "*/*", "", "text/json", "application/json; charset=latin1"
]

/** Bytes that are not a valid JSON document, or not UTF-8 at all. */
const garbageBody: fc.Arbitrary<Buffer> = fc.oneof(
  fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
  fc.constantFrom(
    "", " ", "{", "}", "[", "nul", "{\"nodes\":", "{\"nodes\":{}}x", "\ufeff{\"nodes\":{}}", "{'nodes':{}}", "{\"nodes\":{},}",
    "name=x&description=y", "--xyz\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nx\r\n--xyz--\r\n", "null", "[]", "0", "\"str\""
  ).map((s) => Buffer.from(s)),
  fc.constantFrom(
    Buffer.from([0x7b, 0x22, 0x6e, 0x61, 0x6d, 0x65, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]), // {"name":"<ff fe>"}
    Buffer.from([0x7b, 0x22, 0x6e, 0x61, 0x6d, 0x65, 0x22, 0x3a, 0x22, 0xc3, 0x22, 0x7d]), // a truncated 2-byte sequence
    Buffer.from([0x7b, 0x22, 0x6e, 0x61, 0x6d, 0x65, 0x22, 0x3a, 0x22, 0xed, 0xa0, 0x80, 0x22, 0x7d]), // an encoded surrogate
    Buffer.from([0x7b, 0x22, 0x6e, 0x61, 0x6d, 0x65, 0x22, 0x3a, 0x22, 0xc0, 0xaf, 0x22, 0x7d]), // an overlong "/"
    Buffer.from([0xff, 0xfe, 0x7b, 0x00, 0x7d, 0x00]) // UTF-16 with a BOM
  )
)

/** Plausible and hostile values of a path parameter. */
const pathValue = (name: string): fc.Arbitrary<string> => {
  const plausible = name === "id"
    ? fc.oneof(fc.constantFrom(known.graph, known.task, known.future, known.settledFuture), ulid)
    : name === "name"
    ? fc.constantFrom("fz-repo", "fz-remote", "fz-dist", "nope", "a".repeat(128), "a".repeat(129))
    : name === "number"
    ? fc.constantFrom("0", "1", "-1", "2147483647", "2147483648", "1e3", "0x1", "1.5", "١")
    : fc.constant("x")
  return fc.oneof({ weight: 2, arbitrary: plausible }, { weight: 2, arbitrary: hostileString })
}

/** Query values; `wait` stays short (a long-poll on a pending future would hold the test). */
const queryValue = (name: string): fc.Arbitrary<string> =>
  name === "wait"
    ? fc.constantFrom("0", "0.05", "1e-9", "-1", "61", "60.0001", "NaN", "Infinity", "1e400", "abc", "", " 0", "0x0")
    : fc.oneof(
      fc.constantFrom("0", "1", "1000", "1001", "-5", "1e3", "blocked", "running", "debug.sleep", "", known.graph, known.task),
      ulid,
      hostileString
    )

/** encodeURIComponent, but total: a lone surrogate goes out as the UTF-8 of U+FFFD instead of throwing. */
const pct = (s: string) =>
  [...Buffer.from(s, "utf8")].map((b) => /[A-Za-z0-9_.!~*'()-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, "0")}`).join("")

/** Encoded, or (`raw`) as typed, so that "%", "%FF", "%00" and ".." reach the server as they are. */
const encodePathValue = (v: string, raw: boolean) => (raw && /^[\x21-\x7e]*$/.test(v) && !/[/?#]/.test(v) ? v : pct(v))

const headerValue = fc.stringMatching(/^[\x20-\x7e]{0,40}$/).map((s) => s.trim())

/** One random request to `op`. */
const requestTo = (op: Operation): fc.Arbitrary<Sent> => {
  const example = examples[`${op.method} ${op.path}`]
  const json = (v: unknown) => Buffer.from(toJson(v))
  const body: fc.Arbitrary<{ body?: Buffer; contentType?: string }> = op.body === "application/json"
    ? fc.oneof(
      { weight: 4, arbitrary: fc.array(mutation, { minLength: 1, maxLength: 3 }).map((ms) => ({ body: json(mutate(example?.() ?? {}, ms)), contentType: "application/json" })) },
      { weight: 2, arbitrary: hostileValue.map((v) => ({ body: json(v), contentType: "application/json" })) },
      { weight: 1, arbitrary: fc.record({ body: garbageBody, contentType: fc.constantFrom(...contentTypes) }) },
      { weight: 1, arbitrary: fc.constantFrom(...contentTypes).map((contentType) => ({ body: json(example?.() ?? {}), contentType })) },
      { weight: 1, arbitrary: fc.constant({}) }
    )
    : op.body !== undefined
    ? fc.record({ body: fc.uint8Array({ maxLength: 2048 }).map((b) => Buffer.from(b)), contentType: fc.constantFrom(op.body, ...contentTypes) })
    : fc.oneof({ weight: 3, arbitrary: fc.constant({}) }, { weight: 1, arbitrary: fc.record({ body: garbageBody, contentType: fc.constantFrom(...contentTypes) }) })
  const path = fc.tuple(...op.pathParams.map((p) => fc.tuple(pathValue(p), fc.boolean()))).map((values) => {
    let p = op.path
    op.pathParams.forEach((name, i) => (p = p.replace(`{${name}}`, encodePathValue(values[i]![0], values[i]![1]))))
    return p
  })
  const query = fc.tuple(
    fc.tuple(...op.queryParams.map((q) => fc.option(queryValue(q), { nil: undefined }))),
    fc.array(fc.tuple(hostileKey, hostileString), { maxLength: 2 }),
    fc.boolean()
  ).map(([documented, extra, duplicate]) => {
    const pairs: Array<[string, string]> = []
    op.queryParams.forEach((q, i) => documented[i] !== undefined && pairs.push([q, documented[i]!]))
    if (duplicate && pairs.length > 0) pairs.push(pairs[0]!)
    pairs.push(...extra)
    return pairs.length === 0 ? "" : "?" + pairs.map(([k, v]) => `${pct(k)}=${pct(v)}`).join("&")
  })
  const headers = fc.record(
    {
      "if-match": fc.oneof(headerValue, ulid),
      "if-none-match": fc.oneof(headerValue, fc.constantFrom("\"pending\"", "\"resolved\"", "*")),
      "x-checksum-sha256": fc.oneof(headerValue, fc.stringMatching(/^[0-9a-fA-F]{64}$/)),
      authorization: headerValue,
      accept: fc.constantFrom("application/json", "text/html", "*/*", "application/xml"),
      "x-forwarded-for": fc.constantFrom("10.0.0.1", "::1", "garbage"),
      "content-encoding": fc.constantFrom("gzip", "identity", "br")
    },
    { requiredKeys: [] }
  )
  return fc.tuple(path, query, headers, body).map(([p, q, h, b]) => ({
    method: op.method,
    path: p + q,
    headers: { ...h, ...(b.contentType !== undefined && b.contentType !== "" ? { "content-type": b.contentType } : {}) },
    body: b.body
  }))
}

// ---- the server ---------------------------------------------------------------------------------

beforeAll(async () => {
  const dbUrl = await createTestDatabase()
  server = await startServer(dbUrl, { CAIRN_WORKERS: "0" })
  writes = await watchWrites(dbUrl)
  const c = api(server.url)
  const doc = (await c.get("/api/v1/openapi.json")).body
  ops = operationsOf(doc)
  for (const [kind, body] of [
    ["repositories", { name: "fz-repo" }],
    ["remotes", { name: "fz-remote", url: "http://127.0.0.1:9/PULP_MANIFEST" }],
    ["distributions", { name: "fz-dist", base_path: "fz-dist" }]
  ] as const) expect((await c.post(`/api/v1/${kind}`, body)).status).toBe(201)
  const g = await c.post("/api/v1/graphs", { nodes: { a: { task: "debug.sleep", params: { ms: 1 } } } })
  expect(g.status).toBe(201)
  known.graph = g.body.id
  known.task = g.body.nodes.a.task
  known.future = g.body.nodes.a.outputs.result
  // A canceled graph's future is settled: long-polls on it answer at once.
  const s = await c.post("/api/v1/graphs", { nodes: { a: { task: "debug.sleep" } } })
  expect((await c.post(`/api/v1/graphs/${s.body.id}/cancel`)).status).toBe(202)
  known.settledFuture = s.body.nodes.a.outputs.result
})

afterAll(async () => {
  await writes?.close()
  await server?.stop()
})

/**
 * Requests whose answers would change if the server's Object.prototype had been polluted: the
 * platform copies query parameters with `for ... in` (an inherited enumerable key becomes an
 * unknown parameter, 400), and graph validation looks up client-chosen node names.
 */
const expectUnpolluted = async () => {
  const tasks = await send({ method: "GET", path: "/api/v1/tasks?limit=1", headers: {} })
  expect(tasks.status, tasks.text).toBe(200)
  const future = await send({ method: "GET", path: `/api/v1/futures/${known.settledFuture}`, headers: {} })
  expect(future.status, future.text).toBe(200)
  const post = (body: unknown) =>
    send({ method: "POST", path: "/api/v1/graphs", headers: { "content-type": "application/json" }, body: Buffer.from(JSON.stringify(body)) })
  const named = await post({ nodes: { polluted: { task: "no.such" }, constructor: { task: "no.such" } } })
  expect(named.status, named.text).toBe(400)
  expect(Object.keys(named.json.error.details.nodes).sort()).toEqual(["constructor", "polluted"])
  const noTask = await post({ nodes: { a: {} } })
  expect(noTask.status, noTask.text).toBe(400)
  expect(noTask.json.error.details.nodes.a.join(" ")).toContain("task")
  const ref = await post({ nodes: { a: { task: "debug.sleep", params: { inputs: [{ $ref: "polluted.result" }] } } } })
  expect(ref.status, ref.text).toBe(400)
  expect(ref.json.error.details.nodes.a.join(" ")).toContain("not in this graph")
}

describe("hostile input, every endpoint of the OpenAPI document", () => {
  it("walks a document that lists the API", () => {
    expect(ops.length).toBeGreaterThanOrEqual(25)
    for (const p of ["/api/v1/graphs", "/api/v1/futures/{id}", "/api/v1/uploads", "/api/v1/repositories/{name}"]) {
      expect(ops.some((o) => o.path === p), p).toBe(true)
    }
  })

  it("random and mutated requests to each operation: no 5xx, the contract's 4xx body, no write when refused", async () => {
    for (const op of ops) {
      await fc.assert(fc.asyncProperty(requestTo(op), async (r) => void (await probe(r))), { numRuns: 5 })
    }
  })

  it("random requests across all operations", async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...ops).chain(requestTo), async (r) => void (await probe(r))),
      { numRuns: 100 }
    )
  })

  it("mutated graphs: 201 or 400 naming the problem, and a 201 graph is exactly what was sent", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 4 }), async (ms) => {
        const body = mutate(examples["POST /api/v1/graphs"]!(), ms)
        const r: Sent = { method: "POST", path: "/api/v1/graphs", headers: { "content-type": "application/json" }, body: Buffer.from(toJson(body)) }
        const a = await probe(r)
        expect([201, 400], show(r, a)).toContain(a.status)
        if (a.status === 201) {
          // Every node sent is in the answer (none silently dropped), and no other.
          const sent = JSON.parse(toJson(body)).nodes
          expect(Object.keys(a.json.nodes).sort(), show(r, a)).toEqual(Object.keys(sent).sort())
        }
      }),
      { numRuns: 60 }
    )
  })

  it("random graphs whose nodes refer to each other: 201 or 400 naming nodes, never a node lost", async () => {
    await fc.assert(
      fc.asyncProperty(graphBody, async (body) => {
        const text = toJson(body)
        const r: Sent = { method: "POST", path: "/api/v1/graphs", headers: { "content-type": "application/json" }, body: Buffer.from(text) }
        const a = await probe(r)
        expect([201, 400], show(r, a)).toContain(a.status)
        const sent = Object.keys(JSON.parse(text).nodes ?? {})
        if (a.status === 201) expect(Object.keys(a.json.nodes).sort(), show(r, a)).toEqual(sent.sort())
        else if (a.json.error.details?.nodes) {
          // Only nodes that were sent are named.
          for (const n of Object.keys(a.json.error.details.nodes)) expect(sent, show(r, a)).toContain(n)
        }
      }),
      { numRuns: 150 }
    )
  })

  it("unicode, out-of-range and hostile values in every field of the named resources", async () => {
    const bodies = fc.constantFrom("repositories", "remotes", "distributions").chain((kind) =>
      fc.array(mutation, { minLength: 1, maxLength: 3 }).map((ms) => ({ kind, body: mutate(examples[`POST /api/v1/${kind}`]!(), ms) }))
    )
    await fc.assert(
      fc.asyncProperty(bodies, async ({ kind, body }) => {
        const a = await probe({ method: "POST", path: `/api/v1/${kind}`, headers: { "content-type": "application/json" }, body: Buffer.from(toJson(body)) })
        expect([201, 400, 409]).toContain(a.status)
      }),
      { numRuns: 60 }
    )
  })
})

describe("hostile bodies, deterministic", () => {
  const bodyOps = () => ops.filter((o) => o.body === "application/json")
  const pathOf = (op: Operation) => op.path.replace(/\{[^}]+\}/g, (m) => (m === "{name}" ? "fz-repo" : m === "{id}" ? known.graph : "0"))

  it("wrong content types: 415; empty bodies, invalid UTF-8 and broken JSON: 400; nothing written", async () => {
    for (const op of bodyOps()) {
      const path = pathOf(op)
      const example = Buffer.from(toJson(examples[`${op.method} ${op.path}`]?.() ?? {}))
      for (const ct of ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=xyz", "application/octet-stream", "application/xml", "text/json"]) {
        const a = await probe({ method: op.method, path, headers: { "content-type": ct }, body: example })
        expect(a.status, `${op.method} ${path} ${ct}`).toBe(415)
        expect(a.json.error.code).toBe("unsupported_media_type")
      }
      for (const body of ["", "{", "{\"a\":1}}", "\ufeff", "nul"].map((s) => Buffer.from(s)).concat([Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])])) {
        const a = await probe({ method: op.method, path, headers: { "content-type": "application/json" }, body })
        expect(a.status, `${op.method} ${path} ${JSON.stringify(body.toString("latin1"))}`).toBe(400)
      }
    }
  })

  it("10,000-deep arrays and objects anywhere: 400 naming the depth limit, quickly", async () => {
    const bodies = [
      `{"nodes":{"a":{"task":"debug.sleep","params":{"value":${deepArrays(10_000).text}}}}}`,
      `{"nodes":{"a":{"task":"debug.sleep","params":{"value":${deepObjects(10_000).text}}}}}`,
      `{"nodes":${deepObjects(10_000).text}}`,
      `{"label":${deepArrays(100_000).text},"nodes":{}}`,
      deepArrays(1_000_000).text
    ]
    for (const op of bodyOps()) {
      for (const text of [...bodies, `{"name":${deepArrays(10_000).text}}`]) {
        const started = Date.now()
        const a = await probe({ method: op.method, path: pathOf(op), headers: { "content-type": "application/json" }, body: Buffer.from(text) })
        expect(a.status).toBe(400)
        expect(a.json.error.message).toContain("64")
        expect(Date.now() - started).toBeLessThan(5_000)
      }
    }
    // In params, below the body's limit: the graph's own limit names the node.
    const a = await probe({
      method: "POST",
      path: "/api/v1/graphs",
      headers: { "content-type": "application/json" },
      body: Buffer.from(`{"nodes":{"deep":{"task":"debug.sleep","params":{"value":${deepArrays(40).text}}}}}`)
    })
    expect(a.status).toBe(400)
    expect(a.json.error.details.nodes.deep.join(" ")).toContain("32")
  })

  it("duplicate keys: the last one counts, as JSON.parse has it", async () => {
    const post = (text: string) => probe({ method: "POST", path: "/api/v1/graphs", headers: { "content-type": "application/json" }, body: Buffer.from(text) })
    const a = await post(`{"nodes":{"a":{"task":"no.such"}},"nodes":{"b":{"task":"no.such"}}}`)
    expect(a.status).toBe(400)
    expect(Object.keys(a.json.error.details.nodes)).toEqual(["b"])
    const b = await post(`{"nodes":{"a":{"task":"debug.sleep"},"a":{"task":"x.y"}}}`)
    expect(b.status).toBe(400)
    expect(b.json.error.details.nodes.a.join(" ")).toContain("x.y")
    const c = await post(`{"nodes":{"a":{"task":"x.y","task":"debug.sleep","params":{"ms":"slow","ms":1}}}}`)
    expect(c.status).toBe(201)
  })

  it("NUL characters and unpaired surrogates: 400 wherever they are, never stored", async () => {
    const bad = ["a\u0000b", "\ud800", "x\udc00y"]
    for (const s of bad) {
      const json = (v: unknown) => ({ method: "POST", headers: { "content-type": "application/json" }, body: Buffer.from(JSON.stringify(v)) })
      for (const r of [
        { path: "/api/v1/graphs", ...json({ label: s, nodes: { a: { task: "debug.sleep" } } }) },
        { path: "/api/v1/graphs", ...json({ nodes: { a: { task: "debug.sleep", params: { value: s } } } }) },
        { path: "/api/v1/graphs", ...json({ nodes: { a: { task: "debug.sleep", params: { fail: s } } } }) },
        { path: "/api/v1/graphs", ...json({ nodes: { a: { task: "debug.sleep", params: { value: { [s]: 1 } } } } }) },
        { path: "/api/v1/graphs", ...json({ nodes: { a: { task: "debug.sleep", resources: { exclusive: [s] } } } }) },
        { path: "/api/v1/repositories", ...json({ name: "nul-test", description: s }) },
        { path: "/api/v1/remotes", ...json({ name: "nul-test", url: `http://127.0.0.1:9/${s}/PULP_MANIFEST` }) },
        { path: "/api/v1/distributions", ...json({ name: "nul-test", base_path: s }) }
      ] as Array<Sent>) {
        const a = await probe(r)
        expect(a.status, show(r, a)).toBe(400)
      }
      for (const path of [
        `/api/v1/repositories/${pct(s)}`,
        `/api/v1/repositories/fz-repo/versions/0/content?after=${pct(s)}`,
        `/api/v1/tasks?task=${pct(s)}`
      ]) {
        const a = await probe({ method: "GET", path, headers: {} })
        expect([200, 400, 404], path).toContain(a.status)
      }
    }
  })

  it("huge bodies within the limit: many nodes, long strings, wide arrays", async () => {
    const post = (body: unknown) =>
      probe({ method: "POST", path: "/api/v1/graphs", headers: { "content-type": "application/json" }, body: Buffer.from(JSON.stringify(body)) })
    // 10,001 nodes, each invalid: refused on the count alone.
    const tooMany = await post({ nodes: Object.fromEntries(Array.from({ length: 10_001 }, (_, i) => [`n${i}`, { task: "no.such" }])) })
    expect(tooMany.status).toBe(400)
    expect(tooMany.json.error.message).toContain("10000")
    // 2,000 invalid nodes: one 400 that names every one of them.
    const many = await post({ nodes: Object.fromEntries(Array.from({ length: 2_000 }, (_, i) => [`n${i}`, { task: "debug.sleep", params: { ms: -1 } }])) })
    expect(many.status).toBe(400)
    expect(Object.keys(many.json.error.details.nodes)).toHaveLength(2_000)
    const wide = await post({ nodes: { a: { task: "debug.sleep", resources: { shared: Array.from({ length: 100_000 }, (_, i) => `k${i}`) } } } })
    expect(wide.status).toBe(400)
    const long = await post({ label: "x".repeat(1_001), nodes: { a: { task: "debug.sleep" } } })
    expect(long.status).toBe(400)
    const longName = await post({ nodes: { ["a".repeat(64)]: { task: "debug.sleep" } } })
    expect(longName.status).toBe(400)
    const unicodeName = await post({ nodes: { "ä": { task: "debug.sleep" }, "🦀": { task: "debug.sleep" } } })
    expect(Object.keys(unicodeName.json.error.details.nodes).sort()).toEqual(["ä", "🦀"].sort())
  })
})

describe("inputs that once answered 500 or wrote what they should not", () => {
  const graph = async (body: unknown) =>
    probe({ method: "POST", path: "/api/v1/graphs", headers: { "content-type": "application/json" }, body: Buffer.from(toJson(body)) })
  const offending = (a: Answer) => Object.keys(a.json.error.details.nodes).sort()

  it("graphs: refs to failed nodes and to Object.prototype's members, nodes named constructor or __proto__", async () => {
    // A valid node that refers to a node of an unknown kind (TypeError in submit: 500).
    const a = await graph({ nodes: { x: { task: "no.such" }, a: { task: "debug.sleep", params: { inputs: [{ $ref: "x.result" }] } } } })
    expect([a.status, offending(a)]).toEqual([400, ["x"]])
    // "constructor" is "in" every object: a ref to it passed the check (500).
    const b = await graph({ nodes: { a: { task: "debug.sleep", params: { inputs: [{ $ref: "constructor.result" }] } } } })
    expect([b.status, offending(b)]).toEqual([400, ["a"]])
    const c = await graph({ nodes: { b: { task: "debug.sleep" }, a: { task: "debug.sleep", params: { inputs: [{ $ref: "b.constructor" }] } } } })
    expect([c.status, offending(c)]).toEqual([400, ["a"]])
    expect(c.json.error.details.nodes.a.join(" ")).toContain("has no output")
    // A node named "constructor" with a problem (500), or with bad params (written unchecked: 201).
    const d = await graph({ nodes: { constructor: { task: "no.such" } } })
    expect([d.status, offending(d)]).toEqual([400, ["constructor"]])
    const e = await graph({ nodes: { constructor: { task: "debug.sleep", params: { ms: "slow" } } } })
    expect([e.status, offending(e)]).toEqual([400, ["constructor"]])
    // A node named "__proto__" became the prototype of `nodes` and vanished (201 without it).
    // (JSON.parse makes "__proto__" an own key, which toJson writes out.)
    const f = await graph({ nodes: JSON.parse(`{"a":{"task":"debug.sleep"},"__proto__":{"task":"debug.sleep"}}`) })
    expect([f.status, offending(f)]).toEqual([400, ["__proto__"]])
  })

  it("NUL in a path or query parameter, a version number past PostgreSQL's integer, a form body", async () => {
    // The fuzzing above may have deleted fz-repo.
    const created = await send({ method: "POST", path: "/api/v1/repositories", headers: { "content-type": "application/json" }, body: Buffer.from(`{"name":"regress-repo"}`) })
    expect(created.status).toBe(201)
    for (const path of ["/api/v1/repositories/%00", "/api/v1/repositories/a%00b/revisions", "/api/v1/tasks?task=%00", "/api/v1/repositories/regress-repo/versions/0/content?after=%00"]) {
      const a = await probe({ method: "GET", path, headers: {} })
      expect(a.status, path).toBe(400)
    }
    const big = await probe({ method: "GET", path: "/api/v1/repositories/regress-repo/versions/2147483648/content", headers: {} })
    expect(big.status).toBe(400)
    const form = await probe({
      method: "POST",
      path: "/api/v1/repositories",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: Buffer.from("name=from-a-form")
    })
    expect(form.status).toBe(415)
    expect((await send({ method: "GET", path: "/api/v1/repositories/from-a-form", headers: {} })).status).toBe(404)
  })
})

describe("prototype pollution", () => {
  it("keys __proto__, constructor and prototype anywhere leave the server's Object.prototype alone", async () => {
    await expectUnpolluted()
    const polluted = (example: unknown): Array<unknown> => {
      const out: Array<unknown> = []
      const n = containers(example).length
      for (let i = 0; i < n; i++) {
        for (const p of POLLUTERS) {
          const copy = structuredClone(example)
          const target = containers(copy)[i]!
          const parsed = JSON.parse(p) // own keys only: "__proto__" is a plain key here
          for (const k of Object.keys(parsed)) {
            if (Array.isArray(target)) target.push(new Raw(p))
            else define(target, k, new Raw(JSON.stringify(parsed[k])))
          }
          out.push(copy)
        }
      }
      return out
    }
    for (const [key, example] of Object.entries(examples)) {
      const [method, template] = key.split(" ") as [string, string]
      const path = template.replace("{name}", "fz-repo")
      for (const body of polluted(example())) {
        await probe({ method, path, headers: { "content-type": "application/json" }, body: Buffer.from(toJson(body)) })
      }
    }
    for (const q of ["__proto__[polluted]=yes", "__proto__.polluted=yes", "constructor[prototype][polluted]=yes", "__proto__=x", "__proto__=x&__proto__=y", "constructor=1"]) {
      for (const path of ["/api/v1/tasks", `/api/v1/futures/${known.settledFuture}`, "/api/v1/repositories/fz-repo/versions/0/content"]) {
        const a = await probe({ method: "GET", path: `${path}?${q}`, headers: {} })
        expect([200, 400, 404], `${path}?${q}`).toContain(a.status)
      }
    }
    await expectUnpolluted()
  })
})
