/**
 * `cairn repo|remote|dist create|show|list|update|delete|revisions`, plus `repo versions` (with
 * `show` and `delete`), `repo content` and `dist sign`. show/list/delete/revisions are the same for the three kinds (as on the server,
 * src/api/named-groups.ts); create and update differ by the fields each kind has.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as ValidationError from "@effect/cli/ValidationError"
import { Console, Effect, Option } from "effect"
import * as fs from "node:fs"
import type { CairnClientShape } from "../../client/effect.js"
import { named, type NamedGroup, type PatchOf, type ViewOf } from "../../client/named.js"
import { GUARD_TOKEN, MAX_GUARD_TOKENS } from "../../content/guards.js"
import { CliError, type Common, common, fields, output, parseDuration, table, withClient } from "../common.js"
import { group } from "../group.js"
import { clearOption, remoteSettings, remoteSettingsOptions, remoteShown } from "../remote-settings.js"
import { followReporting, wait } from "./lifecycle.js"

export interface Kind<G extends NamedGroup> {
  /** The CLI's word: repo, remote, dist. */
  readonly command: string
  readonly group: G
  /** For messages: repository, remote, distribution. */
  readonly noun: string
  /** Columns of `list`, after the name. */
  readonly columns: ReadonlyArray<string>
}

const repoKind: Kind<"repositories"> = { command: "repo", group: "repositories", noun: "repository", columns: ["revision", "retain_versions", "description"] }
const remoteKind: Kind<"remotes"> = { command: "remote", group: "remotes", noun: "remote", columns: ["policy", "url", "revision"] }
const distKind: Kind<"distributions"> = { command: "dist", group: "distributions", noun: "distribution", columns: ["base_path", "publication", "guard", "revision"] }

export const nameArg = (k: Kind<NamedGroup>) => Args.text({ name: "name" }).pipe(Args.withDescription(`The ${k.noun}'s name.`))

const cell = (v: unknown) => (v === null || v === undefined ? "-" : typeof v === "object" ? JSON.stringify(v) : String(v))
const showOne = (v: object) => fields(Object.entries(v).map(([k, x]) => [k, cell(x)]))
const showMany = (k: Kind<NamedGroup>, vs: ReadonlyArray<object>) =>
  vs.length === 0
    ? `no ${k.noun === "repository" ? "repositories" : `${k.noun}s`}`
    : table([["name", ...k.columns], ...vs.map((v) => ["name", ...k.columns].map((col) => cell((v as Record<string, unknown>)[col])))])

// ---- the operations every kind has --------------------------------------------------------------

