/**
 * The database refuses to delete what is still held, whatever the code does (DESIGN.md §19 "Why
 * the database refuses to lose held rows"). For every kind of holder: a row held by that holder
 * alone is made directly in SQL; deleting it is refused (SQLSTATE 23503, a foreign key or a guard
 * trigger raising the same code; 23001 for the RESTRICT keys to units and artifacts; CA001 for
 * unsettled work); then, in the same transaction, the holder lets go and the same DELETE
 * succeeds, which shows that this holder, and nothing else, was what kept it. Every attempt is
 * rolled back.
 */
import { Effect } from "effect"
import pg from "pg"
import { monotonicFactory } from "ulid"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { cancelGraph } from "../src/engine/cancel.js"
import { submitGraph } from "../src/engine/submit.js"
import { createTestDatabase, engineLayer } from "./support/db.js"

const newId = monotonicFactory()

let url: string
let db: pg.Client

beforeAll(async () => {
  url = await createTestDatabase()
  db = new pg.Client({ connectionString: url })
  await db.connect()
})
afterAll(async () => {
  await db?.end()
})

const q = (text: string, params: Array<unknown> = []) => db.query(text, params)

/**
 * `del` is refused with `code` while the holder holds; after `release` (in the same transaction)
 * it deletes exactly one row. Rolled back either way.
 */
/** What a foreign key declared ON DELETE RESTRICT refuses with (those to units and artifacts). */
const RESTRICT = "23001"

const heldUntil = async (del: string, release: string, code = "23503") => {
  await q("BEGIN")
  try {
    await q("SAVEPOINT attempt")
    const refused = await q(del).then(() => undefined, (e: { code?: string; message: string }) => e)
    expect(refused?.code, `${del}: ${refused?.message ?? "not refused"}`).toBe(code)
    await q("ROLLBACK TO SAVEPOINT attempt")
    await q(release)
    expect((await q(del)).rowCount, del).toBe(1)
  } finally {
    await q("ROLLBACK")
  }
}

// ---- fixtures, written directly --------------------------------------------------------------

/** A repository resource with `n` versions (0..n-1), none kept, no head, no name. */
const bareRepository = async (n: number) => {
  const id = newId()
  await q("INSERT INTO resources (id, kind) VALUES ($1, 'repository')", [id])
  const versions: Array<string> = []
  for (let i = 0; i < n; i++) {
    const v = newId()
    await q("INSERT INTO repository_versions (id, repository_id, number, content_count) VALUES ($1, $2, $3, 0)", [v, id, i])
    versions.push(v)
  }
  return { id, versions }
}

const artifact = async () => {
  const id = newId()
  await q("INSERT INTO artifacts (id, sha256, size) VALUES ($1, $2, 1)", [id, newId().toLowerCase().padEnd(64, "0")])
  return id
}

const unit = async () => {
  const id = newId()
  await q("INSERT INTO content_units (id, relative_path, sha256, size) VALUES ($1, $2, $3, 1)", [id, `f/${id}`, "0".repeat(64)])
  return id
}

const publication = async (version: string, future: string | null = null) => {
  const id = newId()
  await q("INSERT INTO publications (id, version_id, future_id) VALUES ($1, $2, $3)", [id, version, future])
  await q("INSERT INTO publication_files (publication_id, relative_path, media_type, position, artifact_id) VALUES ($1, 'PULP_MANIFEST', 'text/plain', 0, $2)", [id, await artifact()])
  return id
}

const remoteRevision = async () => {
  const remote = newId()
  await q("INSERT INTO resources (id, kind) VALUES ($1, 'remote')", [remote])
  const rev = newId()
  await q("INSERT INTO remote_revisions (id, remote_id, name, url, policy, download_concurrency) VALUES ($1, $2, 'r', 'http://x/', 'immediate', 1)", [rev, remote])
  return { remote, rev }
}

/** Unsettled tasks (nothing runs them here) and a settled one, made by the engine. */
const engineRows = async () =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const open = yield* submitGraph({
      nodes: {
        a: { task: "debug.sleep", params: {} },
        b: { task: "debug.sleep", params: { inputs: [{ $ref: "a.result" }] } }
      }
    })
    const done = yield* submitGraph({ nodes: { s: { task: "debug.sleep", params: {} } } })
    yield* cancelGraph(done.id)
    const consumer = yield* submitGraph({ nodes: { c: { task: "debug.sleep", params: { inputs: [{ $ref: done.nodes.s!.outputs.result! }] } } } })
    yield* cancelGraph(consumer.id)
    const spare = []
    for (let i = 0; i < 5; i++) {
      const g = yield* submitGraph({ nodes: { s: { task: "debug.sleep", params: {} } } })
      yield* cancelGraph(g.id)
      spare.push(g)
    }
    return { open, done, consumer, spare }
  })).pipe(Effect.provide(engineLayer(url))))

