/**
 * The web console in a real browser: headless Chromium (Debian's package, driven by
 * playwright-core) against a real `serve` process that requires an API token. It enters the
 * token, watches a task go from blocked to succeeded without a reload, follows a failure to its
 * root cause, cancels a running task, renders a 1,000-task graph (and groups and expands similar
 * tasks), browses a synced repository and the files a distribution serves, moves through the lists
 * with the keyboard, and checks a narrow screen and the contrast of state badges.
 *
 * Screenshots go to $TMPDIR/cairn-console-screenshots (emptied at each run); with CAIRN_CONSOLE_SCREENSHOT=<path> the
 * README's first graph is also written there (that is how docs/console.png is made).
 * Without a working Chromium the suite fails and says why; it never skips.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { type BrowserContext, chromium, type Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createTestDatabase } from "./support/db.js"
import { api, type Server, startServer, until } from "./support/processes.js"
import { makeFiles, startUpstream, type Upstream } from "./support/upstream.js"

// The callbacks of page.evaluate run in the browser; this file is compiled without the DOM library.
declare const window: any, document: any, sessionStorage: any
declare const getComputedStyle: (e: unknown) => { color: string; backgroundColor: string }

/** Debian's Chromium; CAIRN_CHROMIUM names another binary. */
const CHROMIUM = process.env.CAIRN_CHROMIUM ?? "/usr/bin/chromium"
const TOKEN = "console-e2e-token"

let server: Server
let upstream: Upstream
let c: ReturnType<typeof api>
let browser: BrowserContext
let profile: string
let shots: string

const launch = async () => {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`the console's browser tests need Chromium at ${CHROMIUM}, and it is missing: install Debian's package (apt-get install -y chromium; .ci/run does it)`)
  }
  profile = fs.mkdtempSync(path.join(os.tmpdir(), "cairn-chromium-"))
  try {
    return await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1400, height: 900 },
      // No colour transitions: a screenshot shows the state, not a fade between two.
      reducedMotion: "reduce",
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"]
    })
  } catch (e) {
    throw new Error(`Chromium (${CHROMIUM}) could not be launched, so the console was not tested: ${(e as Error).message}`)
  }
}

beforeAll(async () => {
  browser = await launch()
  // One directory, emptied at each run: the last run's screenshots, and no pile of old ones.
  shots = path.join(os.tmpdir(), "cairn-console-screenshots")
  fs.rmSync(shots, { recursive: true, force: true })
  fs.mkdirSync(shots, { recursive: true })
  console.log(`console screenshots: ${shots}`)
  upstream = await startUpstream(makeFiles(6, { seed: 7, maxSize: 3000 }))
  server = await startServer(await createTestDatabase(), { CAIRN_API_TOKENS: TOKEN, CAIRN_WORKERS: "2" })
  c = api(server.url, TOKEN)
}, 180_000)

afterAll(async () => {
  await browser?.close()
  await server?.stop()
  await upstream?.close()
  if (profile) fs.rmSync(profile, { recursive: true, force: true })
})

interface Opened {
  readonly page: Page
  /** Uncaught errors and console errors of the page (401s of the token flow excepted). */
  readonly errors: Array<string>
  /** Requests the page sent, by path. */
  readonly requests: Array<string>
}