export const sharedCommands = <G extends NamedGroup>(k: Kind<G>, present: (v: ViewOf<G>) => object = (v) => v) => {
  const withOps = <A, E>(c: Common, f: (ops: ReturnType<typeof named<G>>, client: CairnClientShape) => Effect.Effect<A, E>) =>
    withClient(c, (client) => f(named(client, k.group), client))
  return [
    Command.make("show", { ...common, name: nameArg(k) }, (c) =>
      withOps(c, (ops) => Effect.flatMap(ops.get(c.name), (v) => output(c, v, () => showOne(present(v)))))).pipe(
        Command.withDescription(`Show a ${k.noun}'s current revision${k.group === "remotes" ? " (secrets are never shown: has_password, has_client_key, header_names)" : ""}.`)
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

/** `update`: a new revision from the given fields (read and checked before anything is sent); at least one is needed. */
const update = <G extends NamedGroup, A>(
  k: Kind<G>,
  opts: Options.Options<A>,
  toPatch: (o: A) => Effect.Effect<PatchOf<G>, CliError>,
  wanted: string
) =>
  Command.make("update", { ...common, name: nameArg(k), ifMatch, fields: opts }, (c) =>
    Effect.gen(function*() {
      const patch = yield* toPatch(c.fields)
      if (Object.keys(patch as object).length === 0) {
        return yield* new CliError({ message: `nothing to change: give ${wanted}`, exitCode: 2 })
      }
      yield* withClient(c, (client) =>
        Effect.flatMap(named(client, k.group).update(c.name, patch, Option.getOrUndefined(c.ifMatch)), (v) =>
          output(c, v, () => `${k.noun} ${c.name} is at revision ${v.revision}`)))
    })).pipe(Command.withDescription(`Change a ${k.noun}: a new revision (the old one stays).`))

/** Some fields of a patch: only the options given. */
const given = (o: Record<string, Option.Option<unknown>>, rename: Record<string, string>) =>
  Object.fromEntries(Object.entries(o).flatMap(([k, v]) => (Option.isSome(v) ? [[rename[k] ?? k, v.value]] : [])))

const created = <G extends NamedGroup>(k: Kind<G>, c: Common) => (v: ViewOf<G>) =>
  output(c, v, () => `created ${k.noun} ${v.name} (revision ${v.revision})`)

// ---- repositories ---------------------------------------------------------------------------------

const description = Options.text("description").pipe(Options.withDescription("Free text."), Options.optional)

/** `--retain N` (keep the newest N versions) or `--retain all`. */
const retain = Options.text("retain").pipe(
  Options.withDescription(
    "Keep the newest N versions (N >= 1), or `all` (the default). Older ones are released (gone at once, reclaimed by " +
      "`cairn gc`) unless a distribution serves them or queued work uses them; they go when that lets go."
  ),
  Options.mapEffect((raw): Effect.Effect<number | null, ValidationError.ValidationError> => {
    if (raw === "all") return Effect.succeed(null)
    const n = /^\d+$/.test(raw) ? Number(raw) : NaN
    return Number.isSafeInteger(n) && n >= 1
      ? Effect.succeed(n)
      : Effect.fail(ValidationError.invalidValue(HelpDoc.p(`--retain must be a whole number >= 1 or "all", not ${JSON.stringify(raw)}`)))
  }),
  Options.optional
)

/** A repository's or remote's content type, fixed at creation. */
const contentType = Options.text("type").pipe(
  Options.withPseudoName("TYPE"),
  Options.withDescription("The content type, fixed at creation: file (the default) or python."),
  Options.optional
)

const repoCreate = Command.make("create", { ...common, name: nameArg(repoKind), type: contentType, description, retain }, (c) =>
  withClient(c, (client) =>
    Effect.flatMap(
      named(client, "repositories").create({
        name: c.name,
        ...(Option.isSome(c.type) ? { type: c.type.value } : {}),
        ...(Option.isSome(c.description) ? { description: c.description.value } : {}),
        ...(Option.isSome(c.retain) ? { retain_versions: c.retain.value as number | null } : {})
      }),
      created(repoKind, c)
    ))).pipe(Command.withDescription("Create a repository (its empty version 0 exists at once)."))

const versionArg = Args.integer({ name: "version" }).pipe(Args.withDescription("The version number."))

const versionList = (vs: ReadonlyArray<{ number: number; content_count: number; created_at: string; held_by: ReadonlyArray<string> }>) =>
  table([
    ["version", "files", "created_at", "held by"],
    ...vs.map((v) => [String(v.number), String(v.content_count), v.created_at, v.held_by.join(", ")])
  ])

const versionShow = Command.make("show", { ...common, name: nameArg(repoKind), version: versionArg }, (c) =>
  withClient(c, (client) =>
    Effect.flatMap(client.call((api) => api.repositories.version({ path: { name: c.name, number: c.version } })), (v) =>
      output(c, v, () => showOne(v))))
).pipe(Command.withDescription("Show one version of a repository (what holds it; not found once it is released)."))

const versionDelete = Command.make("delete", { ...common, wait, name: nameArg(repoKind), version: versionArg }, (c) =>
  withClient(c, (client) =>
    Effect.gen(function*() {
      const submitted = yield* client.call((api) => api.repositories.deleteVersion({ path: { name: c.name, number: c.version } }))
      if (!c.wait) {
        return yield* output(c, submitted, () => `submitted graph ${submitted.graph}: repository.prune task ${submitted.task}`)
      }
      if (!c.json) yield* Console.log(`submitted graph ${submitted.graph}`)
      yield* followReporting(client, c, submitted.graph, submitted.task)
    })
  )).pipe(Command.withDescription(
    "Release a version of a repository (a repository.prune task, ordered with its syncs). Refused (in_use) while a " +
      "distribution serves it; the latest version, or one queued work uses, is reported held and goes when that lets go."
  ))

const versions = Command.make("versions", { ...common, name: nameArg(repoKind).pipe(Args.optional) }, (c) =>
  withClient(c, (client) =>
    Effect.gen(function*() {
      if (Option.isNone(c.name)) {
        return yield* new CliError({ message: "give a repository: cairn repo versions <name> (or show|delete <name> <version>)", exitCode: 2 })
      }
      const name = c.name.value
      const vs = yield* client.call((api) => api.repositories.versions({ path: { name } }))
      yield* output(c, vs, () => versionList(vs))
    })
  )).pipe(
    Command.withDescription("List a repository's versions, newest first, with what holds each (released ones are gone); show or delete one."),
    Command.withSubcommands([versionShow, versionDelete])
  )

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


/**
 * A version's units as a table: the fields their content type shows (a file's relative_path; a
 * Python distribution's name, version and filename), then size and digest.
 */
const contentTable = (items: ReadonlyArray<{ readonly [field: string]: unknown; readonly size: number; readonly sha256: string }>) => {
  const core = new Set(["id", "sha256", "size", "artifact"])
  const fields = Object.keys(items[0]!).filter((k) => !core.has(k))
  return table([[...fields, "size", "sha256"], ...items.map((i) => [...fields.map((f) => String(i[f] ?? "")), String(i.size), i.sha256])])
}

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
            : contentTable(items))
      })
    )
).pipe(Command.withDescription("List the files of a repository version."))