const taskHold = (task: string, column: string, id: string) =>
  q(`INSERT INTO task_holds (task_id, ${column}) VALUES ($1, $2)`, [task, id])

describe("the database refuses to delete what is held", () => {
  it("repository versions: by a keep, the head, a publication, a task", async () => {
    const { open } = await engineRows()
    const task = open.nodes.b!.task
    const r = await bareRepository(4)
    const [keep, head, pub, held] = r.versions as [string, string, string, string]
    await q("INSERT INTO version_keeps (version_id, repository_id) VALUES ($1, $2)", [keep, r.id])
    await q("INSERT INTO repository_heads (repository_id, version_id) VALUES ($1, $2)", [r.id, head])
    const p = await publication(pub)
    await taskHold(task, "version_id", held)
    await heldUntil(`DELETE FROM repository_versions WHERE id = '${keep}'`, `DELETE FROM version_keeps WHERE version_id = '${keep}'`)
    await heldUntil(`DELETE FROM repository_versions WHERE id = '${head}'`, `DELETE FROM repository_heads WHERE repository_id = '${r.id}'`)
    await heldUntil(`DELETE FROM repository_versions WHERE id = '${pub}'`, `DELETE FROM publications WHERE id = '${p}'`)
    await heldUntil(`DELETE FROM repository_versions WHERE id = '${held}'`, `DELETE FROM task_holds WHERE version_id = '${held}'`)
  })

  it("publications: by a live distribution, a task, the keep of their version", async () => {
    const { open } = await engineRows()
    const r = await bareRepository(2)
    const [unkept, kept] = r.versions as [string, string]
    await q("INSERT INTO version_keeps (version_id, repository_id) VALUES ($1, $2)", [kept, r.id])
    const served = await publication(unkept)
    const used = await publication(unkept)
    const ofKept = await publication(kept)
    const dist = newId()
    await q("INSERT INTO resources (id, kind) VALUES ($1, 'distribution')", [dist])
    await q("INSERT INTO distribution_paths (distribution_id, base_path, publication_id) VALUES ($1, $2, $3)", [dist, `g/${dist}`, served])
    await taskHold(open.nodes.b!.task, "publication_id", used)
    await heldUntil(`DELETE FROM publications WHERE id = '${served}'`, `DELETE FROM distribution_paths WHERE distribution_id = '${dist}'`)
    await heldUntil(`DELETE FROM publications WHERE id = '${used}'`, `DELETE FROM task_holds WHERE publication_id = '${used}'`)
    await heldUntil(`DELETE FROM publications WHERE id = '${ofKept}'`, `DELETE FROM version_keeps WHERE version_id = '${kept}'`)
  })

  it("membership rows: by a version in their range; an open one by the head", async () => {
    const r = await bareRepository(3)
    const u = await unit()
    // Closed [1, 2): held by version 1 alone.
    await q("INSERT INTO repository_content (repository_id, content_id, added_in, removed_in) VALUES ($1, $2, 1, 2)", [r.id, u])
    const closed = `DELETE FROM repository_content WHERE repository_id = '${r.id}' AND content_id = '${u}' AND added_in = 1`
    // Versions 0 and 2 are outside it: gone, they change nothing.
    await q("BEGIN")
    await q("DELETE FROM repository_versions WHERE id = ANY($1)", [[r.versions[0], r.versions[2]]])
    expect((await q(closed).then(() => undefined, (e: { code: string }) => e))?.code).toBe("23503")
    await q("ROLLBACK")
    await heldUntil(closed, `DELETE FROM repository_versions WHERE id = '${r.versions[1]}'`)
    // Open from 5 (above every version): held by the head alone.
    const v = await unit()
    await q("INSERT INTO repository_content (repository_id, content_id, added_in) VALUES ($1, $2, 5)", [r.id, v])
    await q("INSERT INTO repository_heads (repository_id, version_id) VALUES ($1, $2)", [r.id, r.versions[2]])
    await heldUntil(
      `DELETE FROM repository_content WHERE repository_id = '${r.id}' AND content_id = '${v}'`,
      `DELETE FROM repository_heads WHERE repository_id = '${r.id}'`
    )
  })

  it("content units: by a membership row, a task", async () => {
    const { open } = await engineRows()
    const r = await bareRepository(1)
    const member = await unit()
    await q("INSERT INTO repository_content (repository_id, content_id, added_in, removed_in) VALUES ($1, $2, 7, 8)", [r.id, member])
    const used = await unit()
    await taskHold(open.nodes.b!.task, "content_id", used)
    await heldUntil(`DELETE FROM content_units WHERE id = '${member}'`, `DELETE FROM repository_content WHERE content_id = '${member}'`, RESTRICT)
    await heldUntil(`DELETE FROM content_units WHERE id = '${used}'`, `DELETE FROM task_holds WHERE content_id = '${used}'`, RESTRICT)
  })

  it("artifacts: by a unit, a publication's manifest, an upload, a task using it, a task holding it", async () => {
    const { open } = await engineRows()
    const task = open.nodes.b!.task
    const linked = await artifact()
    const u = await unit()
    await q("INSERT INTO content_artifacts (content_id, artifact_id) VALUES ($1, $2)", [u, linked])
    const r = await bareRepository(1)
    const p = await publication(r.versions[0]!)
    const manifest = (await q("SELECT artifact_id AS a FROM publication_files WHERE publication_id = $1", [p])).rows[0].a as string
    const uploaded = await artifact()
    await q("INSERT INTO uploads (id, artifact_id, expires_at) VALUES ($1, $2, now() + interval '1 hour')", [newId(), uploaded])
    const using = await artifact()
    await q("INSERT INTO task_artifacts (task_id, artifact_id) VALUES ($1, $2)", [task, using])
    const holding = await artifact()
    await taskHold(task, "artifact_id", holding)
    await heldUntil(`DELETE FROM artifacts WHERE id = '${linked}'`, `DELETE FROM content_artifacts WHERE content_id = '${u}'`, RESTRICT)
    await heldUntil(`DELETE FROM artifacts WHERE id = '${manifest}'`, `DELETE FROM publications WHERE id = '${p}'`, RESTRICT)
    await heldUntil(`DELETE FROM artifacts WHERE id = '${uploaded}'`, `DELETE FROM uploads WHERE artifact_id = '${uploaded}'`, RESTRICT)
    await heldUntil(`DELETE FROM artifacts WHERE id = '${using}'`, `DELETE FROM task_artifacts WHERE artifact_id = '${using}'`, RESTRICT)
    await heldUntil(`DELETE FROM artifacts WHERE id = '${holding}'`, `DELETE FROM task_holds WHERE artifact_id = '${holding}'`, RESTRICT)
  })

  it("revisions: by their name while current; a remote revision also by content sources and a task", async () => {
    const { open } = await engineRows()
    const current = await remoteRevision()
    await q("INSERT INTO names (kind, name, resource_id, revision_id) VALUES ('remote', $1, $2, $3)", [`n${current.rev}`, current.remote, current.rev])
    await heldUntil(`DELETE FROM remote_revisions WHERE id = '${current.rev}'`, `DELETE FROM names WHERE revision_id = '${current.rev}'`)
    const sourced = await remoteRevision()
    const u = await unit()
    await q("INSERT INTO content_sources (content_id, remote_revision_id, url) VALUES ($1, $2, 'http://x/f')", [u, sourced.rev])
    await heldUntil(`DELETE FROM remote_revisions WHERE id = '${sourced.rev}'`, `DELETE FROM content_sources WHERE remote_revision_id = '${sourced.rev}'`)
    const used = await remoteRevision()
    await taskHold(open.nodes.b!.task, "remote_revision_id", used.rev)
    await heldUntil(`DELETE FROM remote_revisions WHERE id = '${used.rev}'`, `DELETE FROM task_holds WHERE remote_revision_id = '${used.rev}'`)
    // The same guard on repository and distribution revisions.
    const repo = newId()
    const repoRev = newId()
    await q("INSERT INTO resources (id, kind) VALUES ($1, 'repository')", [repo])
    await q("INSERT INTO repository_revisions (id, repository_id, name) VALUES ($1, $2, 'x')", [repoRev, repo])
    await q("INSERT INTO names (kind, name, resource_id, revision_id) VALUES ('repository', $1, $2, $3)", [`n${repoRev}`, repo, repoRev])
    await heldUntil(`DELETE FROM repository_revisions WHERE id = '${repoRev}'`, `DELETE FROM names WHERE revision_id = '${repoRev}'`)
    const dist = newId()
    const distRev = newId()
    await q("INSERT INTO resources (id, kind) VALUES ($1, 'distribution')", [dist])
    await q("INSERT INTO distribution_revisions (id, distribution_id, name, base_path) VALUES ($1, $2, 'x', 'x')", [distRev, dist])
    await q("INSERT INTO names (kind, name, resource_id, revision_id) VALUES ('distribution', $1, $2, $3)", [`n${distRev}`, dist, distRev])
    await heldUntil(`DELETE FROM distribution_revisions WHERE id = '${distRev}'`, `DELETE FROM names WHERE revision_id = '${distRev}'`)
  })

  it("repository heads: by the repository's name, by a task", async () => {
    const { open } = await engineRows()
    const named = await bareRepository(1)
    await q("INSERT INTO repository_heads (repository_id, version_id) VALUES ($1, $2)", [named.id, named.versions[0]])
    const rev = newId()
    await q("INSERT INTO repository_revisions (id, repository_id, name) VALUES ($1, $2, 'h')", [rev, named.id])
    await q("INSERT INTO names (kind, name, resource_id, revision_id) VALUES ('repository', $1, $2, $3)", [`h${rev}`, named.id, rev])
    await heldUntil(`DELETE FROM repository_heads WHERE repository_id = '${named.id}'`, `DELETE FROM names WHERE resource_id = '${named.id}'`)
    const used = await bareRepository(1)
    await q("INSERT INTO repository_heads (repository_id, version_id) VALUES ($1, $2)", [used.id, used.versions[0]])
    await taskHold(open.nodes.b!.task, "repository_id", used.id)
    await heldUntil(`DELETE FROM repository_heads WHERE repository_id = '${used.id}'`, `DELETE FROM task_holds WHERE repository_id = '${used.id}'`)
  })

  it("futures: by their payload row, by an input edge of a task; pending futures and unsettled tasks never", async () => {
    const { open, done, consumer, spare } = await engineRows()
    const future = done.nodes.s!.outputs.result!
    // A settled future another graph's task took as input (history): held by the edge.
    await heldUntil(`DELETE FROM futures WHERE id = '${future}'`, `DELETE FROM task_inputs WHERE future_id = '${future}'`)
    // A payload row holds the future it resolved: a version, a publication, a distribution revision.
    const [f1, f2, f3] = spare.map((g) => g.nodes.s!.outputs.result!) as [string, string, string]
    const r = await bareRepository(1)
    const v = newId()
    await q("INSERT INTO repository_versions (id, repository_id, number, content_count, future_id) VALUES ($1, $2, 9, 0, $3)", [v, r.id, f1])
    await heldUntil(`DELETE FROM futures WHERE id = '${f1}'`, `DELETE FROM repository_versions WHERE id = '${v}'`)
    const p = await publication(r.versions[0]!, f2)
    await heldUntil(`DELETE FROM futures WHERE id = '${f2}'`, `DELETE FROM publications WHERE id = '${p}'`)
    const dist = newId()
    const rev = newId()
    await q("INSERT INTO resources (id, kind) VALUES ($1, 'distribution')", [dist])
    await q("INSERT INTO distribution_revisions (id, distribution_id, name, base_path, future_id) VALUES ($1, $2, 'd', 'd', $3)", [rev, dist, f3])
    await heldUntil(`DELETE FROM futures WHERE id = '${f3}'`, `DELETE FROM distribution_revisions WHERE id = '${rev}'`)
    // Unsettled work is refused by the guards, whatever references it.
    for (const del of [`DELETE FROM futures WHERE id = '${open.nodes.b!.outputs.result}'`, `DELETE FROM tasks WHERE id = '${open.nodes.b!.task}'`]) {
      await q("BEGIN")
      try {
        const refused = await q(del).then(() => undefined, (e: { code: string }) => e)
        expect(refused?.code, del).toBe("CA001")
      } finally {
        await q("ROLLBACK")
      }
    }
    // A settled task is held by its futures, a graph by its tasks.
    const task = spare[3]!.nodes.s!.task
    await heldUntil(`DELETE FROM tasks WHERE id = '${task}'`, `DELETE FROM futures WHERE producer_task = '${task}'`)
    const graph = spare[4]!
    await heldUntil(`DELETE FROM graphs WHERE id = '${graph.id}'`, `DELETE FROM futures WHERE producer_task = '${graph.nodes.s!.task}'; DELETE FROM tasks WHERE graph_id = '${graph.id}'`)
  })
})