/** A new tab on the console (with the token in its session storage unless `token: false`). */
const open = async (hash: string, o: { token?: boolean; width?: number } = {}): Promise<Opened> => {
  const page = await browser.newPage()
  page.setDefaultTimeout(60_000)
  if (o.width) await page.setViewportSize({ width: o.width, height: 800 })
  const errors: Array<string> = []
  const requests: Array<string> = []
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`))
  page.on("console", (m) => {
    if (m.type() === "error" && !/status of 401/.test(m.text())) errors.push(`console: ${m.text()}`)
  })
  page.on("request", (r) => requests.push(new URL(r.url()).pathname + new URL(r.url()).search))
  if (o.token !== false) await page.addInitScript((t) => sessionStorage.setItem("cairn.token", t), TOKEN)
  // Every render of a drawing, recorded from the start (the event may come before the test listens).
  await page.addInitScript(() => {
    const w = window as unknown as { __renders: Array<unknown> }
    w.__renders = []
    document.addEventListener("cairn:graph-rendered", (e: { detail: unknown }) => w.__renders.push(e.detail))
  })
  await page.goto(`${server.url}/ui/${hash}`)
  return { page, errors, requests }
}

const shot = async (page: Page, name: string) => {
  const file = path.join(shots, `${name}.png`)
  await page.screenshot({ path: file })
  return file
}

interface Render {
  readonly graph: string
  readonly boxes: number
  readonly arrows: number
  readonly groups: number
  readonly tasks: number
}
const renders = (page: Page) => page.evaluate(() => (window as unknown as { __renders: Array<Render> }).__renders)
/** The first drawing render (from now on, after `seen` renders) that satisfies `ok`. */
const rendered = async (page: Page, ok: (r: Render) => boolean, seen = 0, timeout = 90_000) => {
  await page.waitForFunction(
    ([n]) => (window as unknown as { __renders: Array<unknown> }).__renders.length > n!,
    [seen],
    { timeout }
  )
  return until("a drawing render that fits", async () => (await renders(page)).slice(seen).find(ok), timeout, 100)
}

const submit = async (body: unknown) => {
  const r = await c.post("/api/v1/graphs", body)
  expect(r.status, JSON.stringify(r.body)).toBe(201)
  return r.body as { id: string; nodes: Record<string, { task: string; outputs: Record<string, string> }> }
}
const taskState = async (id: string) => (await c.get(`/api/v1/tasks/${id}`)).body.state as string
const settled = (graphId: string) =>
  until(`graph ${graphId} to settle`, async () => ["succeeded", "failed", "canceled"].includes((await c.get(`/api/v1/graphs/${graphId}`)).body.state), 60_000, 100)

/** The README's first graph ("A first graph"). */
const FIRST_GRAPH = {
  label: "hello",
  nodes: {
    fetch: { task: "debug.sleep", params: { ms: 1500, value: { greeting: "hello" } } },
    shout: { task: "debug.sleep", params: { value: { $ref: "fetch.result" } } },
    fail: { task: "debug.sleep", params: { fail: "no disk" }, resources: { exclusive: ["repo-a"] } },
    after: { task: "debug.sleep", params: { inputs: [{ $ref: "fail.result" }] } }
  }
}

describe("the console in Chromium", () => {
  it("loads without a token, asks for one when the API wants it, keeps it for the tab", async () => {
    const page = (await fetch(`${server.url}/ui/`))
    expect(page.status).toBe(200)
    expect((await fetch(`${server.url}/api/v1/graphs`)).status).toBe(401)

    const { page: p, errors } = await open("#/graphs", { token: false })
    await p.getByRole("heading", { name: "API token" }).waitFor()
    await p.getByLabel("Token", { exact: true }).fill("wrong-token")
    await p.getByRole("button", { name: "Use this token" }).click()
    await p.getByText("The server refused that token.").waitFor()
    await shot(p, "token-refused")
    await p.getByLabel("Token", { exact: true }).fill(TOKEN)
    await p.getByRole("button", { name: "Use this token" }).click()
    await p.getByRole("heading", { name: "Graphs", exact: true }).waitFor()
    expect(await p.evaluate(() => sessionStorage.getItem("cairn.token"))).toBe(TOKEN)
    await p.reload()
    await p.getByRole("heading", { name: "Graphs", exact: true }).waitFor()
    await p.getByRole("button", { name: "Forget token" }).click()
    await p.getByRole("heading", { name: "API token" }).waitFor()
    expect(await p.evaluate(() => sessionStorage.getItem("cairn.token"))).toBeNull()
    expect(errors).toEqual([])
    await p.close()
  })

  it("submits the README's first graph from the Submit page and watches it run", async () => {
    const { page, errors } = await open("#/submit")
    const text = await page.getByLabel("Graph (JSON)").inputValue()
    expect(JSON.parse(text)).toEqual(FIRST_GRAPH)
    await page.getByRole("button", { name: "Submit" }).click()
    await page.waitForURL(/#\/graphs\/[0-9A-Z]{26}$/)
    await page.locator('[data-node="fetch"][data-state="running"], [data-node="fetch"][data-state="succeeded"]').first().waitFor()
    await page.locator('[data-node="shout"][data-state="succeeded"]').waitFor()
    await page.locator('[data-node="after"][data-state="failed"]').waitFor()
    await expect.poll(() => page.locator(".graph-head").innerText()).toContain("failed")
    // A graph the server refuses: the answer's message and every offending node, nothing submitted.
    await page.goto(`${server.url}/ui/#/submit`)
    await page.getByLabel("Graph (JSON)").fill(JSON.stringify({ nodes: { a: { task: "no.such" }, b: { task: "debug.sleep", params: { inputs: [{ $ref: "zz.result" }] } } } }))
    await page.getByRole("button", { name: "Submit" }).click()
    const alert = page.getByRole("alert")
    await expect.poll(() => alert.innerText()).toMatch(/a: .*no\.such/)
    expect(await alert.innerText()).toMatch(/b: .*zz/)
    expect(page.url()).toContain("#/submit")
    expect(errors.filter((e) => !/status of 400/.test(e))).toEqual([])
    await page.close()
  })

  it("shows a task go from blocked to succeeded live, with what it waits for in words", async () => {
    // `hold` keeps the key; `first` queues behind it on the key, `second` waits for first's result.
    const gate = await submit({ label: "gate", nodes: { hold: { task: "debug.sleep", params: { ms: 600_000 }, resources: { exclusive: ["e2e-gate"] } } } })
    await until("the gate to run", async () => (await taskState(gate.nodes.hold!.task)) === "running", 60_000, 100)
    const g = await submit({
      label: "watched",
      nodes: {
        first: { task: "debug.sleep", params: { value: { n: 1 } }, resources: { exclusive: ["e2e-gate"] } },
        second: { task: "debug.sleep", params: { value: { $ref: "first.result" } } }
      }
    })
    const { page, errors, requests } = await open(`#/graphs/${g.id}`)
    await page.locator('[data-node="second"][data-state="blocked"]').waitFor()
    await page.locator('[data-node="first"][data-state="blocked"]').waitFor()
    await page.evaluate(() => ((window as unknown as { __sameDocument: boolean }).__sameDocument = true))

    // The table says why each one waits; the panel of a clicked box says it too.
    const row = (node: string) => page.locator(`[data-list="tasks"] tr[data-node="${node}"]`)
    await expect.poll(() => row("second").innerText()).toContain("waits for first to resolve its result")
    await expect.poll(() => row("first").innerText()).toMatch(/waits behind hold \(graph \w+\) on key e2e-gate \(running/)
    await page.locator('[data-node="first"]').first().click()
    const panel = page.locator("aside.side")
    await expect.poll(() => panel.innerText()).toContain("waits behind hold")
    await shot(page, "blocked")

    // One open request keeps the page live: once the server holds it, the page sends nothing more.
    const graphRequests = () => requests.filter((r) => r.startsWith(`/api/v1/graphs/${g.id}`)).length
    await until("the page's long-poll to be held", async () => {
      const m = await fetch(`${server.url}/metrics`).then((r) => r.text())
      return Number(/cairn_long_polls (\d+)/.exec(m)?.[1] ?? 0) > 0
    })
    expect(requests.some((r) => r.startsWith(`/api/v1/graphs/${g.id}?wait=`))).toBe(true)
    const before = graphRequests()

    expect((await c.post(`/api/v1/graphs/${gate.id}/cancel`)).status).toBe(202)
    await page.locator('[data-node="first"][data-state="succeeded"]').waitFor()
    await page.locator('[data-node="second"][data-state="succeeded"]').waitFor()
    // The held request was answered (the page asks again after each answer, a moment later: the
    // one answer may already carry both nodes settled), and the page was never reloaded.
    await until("the page to ask again after the held request's answer", async () => graphRequests() > before || undefined, 60_000, 50)
    expect(await page.evaluate(() => (window as unknown as { __sameDocument?: boolean }).__sameDocument)).toBe(true)
    await expect.poll(() => row("second").innerText()).toContain("succeeded")
    await shot(page, "succeeded")
    expect(errors).toEqual([])
    await page.close()
  })

  it("follows a failure to its root cause, on the task page and in the graph's panel", async () => {
    const g = await submit(FIRST_GRAPH)
    await settled(g.id)
    const { page, errors } = await open(`#/tasks/${g.nodes.after!.task}`)
    await page.getByRole("heading", { name: /Task after/ }).waitFor()
    const cause = page.locator("section.cause")
    await expect.poll(() => cause.innerText()).toContain("upstream_failed")
    await expect.poll(() => cause.innerText()).toMatch(/because its input fail\.result failed, from fail/)
    const root = page.locator(".root-cause a")
    expect(await root.innerText()).toBe("fail")
    await root.click()
    await page.getByRole("heading", { name: /Task fail/ }).waitFor()
    expect(page.url()).toContain(`#/tasks/${g.nodes.fail!.task}`)
    await expect.poll(() => page.locator("section.cause").innerText()).toContain("task_failed")
    await expect.poll(() => page.locator("section.cause").innerText()).toContain("no disk")
    await shot(page, "root-cause-task")

    // In the graph page: the panel of `after`, then its root cause selected in the drawing.
    await page.goto(`${server.url}/ui/#/graphs/${g.id}?task=${g.nodes.after!.task}`)
    await rendered(page, (r) => r.graph === g.id && r.tasks === 4)
    await page.locator("aside.side .root-cause a").click()
    await page.locator('.box.selected[data-node="fail"]').waitFor()
    await expect.poll(() => page.locator("aside.side").innerText()).toContain("no disk")
    await page.locator('[data-node="after"]').first().click()
    await page.locator('.box.selected[data-node="after"]').waitFor()
    const file = await shot(page, "readme-first-graph")
    if (process.env.CAIRN_CONSOLE_SCREENSHOT) fs.copyFileSync(file, process.env.CAIRN_CONSOLE_SCREENSHOT)
    expect(errors).toEqual([])
    await page.close()
  })

  it("cancels a running task from its page", async () => {
    const g = await submit({ label: "to cancel", nodes: { long: { task: "debug.sleep", params: { ms: 600_000 } }, next: { task: "debug.sleep", params: { inputs: [{ $ref: "long.result" }] } } } })
    const id = g.nodes.long!.task
    await until("the task to run", async () => (await taskState(id)) === "running", 60_000, 100)
    const { page, errors } = await open(`#/tasks/${id}`)
    await expect.poll(() => page.locator("[data-situation]").innerText()).toMatch(/running on \S+ for/)
    await page.getByRole("button", { name: "Cancel task…" }).click()
    await page.getByRole("button", { name: "Yes, cancel it" }).click()
    await expect.poll(() => page.locator("[data-situation]").innerText(), { timeout: 60_000 }).toContain("canceled")
    expect(await taskState(id)).toBe("canceled")
    expect(await taskState(g.nodes.next!.task)).toBe("canceled")
    await expect.poll(() => page.locator("section.cause").innerText()).toBeTruthy()
    await shot(page, "canceled")
    expect(errors).toEqual([])
    await page.close()
  })

  it("draws a 1,000-task graph, finds a node by name, groups similar tasks and expands them", async () => {
    // Eight layers of 100 (each task takes two inputs from the layer above, no two alike), one root
    // and 199 leaves fanned out from it (alike: they draw as one group).
    const nodes: Record<string, unknown> = { root: { task: "debug.sleep", params: {} } }
    for (let i = 0; i < 199; i++) nodes[`leaf-${i}`] = { task: "debug.sleep", params: { inputs: [{ $ref: "root.result" }] } }
    for (let l = 0; l < 8; l++) {
      for (let i = 0; i < 100; i++) {
        nodes[`n${l}-${i}`] = {
          task: "debug.sleep",
          params: l === 0 ? {} : { inputs: [{ $ref: `n${l - 1}-${i}.result` }, { $ref: `n${l - 1}-${(i * 7 + 3) % 100}.result` }] }
        }
      }
    }
    expect(Object.keys(nodes)).toHaveLength(1000)
    const g = await submit({ label: "a thousand", nodes })
    const { page, errors } = await open(`#/graphs/${g.id}`)
    const first = await rendered(page, (r) => r.graph === g.id)
    expect(first.tasks).toBe(1000)
    expect(first.groups).toBe(1)
    expect(first.boxes).toBe(802)
    expect(await page.locator(".box.t-group").textContent()).toContain("199 × debug.sleep")
    await shot(page, "thousand")

    await page.getByLabel("Find a node").fill("n7-42")
    await page.getByText("1 match", { exact: true }).waitFor()
    await page.getByLabel("Find a node").press("Enter")
    await page.locator('.box.match.selected[data-node="n7-42"]').waitFor()
    await page.getByRole("heading", { name: /^n7-42/ }).waitFor()
    await shot(page, "thousand-found")

    // A task inside the group: found, its group opened, the task selected.
    const seen = (await renders(page)).length
    await page.getByLabel("Find a node").fill("leaf-198")
    await page.getByText("1 match", { exact: true }).waitFor()
    await page.getByLabel("Find a node").press("Enter")
    const expanded = await rendered(page, (r) => r.graph === g.id && r.groups === 0, seen)
    expect(expanded.boxes).toBe(1000)
    await page.locator('.box.selected[data-node="leaf-198"]').waitFor()
    await shot(page, "thousand-expanded")
    // Grouping off and on again: the group comes back.
    const again = (await renders(page)).length
    await page.getByRole("checkbox", { name: "Group similar tasks" }).uncheck()
    await page.getByRole("checkbox", { name: "Group similar tasks" }).check()
    await rendered(page, (r) => r.graph === g.id && r.groups === 1, again)
    expect(errors).toEqual([])
    await page.close()
  }, 300_000)

  it("lists a repository's versions and content, and the files a distribution serves", async () => {
    for (const [kind, body] of [
      ["remotes", { name: "e2e-remote", url: upstream.url }],
      ["repositories", { name: "e2e-repo", description: "synced by the console test", retain_versions: 2 }],
      ["distributions", { name: "e2e-dist", base_path: "e2e/files" }]
    ] as const) expect((await c.post(`/api/v1/${kind}`, body)).status).toBe(201)
    const g = await submit({
      label: "publish e2e",
      nodes: {
        sync: { task: "file.sync", params: { repository: "e2e-repo", remote: "e2e-remote" } },
        publish: { task: "file.publish", params: { version: { $ref: "sync.version" } } },
        distribute: { task: "distribution.set", params: { distribution: "e2e-dist", publication: { $ref: "publish.publication" } } }
      }
    })
    await settled(g.id)
    expect((await c.get(`/api/v1/graphs/${g.id}`)).body.state).toBe("succeeded")

    const { page, errors } = await open("#/repositories")
    await page.getByRole("link", { name: "e2e-repo" }).click()
    const v1 = page.locator('[data-list="versions"] tr[data-version="1"]')
    await expect.poll(() => v1.innerText()).toContain("6 units")
    expect(await v1.innerText()).toContain("distribution e2e-dist, repository (latest version), repository (retained)")
    expect(await page.locator("[data-retention]").innerText()).toMatch(/Keeps the newest 2 versions \(retain_versions\)/)
    const content = page.locator('[data-list="content"]')
    await expect.poll(() => content.innerText()).toContain("dir0/file-0.bin")
    expect(await content.locator("tbody tr").count()).toBe(6)
    await shot(page, "repository")

    await page.goto(`${server.url}/ui/#/distributions`)
    await page.getByRole("link", { name: "e2e-dist" }).click()
    const files = page.locator('[data-list="files"] a[data-file]')
    await expect.poll(() => files.count()).toBe(6)
    const link = page.locator('a[data-file="dir1/file-1.bin"]')
    const served = await page.request.get(new URL(await link.getAttribute("href") ?? "", page.url()).toString())
    expect(served.status()).toBe(200)
    expect(Buffer.from(await served.body()).equals(Buffer.from(await (await fetch(upstream.fileUrl("dir1/file-1.bin"))).arrayBuffer()))).toBe(true)
    await shot(page, "distribution")

    await page.goto(`${server.url}/ui/#/workers`)
    const worker = page.locator('[data-list="workers"] tbody tr').first()
    await expect.poll(() => worker.innerText()).toMatch(/\/ 2/)
    expect(errors).toEqual([])
    await page.close()
  })

  it("shows a distribution's guard, lists a signed one's files through URLs it signs, and says why a token one's are not listed", async () => {
    // The publication of the test above, behind a signed guard and behind a token guard.
    const publication = (await c.get("/api/v1/distributions/e2e-dist")).body.publication
    expect(publication).toEqual(expect.any(String))
    for (const [name, base_path, guard] of [
      ["e2e-signed", "e2e/signed", { type: "signed" }],
      ["e2e-token", "e2e/token", { type: "token", tokens: ["e2e-content-token"] }]
    ] as const) expect((await c.post("/api/v1/distributions", { name, base_path, publication, guard })).status).toBe(201)

    const { page, errors } = await open("#/distributions")
    const guardOf = (name: string) => page.locator(`tr[data-name="${name}"] [data-guard]`).innerText()
    await expect.poll(() => guardOf("e2e-signed")).toBe("signed URLs")
    expect(await guardOf("e2e-token")).toBe("1 token")
    expect(await guardOf("e2e-dist")).toBe("open")

    await page.getByRole("link", { name: "e2e-signed" }).click()
    const files = page.locator('[data-list="files"] a[data-file]')
    await expect.poll(() => files.count()).toBe(6)
    // Following a link signs it first: the browser asks for the signed URL, which opens the file.
    const [asked] = await Promise.all([
      page.waitForRequest((r) => r.url().includes("/content/e2e/signed/dir1/file-1.bin?")),
      page.locator('a[data-file="dir1/file-1.bin"]').click()
    ])
    expect(new URL(asked.url()).searchParams.get("signature")).toMatch(/^[0-9a-f]{64}$/)
    const served = await fetch(asked.url())
    expect(served.status).toBe(200)
    expect(Buffer.from(await served.arrayBuffer()).equals(Buffer.from(await (await fetch(upstream.fileUrl("dir1/file-1.bin"))).arrayBuffer()))).toBe(true)
    // The same link unsigned is refused: the console's link did not just work because the file is open.
    expect((await fetch(`${server.url}/content/e2e/signed/dir1/file-1.bin`)).status).toBe(403)

    await page.goto(`${server.url}/ui/#/distributions/e2e-token`)
    await expect.poll(() => page.locator("[data-files-note]").innerText()).toMatch(/guarded by tokens/)
    expect(await page.locator("dd[data-guard]").innerText()).toBe("1 token")
    expect(errors).toEqual([])
    await page.close()
  })

  it("moves through the lists with the keyboard", async () => {
    for (let i = 0; i < 3; i++) await submit({ label: `keys-${i}`, nodes: { a: { task: "debug.sleep", params: {} } } })
    const { page, errors } = await open("#/graphs")
    // The first Tab reaches the skip link.
    await page.keyboard.press("Tab")
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe("Skip to content")

    const rows = page.locator('[data-list="graphs"] tbody tr[data-row]')
    await expect.poll(() => rows.count()).toBeGreaterThanOrEqual(3)
    const focused = () => page.evaluate(() => document.activeElement?.closest("[data-row]")?.getAttribute("data-graph") ?? null)
    const ids = await rows.evaluateAll((rs) => rs.map((r) => r.getAttribute("data-graph")))
    await rows.first().locator("a").first().focus()
    expect(await focused()).toBe(ids[0])
    await page.keyboard.press("ArrowDown")
    expect(await focused()).toBe(ids[1])
    await page.keyboard.press("End")
    expect(await focused()).toBe(ids[ids.length - 1])
    await page.keyboard.press("Home")
    expect(await focused()).toBe(ids[0])
    await page.keyboard.press("ArrowDown")
    await page.keyboard.press("Enter")
    await page.waitForURL(new RegExp(`#/graphs/${ids[1]}`))

    // In the graph's task table, and on the drawing (arrow keys pan, + zooms).
    const taskRows = page.locator('[data-list="tasks"] tbody tr[data-row] a')
    await taskRows.first().focus()
    await page.keyboard.press("ArrowDown")
    expect(await page.evaluate(() => document.activeElement?.tagName)).toBe("A")
    await rendered(page, (r) => r.graph === ids[1])
    const svg = page.locator("svg.graph-svg")
    const transform = () => svg.locator("> g").getAttribute("transform")
    const t0 = await transform()
    await svg.focus()
    await page.keyboard.press("+")
    const t1 = await transform()
    expect(t1).not.toBe(t0)
    await page.keyboard.press("ArrowLeft")
    expect(await transform()).not.toBe(t1)
    expect(errors).toEqual([])
    await page.close()
  })

  it("fits a narrow screen, and state badges have enough contrast", async () => {
    const g = await submit(FIRST_GRAPH)
    await settled(g.id)
    const { page, errors } = await open(`#/graphs/${g.id}?task=${g.nodes.after!.task}`, { width: 380 })
    await rendered(page, (r) => r.graph === g.id)
    await page.locator("aside.side .root-cause").waitFor()
    // Nothing wider than the screen: wide tables scroll inside their own box.
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(380)
    await shot(page, "narrow")
    const ratios = await page.locator(".badge").evaluateAll((els) => {
      const rgb = (s: string) => (s.match(/[\d.]+/g) ?? []).slice(0, 3).map(Number)
      const lum = ([r, g, b]: Array<number>) => {
        const f = (v: number) => ((v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4)
        return 0.2126 * f(r!) + 0.7152 * f(g!) + 0.0722 * f(b!)
      }
      return els.map((e) => {
        const s = getComputedStyle(e)
        const [a, b] = [lum(rgb(s.color)), lum(rgb(s.backgroundColor))].sort((x, y) => y - x)
        return { text: e.textContent, ratio: (a! + 0.05) / (b! + 0.05) }
      })
    })
    expect(ratios.length).toBeGreaterThan(0)
    for (const r of ratios) expect(r.ratio, r.text ?? "").toBeGreaterThanOrEqual(4.5)
    expect(errors).toEqual([])
    await page.close()
  })
})