const repoCommands = group("repo", "Repositories: create, show, list, update, delete, revisions, versions, content.", [
  repoCreate,
  ...sharedCommands(repoKind),
  update(repoKind, Options.all({ description, retain }), (o) => Effect.succeed(given(o, { retain: "retain_versions" })), "--description or --retain"),
  versions,
  content
])

// ---- remotes --------------------------------------------------------------------------------------

const policy = Options.choice("policy", ["immediate", "on_demand"]).pipe(
  Options.withDescription("immediate: download at sync; on_demand: record the files, fetch each on its first request."),
  Options.optional
)
const concurrency = Options.integer("download-concurrency").pipe(Options.withDescription("Downloads at once (1..64)."), Options.optional)
const manifestUrl = Args.text({ name: "manifest-url" }).pipe(
  Args.withDescription("The address of the remote's PULP_MANIFEST (a file remote), or the root of a simple index ending in / (a python remote).")
)
/** A python remote's selection: requirements, each a project name with an optional PEP 440 specifier. */
const requirements = (name: "include" | "exclude", what: string) =>
  Options.text(name).pipe(
    Options.withPseudoName("REQUIREMENT"),
    Options.repeated,
    Options.withDescription(`python: ${what} ("attrs", "attrs>=23", "attrs==23.1.0"); repeat for more.`)
  )
const includes = requirements("include", "sync only the files of these projects and versions (default: the whole index)")
const excludes = requirements("exclude", "never sync the files of these projects and versions")

const remoteCreate = Command.make(
  "create",
  {
    ...common,
    name: nameArg(remoteKind),
    manifestUrl,
    type: contentType,
    includes,
    excludes,
    policy,
    concurrency,
    settings: Options.all(remoteSettingsOptions)
  },
  (c) =>
    Effect.gen(function*() {
      const settings = yield* remoteSettings(c.settings)
      yield* withClient(c, (client) =>
        Effect.flatMap(
          named(client, "remotes").create({
            name: c.name,
            url: c.manifestUrl,
            ...(Option.isSome(c.type) ? { type: c.type.value } : {}),
            ...(c.includes.length > 0 ? { includes: c.includes } : {}),
            ...(c.excludes.length > 0 ? { excludes: c.excludes } : {}),
            ...(Option.isSome(c.policy) ? { policy: c.policy.value } : {}),
            ...(Option.isSome(c.concurrency) ? { download_concurrency: c.concurrency.value } : {}),
            ...settings
          }),
          created(remoteKind, c)
        ))
    })
).pipe(Command.withDescription("Create a remote: the PULP_MANIFEST of a file repository, or the simple index of a python one, to sync from, and how to reach it."))

// --manifest-url, not --url: --url names the cairn server.
const newManifestUrl = Options.text("manifest-url").pipe(Options.withDescription("The new PULP_MANIFEST address."), Options.optional)

const remoteCommands = group("remote", "Remotes: create, show, list, update, delete, revisions.", [
  remoteCreate,
  // show: the certificates as their subjects, not their PEM text.
  ...sharedCommands(remoteKind, remoteShown),
  update(
    remoteKind,
    Options.all({ "manifest-url": newManifestUrl, policy, "download-concurrency": concurrency, settings: Options.all(remoteSettingsOptions), clear: clearOption }),
    ({ settings, clear, ...o }) =>
      Effect.map(remoteSettings(settings, clear), (fields) => ({
        ...given(o, { "manifest-url": "url", "download-concurrency": "download_concurrency" }),
        ...fields
      })),
    "an option to change (see cairn remote update --help)"
  )
])

// ---- distributions --------------------------------------------------------------------------------

const basePath = Options.text("base-path").pipe(Options.withDescription("Where it is served: /content/<base-path>/."))
const publication = Options.text("publication").pipe(Options.withDescription("The publication future to serve."), Options.optional)

// Guard tokens come from a file, never from the command line (where `ps` and shell history see them).
const guardTokenFile = Options.text("guard-token-file").pipe(
  Options.withDescription("Guard the content with the tokens in this file (one per line; - for stdin): a request needs one as a bearer token or basic password."),
  Options.optional
)
const guardSigned = Options.choice("guard", ["signed"]).pipe(
  Options.withDescription("signed: the content needs URLs made by `cairn dist sign` (given again: a new key, older URLs stop working)."),
  Options.optional
)
const noGuard = Options.boolean("no-guard").pipe(
  Options.withDescription("Remove the guard: anyone may read the content."),
  Options.map((on) => (on ? Option.some(null) : Option.none()))
)

