/**
 * `cairn repo|remote|dist create|show|list|update|delete|revisions`, plus `repo versions` and
 * `repo content`. show/list/delete/revisions are the same for the three kinds (as on the server,
 * src/api/named-groups.ts); create and update differ by the fields each kind has.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { Effect, Option } from "effect"
import type { CairnClientShape } from "../../client/effect.js"
import { named, type NamedGroup, type PatchOf, type ViewOf } from "../../client/named.js"
import { CliError, type Common, common, fields, output, table, withClient } from "../common.js"
import { group } from "../group.js"

export interface Kind<G extends NamedGroup> {
  /** The CLI's word: repo, remote, dist. */
  readonly command: string
  readonly group: G
  /** For messages: repository, remote, distribution. */
  readonly noun: string
  /** Columns of `list`, after the name. */
  readonly columns: ReadonlyArray<string>
}

const repoKind: Kind<"repositories"> = { command: "repo", group: "repositories", noun: "repository", columns: ["revision", "description"] }
const remoteKind: Kind<"remotes"> = { command: "remote", group: "remotes", noun: "remote", columns: ["policy", "url", "revision"] }
const distKind: Kind<"distributions"> = { command: "dist", group: "distributions", noun: "distribution", columns: ["base_path", "publication", "revision"] }

export const nameArg = (k: Kind<NamedGroup>) => Args.text({ name: "name" }).pipe(Args.withDescription(`The ${k.noun}'s name.`))

const cell = (v: unknown) => (v === null || v === undefined ? "-" : typeof v === "object" ? JSON.stringify(v) : String(v))
const showOne = (v: object) => fields(Object.entries(v).map(([k, x]) => [k, cell(x)]))
const showMany = (k: Kind<NamedGroup>, vs: ReadonlyArray<object>) =>
  vs.length === 0
    ? `no ${k.noun === "repository" ? "repositories" : `${k.noun}s`}`
    : table([["name", ...k.columns], ...vs.map((v) => ["name", ...k.columns].map((col) => cell((v as Record<string, unknown>)[col])))])

// ---- the operations every kind has --------------------------------------------------------------

export const sharedCommands = <G extends NamedGroup>(k: Kind<G>) => {
  const withOps = <A, E>(c: Common, f: (ops: ReturnType<typeof named<G>>, client: CairnClientShape) => Effect.Effect<A, E>) =>
    withClient(c, (client) => f(named(client, k.group), client))
  return [
    Command.make("show", { ...common, name: nameArg(k) }, (c) =>
      withOps(c, (ops) => Effect.flatMap(ops.get(c.name), (v) => output(c, v, () => showOne(v))))).pipe(
        Command.withDescription(`Show a ${k.noun}'s current revision.`)
      ),
    Command.make("list", common, (c) =>
      withOps(c, (ops) => Effect.flatMap(ops.list(), (vs) => output(c, vs, () => showMany(k, vs))))).pipe(
        Command.withDescription(`List the ${k.noun === "repository" ? "repositories" : `${k.noun}s`}.`)
      ),
    Command.make("revisions", { ...common, name: nameArg(k) }, (c) =>
      withOps(c, (ops) =>
        Effect.flatMap(ops.revisions(c.name), (vs) =>
          output(c, vs, () => table([["revision", "created_at"], ...vs.map((v) => [v.revision, v.created_at])]))))).pipe(
        Command.withDescription(`List a ${k.noun}'s revisions, newest first.`)
      ),
    Command.make("delete", { ...common, name: nameArg(k) }, (c) =>
      withOps(c, (ops) => Effect.zipRight(ops.delete(c.name), output(c, { deleted: c.name }, () => `deleted ${k.noun} ${c.name}`)))).pipe(
        Command.withDescription(`Delete a ${k.noun} (queued tasks that hold its old revision still run).`)
      )
  ] as const
}

export const ifMatch = Options.text("if-match").pipe(
  Options.withDescription("Only if the name is still at this revision (else fail: precondition failed)."),
  Options.optional
)

/** `update`: a new revision from the given fields; at least one is needed. */
const update = <G extends NamedGroup>(k: Kind<G>, opts: Record<string, Options.Options<Option.Option<unknown>>>, toPatch: (o: Record<string, Option.Option<unknown>>) => PatchOf<G>) =>
  Command.make("update", { ...common, name: nameArg(k), ifMatch, fields: opts }, (c) =>
    withClient(c, (client) =>
      Effect.gen(function*() {
        const patch = toPatch(c.fields as Record<string, Option.Option<unknown>>)
        if (Object.keys(patch as object).length === 0) {
          return yield* new CliError({ message: `nothing to change: give ${Object.keys(opts).map((o) => `--${o}`).join(" or ")}`, exitCode: 2 })
        }
        const v = yield* named(client, k.group).update(c.name, patch, Option.getOrUndefined(c.ifMatch))
        yield* output(c, v, () => `${k.noun} ${c.name} is at revision ${v.revision}`)
      })
    )).pipe(Command.withDescription(`Change a ${k.noun}: a new revision (the old one stays).`))

/** Some fields of a patch: only the options given. */
const given = (o: Record<string, Option.Option<unknown>>, rename: Record<string, string>) =>
  Object.fromEntries(Object.entries(o).flatMap(([k, v]) => (Option.isSome(v) ? [[rename[k] ?? k, v.value]] : [])))

const created = <G extends NamedGroup>(k: Kind<G>, c: Common) => (v: ViewOf<G>) =>
  output(c, v, () => `created ${k.noun} ${v.name} (revision ${v.revision})`)