/** The tokens of a guard token file: one per line, blank lines and `#` comments skipped. */
const readGuardTokens = (file: string) =>
  Effect.gen(function*() {
    const name = file === "-" ? "stdin" : file
    const text = yield* Effect.try({
      // fd 0: stdin, whether a pipe or a file.
      try: () => fs.readFileSync(file === "-" ? 0 : file, "utf8"),
      catch: (e) => new CliError({ message: `cannot read ${name}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}` })
    })
    const tokens: Array<string> = []
    for (const [i, raw] of text.split(/\r?\n/).entries()) {
      const line = raw.trim()
      if (line === "" || line.startsWith("#")) continue
      // Name the line, never the token.
      if (!GUARD_TOKEN.test(line)) return yield* new CliError({ message: `${name} line ${i + 1}: a guard token is 1 to 1024 visible ASCII characters without spaces` })
      tokens.push(line)
    }
    if (tokens.length === 0 || tokens.length > MAX_GUARD_TOKENS) {
      return yield* new CliError({ message: `${name} must hold 1 to ${MAX_GUARD_TOKENS} tokens, one per line; it holds ${tokens.length}` })
    }
    return tokens
  })

/** The `guard` field the options ask for: absent (undefined), removed (null), tokens or signed. */
const guardOf = (o: { readonly tokenFile: Option.Option<string>; readonly signed: Option.Option<string>; readonly none?: Option.Option<null> }) =>
  Effect.gen(function*() {
    const given = [o.tokenFile, o.signed, o.none ?? Option.none()].filter(Option.isSome).length
    if (given > 1) {
      return yield* new CliError({ message: "give only one of --guard-token-file, --guard signed and --no-guard", exitCode: 2 })
    }
    if (Option.isSome(o.tokenFile)) return { guard: { type: "token" as const, tokens: yield* readGuardTokens(o.tokenFile.value) } }
    if (Option.isSome(o.signed)) return { guard: { type: "signed" as const } }
    if (o.none !== undefined && Option.isSome(o.none)) return { guard: null }
    return {}
  })

const distCreate = Command.make("create", { ...common, name: nameArg(distKind), basePath, publication, guardTokenFile, guardSigned }, (c) =>
  withClient(c, (client) =>
    Effect.gen(function*() {
      const guard = yield* guardOf({ tokenFile: c.guardTokenFile, signed: c.guardSigned })
      const v = yield* named(client, "distributions").create({
        name: c.name,
        base_path: c.basePath,
        ...(Option.isSome(c.publication) ? { publication: c.publication.value } : {}),
        ...guard
      })
      yield* created(distKind, c)(v)
    }))).pipe(Command.withDescription("Create a distribution: a base path under /content/, open to anyone unless guarded."))

const distUpdate = update(
  distKind,
  Options.all({ "base-path": basePath.pipe(Options.optional), publication, "guard-token-file": guardTokenFile, guard: guardSigned, "no-guard": noGuard }),
  (o) =>
    Effect.map(
      guardOf({ tokenFile: o["guard-token-file"], signed: o.guard, none: o["no-guard"] }),
      (guard) => ({ ...given({ "base-path": o["base-path"], publication: o.publication }, { "base-path": "base_path" }), ...guard })
    ),
  "--base-path or --publication or --guard-token-file or --guard or --no-guard"
)

const distSign = Command.make(
  "sign",
  {
    ...common,
    name: nameArg(distKind),
    path: Args.text({ name: "path" }).pipe(Args.withDescription("The file's relative path in the distribution, like dir/file.txt.")),
    expires: Options.text("expires").pipe(
      Options.withDescription("How long the URL works: 90s, 30m, 1h, 7d (default 1h; at most a year)."),
      Options.withDefault("1h")
    )
  },
  (c) =>
    withClient(c, (client) =>
      Effect.gen(function*() {
        const seconds = yield* parseDuration(c.expires, "--expires")
        if (!Number.isInteger(seconds) || seconds < 1) {
          return yield* new CliError({ message: "--expires must be a whole number of seconds, at least 1s", exitCode: 2 })
        }
        const signed = yield* client.call((api) => api.distributions.sign({ path: { name: c.name }, payload: { path: c.path, expires_in_seconds: seconds } }))
        // On the address this client uses (the server only knows the Host header it was sent).
        const answer = { ...signed, url: client.url + signed.path }
        yield* output(c, answer, () => answer.url)
      })
    )
).pipe(Command.withDescription("Print a signed URL for one file of a distribution guarded with --guard signed."))

const distCommands = group("dist", "Distributions: create, show, list, update, delete, revisions, sign.", [
  distCreate,
  ...sharedCommands(distKind),
  distUpdate,
  distSign
])

export const namedCommands = [repoCommands, remoteCommands, distCommands] as const