// ---- repositories ---------------------------------------------------------------------------------

const description = Options.text("description").pipe(Options.withDescription("Free text."), Options.optional)

const repoCreate = Command.make("create", { ...common, name: nameArg(repoKind), description }, (c) =>
  withClient(c, (client) =>
    Effect.flatMap(
      named(client, "repositories").create({ name: c.name, ...(Option.isSome(c.description) ? { description: c.description.value } : {}) }),
      created(repoKind, c)
    ))).pipe(Command.withDescription("Create a repository (its empty version 0 exists at once)."))

const versions = Command.make("versions", { ...common, name: nameArg(repoKind) }, (c) =>
  withClient(c, (client) =>
    Effect.flatMap(client.call((api) => api.repositories.versions({ path: { name: c.name } })), (vs) =>
      output(c, vs, () =>
        table([["version", "files", "created_at", "future"], ...vs.map((v) => [String(v.number), String(v.content_count), v.created_at, v.future ?? "-"])]))))
).pipe(Command.withDescription("List a repository's versions, newest first."))

/** Every page of a version's content (the API pages by `after`). */
const allContent = (client: CairnClientShape, name: string, number: number) =>
  Effect.gen(function*() {
    const items = []
    let after: string | undefined
    do {
      const page = yield* client.call((api) =>
        api.repositories.content({ path: { name, number }, urlParams: after === undefined ? { limit: 1000 } : { after, limit: 1000 } })
      )
      items.push(...page.items)
      after = page.next
    } while (after !== undefined)
    return items
  })

const content = Command.make(
  "content",
  {
    ...common,
    name: nameArg(repoKind),
    version: Options.integer("version").pipe(Options.withDescription("Which version (default: the latest)."), Options.optional)
  },
  (c) =>
    withClient(c, (client) =>
      Effect.gen(function*() {
        const number = Option.isSome(c.version)
          ? c.version.value
          : Math.max(...(yield* client.call((api) => api.repositories.versions({ path: { name: c.name } }))).map((v) => v.number))
        const items = yield* allContent(client, c.name, number)
        yield* output(c, items, () =>
          items.length === 0
            ? `version ${number} of ${c.name} is empty`
            : table([["relative_path", "size", "sha256"], ...items.map((i) => [i.relative_path, String(i.size), i.sha256])]))
      })
    )
).pipe(Command.withDescription("List the files of a repository version."))

const repoCommands = group("repo", "Repositories: create, show, list, update, delete, revisions, versions, content.", [
  repoCreate,
  ...sharedCommands(repoKind),
  update(repoKind, { description }, (o) => given(o, {})),
  versions,
  content
])

// ---- remotes --------------------------------------------------------------------------------------

const policy = Options.choice("policy", ["immediate", "on_demand"]).pipe(
  Options.withDescription("immediate: download at sync; on_demand: record the files, fetch each on its first request."),
  Options.optional
)
const concurrency = Options.integer("download-concurrency").pipe(Options.withDescription("Downloads at once (1..64)."), Options.optional)
const manifestUrl = Args.text({ name: "manifest-url" }).pipe(Args.withDescription("The address of the remote's PULP_MANIFEST."))

const remoteCreate = Command.make("create", { ...common, name: nameArg(remoteKind), manifestUrl, policy, concurrency }, (c) =>
  withClient(c, (client) =>
    Effect.flatMap(
      named(client, "remotes").create({
        name: c.name,
        url: c.manifestUrl,
        ...(Option.isSome(c.policy) ? { policy: c.policy.value } : {}),
        ...(Option.isSome(c.concurrency) ? { download_concurrency: c.concurrency.value } : {})
      }),
      created(remoteKind, c)
    ))).pipe(Command.withDescription("Create a remote: the PULP_MANIFEST of a file repository to sync from."))

// --manifest-url, not --url: --url names the cairn server.
const newManifestUrl = Options.text("manifest-url").pipe(Options.withDescription("The new PULP_MANIFEST address."), Options.optional)

const remoteCommands = group("remote", "Remotes: create, show, list, update, delete, revisions.", [
  remoteCreate,
  ...sharedCommands(remoteKind),
  update(remoteKind, { "manifest-url": newManifestUrl, policy, "download-concurrency": concurrency }, (o) =>
    given(o, { "manifest-url": "url", "download-concurrency": "download_concurrency" }))
])

// ---- distributions --------------------------------------------------------------------------------

const basePath = Options.text("base-path").pipe(Options.withDescription("Where it is served: /content/<base-path>/."))
const publication = Options.text("publication").pipe(Options.withDescription("The publication future to serve."), Options.optional)

const distCreate = Command.make("create", { ...common, name: nameArg(distKind), basePath, publication }, (c) =>
  withClient(c, (client) =>
    Effect.flatMap(
      named(client, "distributions").create({
        name: c.name,
        base_path: c.basePath,
        ...(Option.isSome(c.publication) ? { publication: c.publication.value } : {})
      }),
      created(distKind, c)
    ))).pipe(Command.withDescription("Create a distribution: a base path under /content/."))

const distCommands = group("dist", "Distributions: create, show, list, update, delete, revisions.", [
  distCreate,
  ...sharedCommands(distKind),
  update(distKind, { "base-path": basePath.pipe(Options.optional), publication }, (o) => given(o, { "base-path": "base_path" }))
])

export const namedCommands = [repoCommands, remoteCommands, distCommands] as const
