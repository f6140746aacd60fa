/**
 * /api/v1/repositories, /remotes, /distributions: the same copy-on-write operations for each kind
 * of named resource, built by one factory so that they cannot drift apart.
 */
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { type Context, Schema } from "effect"
import { GUARD_TOKEN, MAX_GUARD_TOKENS, MAX_SIGNED_SECONDS } from "../content/guards.js"
import { declarations as plugins } from "../plugins/declarations.js"
import { Authorization } from "./auth.js"
import { strict } from "./schemas.js"

const Name = Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/)).annotations({
  message: () => "name must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
})
export const NamePath = Schema.Struct({ name: Schema.String })
const IfMatch = Schema.Struct({ "if-match": Schema.optional(Schema.String) })

const revisionBase = {
  id: Schema.String.annotations({ description: "the resource's stable id (an addition to the contract)" }),
  name: Schema.String,
  revision: Schema.String,
  created_at: Schema.String
}

const RetainVersions = Schema.NullOr(Schema.Int.pipe(Schema.between(1, 2_147_483_647))).annotations({
  description: "Keep the newest N versions (N >= 1); null keeps every version (the default). When a version is cut, or " +
    "this is lowered, older versions beyond the newest N are released: gone from the version list and reclaimed by the " +
    "next orphans.cleanup, except those still held (served by a live distribution, used by an unsettled task), which " +
    "are released when their last holder lets go. The latest version is always kept."
})

/**
 * A repository's or remote's content type (src/content/plugin.ts): given at creation only (a PATCH
 * cannot change it), the first plugin's ("file") when absent.
 */
const ContentType = Schema.optional(
  Schema.String.pipe(Schema.filter((t) => plugins.some((p) => p.type === t) || `type must be one of ${plugins.map((p) => p.type).join(", ")}`))
    .annotations({ description: `the content type, fixed at creation: ${plugins.map((p) => p.type).join(", ")} (default ${plugins[0]!.type})` })
)
const TypeView = Schema.String.annotations({ description: "the content type, fixed at creation" })

/** The remote fields every content-type plugin adds (each optional; a remote takes only its own type's). */
const pluginRemoteFields: Schema.Struct.Fields = Object.assign({}, ...plugins.map((p) => p.remote.fields))

export const RepositoryFields = {
  description: Schema.optional(Schema.NullOr(Schema.String.pipe(Schema.maxLength(10_000)))),
  retain_versions: Schema.optional(RetainVersions)
}
/**
 * A nullable, optional setting whose error says what is expected and never echoes the value sent
 * (for secrets; the others follow suit), and whose description the OpenAPI document carries.
 */
const setting = <S extends Schema.Schema.AnyNoContext>(s: S, expected: string, description: string) =>
  Schema.optionalWith(
    Schema.NullOr(s).annotations({ message: () => ({ message: expected, override: true }), description }),
    { exact: true }
  )

/** The network settings of a remote (src/content/remote-settings.ts checks them further). */
export const RemoteSettingsFields = {
  proxy_url: setting(
    Schema.String.pipe(Schema.maxLength(4096)),
    "proxy_url must be a URL of at most 4096 characters, or null",
    "HTTP proxy for every request of this remote: http://[user:password@]host:port (https:// too). Its credentials are " +
      "write-only (the view shows the URL without them, and has_proxy_credentials). https upstreams are reached through " +
      "CONNECT, http ones are forwarded."
  ),
  ca_cert: setting(
    Schema.String.pipe(Schema.maxLength(1_000_000)),
    "ca_cert must be PEM text of at most 1000000 characters, or null",
    "PEM certificates trusted for the remote's TLS connections (upstream and https proxy) instead of the system's roots."
  ),
  client_cert: setting(
    Schema.String.pipe(Schema.maxLength(100_000)),
    "client_cert must be PEM text of at most 100000 characters, or null",
    "PEM client certificate (chain, the client's own first) presented to the upstream; needs client_key."
  ),
  client_key: setting(
    Schema.String.pipe(Schema.maxLength(100_000)),
    "client_key must be PEM text of at most 100000 characters, or null",
    "PEM private key of client_cert, unencrypted. Write-only: never returned (has_client_key says whether one is set)."
  ),
  username: setting(
    Schema.String.pipe(Schema.maxLength(1024)),
    "username must be a string of at most 1024 characters, or null",
    "Basic auth user name, sent to the remote URL's origin only (not to redirect targets elsewhere)."
  ),
  password: setting(
    Schema.String.pipe(Schema.maxLength(4096)),
    "password must be a string of at most 4096 characters, or null",
    "Basic auth password (needs username). Write-only: never returned (has_password says whether one is set)."
  ),
  headers: setting(
    Schema.Record({ key: Schema.String, value: Schema.String }),
    "headers must be an object of header name -> string value, or null",
    "Extra request headers, name -> value, sent to the remote URL's origin only. The values are write-only (the view " +
      "lists header_names); a PATCH with headers replaces all of them. Headers cairn sets itself (host, accept-encoding, " +
      "range, proxy-authorization, connection headers) cannot be given."
  ),
  connect_timeout_ms: setting(
    Schema.Int.pipe(Schema.between(1, 3_600_000)),
    "connect_timeout_ms must be a whole number of milliseconds from 1 to 3600000, or null",
    "Time to open a connection (TCP, proxy CONNECT, TLS). Default: CAIRN_DOWNLOAD_TIMEOUT_MS."
  ),
  total_timeout_ms: setting(
    Schema.Int.pipe(Schema.between(1, 7 * 86_400_000)),
    `total_timeout_ms must be a whole number of milliseconds from 1 to ${7 * 86_400_000}, or null`,
    "Longest time for one request from sending it to its last byte (each attempt). Default: none (the idle timeout " +
      "CAIRN_DOWNLOAD_TIMEOUT_MS still applies to the headers and between bytes)."
  ),
  max_retries: setting(
    Schema.Int.pipe(Schema.between(0, 20)),
    "max_retries must be a whole number from 0 to 20, or null",
    "Retries of a request that failed in a way worth retrying (5xx, 429, network, timeout). Default: CAIRN_DOWNLOAD_RETRIES."
  ),
  rate_limit: setting(
    Schema.Number.pipe(Schema.greaterThan(0), Schema.lessThanOrEqualTo(100_000)),
    "rate_limit must be a number of requests per second above 0 and at most 100000, or null",
    "Requests per second to this remote across the whole cluster (every attempt and redirect counts). Default: none."
  )
}

export const RemoteFields = {
  ...pluginRemoteFields,
  url: Schema.String.pipe(Schema.maxLength(4096)).annotations({
    description: `what the remote syncs from, by type: ${plugins.map((p) => `${p.type}: ${p.remote.urlMeans}`).join("; ")}`,
    // Without it the description would stand in the 400 where the length check's reason belongs.
    message: () => "a URL of at most 4096 characters"
  }),
  policy: Schema.optional(Schema.Literal("immediate", "on_demand")),
  download_concurrency: Schema.optional(Schema.Int.pipe(Schema.between(1, 64))),
  ...RemoteSettingsFields
}
const GuardToken = Schema.String.pipe(Schema.pattern(GUARD_TOKEN))

const GUARD_SHAPE = `guard must be null, { "type": "signed" } or { "type": "token", "tokens": [...] } with 1 to ${MAX_GUARD_TOKENS} ` +
  "tokens of 1 to 1024 visible ASCII characters without spaces (the value given is not repeated: it may hold secrets)"

export const GuardInput = Schema.Union(
  Schema.Struct({
    type: Schema.Literal("token"),
    tokens: Schema.Array(GuardToken).pipe(Schema.minItems(1), Schema.maxItems(MAX_GUARD_TOKENS))
  }).annotations({
    identifier: "TokenGuardInput",
    description: "A content request needs `authorization: Bearer <token>` (or basic auth with the token as the password) " +
      "with one of these tokens; otherwise 401. The tokens are secrets: stored as SHA-256 digests, never returned."
  }),
  Schema.Struct({ type: Schema.Literal("signed") }).annotations({
    identifier: "SignedGuardInput",
    description: "A content request needs `?expires=<unix seconds>&signature=<hex>` made by POST /distributions/{name}/sign; " +
      "otherwise (also when expired, or signed for another path) 403. Each time it is given, a new signing key is " +
      "drawn: giving it again rotates the key and voids every URL signed before."
  })
)

export const GuardView = Schema.Union(
  Schema.Struct({
    type: Schema.Literal("token"),
    token_count: Schema.Number.annotations({ description: "how many distinct tokens open it (the tokens are never shown)" })
  }).annotations({ identifier: "TokenGuard" }),
  Schema.Struct({ type: Schema.Literal("signed") }).annotations({ identifier: "SignedGuard" })
)

export const DistributionFields = {
  base_path: Schema.String.pipe(Schema.maxLength(256)),
  publication: Schema.optional(Schema.NullOr(Schema.String)),
  // One message for any bad guard, and `exact` (no `| undefined` member): Schema's own messages
  // would quote the value given ("Expected null, actual {...}"), tokens included, in the 400 answer.
  guard: Schema.optionalWith(
    Schema.NullOr(GuardInput).annotations({ message: () => ({ message: GUARD_SHAPE, override: true }) }),
    { exact: true }
  ).annotations({
    description: "Who may read the content under the base path: null (default) anyone. A PATCH without `guard` keeps it; " +
      "`null` removes it. Checked by the content app from memory, with no database query."
  })
}

export const viewOf = <V extends Schema.Struct.Fields>(identifier: string, view: V) =>
  Schema.Struct({ ...revisionBase, ...view }).annotations({ identifier })

export const RepositoryView = viewOf("RepositoryRevision", {
  type: TypeView,
  description: Schema.NullOr(Schema.String),
  retain_versions: RetainVersions
})
const shown = <S extends Schema.Schema.AnyNoContext>(s: S, description: string) => s.annotations({ description })

export const RemoteView = viewOf("RemoteRevision", {
  type: TypeView,
  ...pluginRemoteFields,
  url: Schema.String,
  policy: Schema.Literal("immediate", "on_demand"),
  download_concurrency: Schema.Number,
  proxy_url: shown(Schema.NullOr(Schema.String), "the proxy, without its credentials"),
  has_proxy_credentials: shown(Schema.Boolean, "whether proxy_url was given with credentials (never shown)"),
  ca_cert: shown(Schema.NullOr(Schema.String), "PEM certificates trusted instead of the system's roots"),
  client_cert: shown(Schema.NullOr(Schema.String), "PEM client certificate"),
  has_client_key: shown(Schema.Boolean, "whether client_key is set (never shown)"),
  username: shown(Schema.NullOr(Schema.String), "basic auth user name"),
  has_password: shown(Schema.Boolean, "whether password is set (never shown)"),
  header_names: shown(Schema.Array(Schema.String), "names of the extra headers, lowercase (their values are never shown)"),
  connect_timeout_ms: shown(Schema.NullOr(Schema.Number), "null: CAIRN_DOWNLOAD_TIMEOUT_MS"),
  total_timeout_ms: shown(Schema.NullOr(Schema.Number), "null: no limit"),
  max_retries: shown(Schema.NullOr(Schema.Number), "null: CAIRN_DOWNLOAD_RETRIES"),
  rate_limit: shown(Schema.NullOr(Schema.Number), "requests per second across the cluster; null: none")
})
export const DistributionView = viewOf("DistributionRevision", {
  base_path: Schema.String,
  publication: Schema.NullOr(Schema.String).annotations({
    description: "The publication future this revision serves (or served). The current revision's publication is held by " +
      "the distribution; an old revision only records it."
  }),
  publication_released: Schema.Boolean.annotations({
    description: "True on an old revision whose publication has since been released (nothing served or used it any more) " +
      "and reclaimed: `publication` is then the future id it had, kept as history; the publication itself no longer " +
      "exists. Always false on the current revision."
  }),
  guard: Schema.NullOr(GuardView).annotations({ description: "that a guard is set, and which kind (never its secrets)" })
})

export const SignRequest = Schema.Struct({
  path: Schema.String.pipe(Schema.maxLength(1024)).annotations({
    description: "the file's relative path inside the distribution (like dir/file.txt), unencoded"
  }),
  expires_in_seconds: Schema.Int.pipe(Schema.between(1, MAX_SIGNED_SECONDS)).annotations({
    description: `how long the URL opens the file: 1 to ${MAX_SIGNED_SECONDS} seconds (a year)`
  })
}).annotations({ ...strict, identifier: "SignRequest" })

export const SignedUrl = Schema.Struct({
  url: Schema.String.annotations({ description: "the URL, on the address the request was sent to" }),
  path: Schema.String.annotations({ description: "the same URL without its origin, for clients that reach the content app elsewhere" }),
  expires: Schema.Number.annotations({ description: "unix seconds: the URL is refused (403) from then on" })
}).annotations({ identifier: "SignedUrl" })

/** An OpenAPI description per operation of a named group (optional). */
export type NamedGroupDocs = Partial<Record<"create" | "list" | "get" | "revisions" | "update" | "delete", string>>

export const makeGroup = <G extends string, P extends string, F extends Schema.Struct.Fields, V extends Schema.Schema.Any>(
  group: G,
  plural: P,
  fields: F,
  View: V,
  docs: NamedGroupDocs = {},
  /** Fields given at creation only (a PATCH refuses them). */
  createOnly: Schema.Struct.Fields = {}
) => {
  const Create = Schema.Struct({ name: Name, ...createOnly, ...fields }).annotations({ ...strict, identifier: `${group}Create` })
  // exact: a JSON body has no `undefined`, and an error must not list it as an alternative (nor
  // quote a refused value, secrets included: see `guard`).
  const Patch = Schema.partialWith(Schema.Struct(fields), { exact: true }).annotations({ ...strict, identifier: `${group}Patch` })
  const doc = <E extends { annotate<I, S>(tag: Context.Tag<I, S>, value: S): E }>(op: keyof NamedGroupDocs, e: E): E =>
    docs[op] === undefined ? e : e.annotate(OpenApi.Description, docs[op]!)
  return HttpApiGroup.make(group)
    .add(doc("create", HttpApiEndpoint.post("create", `/${plural}`).setPayload(Create).addSuccess(View, { status: 201 })))
    .add(doc("list", HttpApiEndpoint.get("list", `/${plural}`).addSuccess(Schema.Array(View))))
    .add(doc("get", HttpApiEndpoint.get("get", `/${plural}/:name`).setPath(NamePath).addSuccess(View)))
    .add(doc("revisions", HttpApiEndpoint.get("revisions", `/${plural}/:name/revisions`).setPath(NamePath).addSuccess(Schema.Array(View))))
    .add(doc(
      "update",
      HttpApiEndpoint.patch("update", `/${plural}/:name`).setPath(NamePath).setHeaders(IfMatch).setPayload(Patch)
        .addSuccess(View, { status: 201 })
    ))
    .add(doc("delete", HttpApiEndpoint.del("delete", `/${plural}/:name`).setPath(NamePath).addSuccess(HttpApiSchema.NoContent).annotate(
      OpenApi.Description,
      "Frees the name; queued tasks that hold the old revision id still run. " + (deleteEffect[group as string] ?? "")
    )))
    .middleware(Authorization)
}

const deleteEffect: Record<string, string> = {
  repositories: "The repository's versions are released (except those still held: served by a live distribution, used by " +
    "an unsettled task, until their last holder lets go); orphans.cleanup reclaims their rows and bytes.",
  remotes: "Content synced from it keeps its sources until it is reclaimed.",
  distributions: "The publication it served is released unless its repository keeps the version or something else holds it."
}

export const VersionView = Schema.Struct({
  id: Schema.String,
  number: Schema.Number,
  content_count: Schema.Number,
  future: Schema.NullOr(Schema.String).annotations({ description: "the future this version resolved (null for version 0)" }),
  created_at: Schema.String,
  held_by: Schema.Array(Schema.String).annotations({
    description: "What holds this version (never empty: a version nothing holds is released and not shown): " +
      "\"repository (retained)\" (retain_versions keeps it), \"repository (latest version)\", " +
      "\"distribution <name>\" (serves one of its publications), \"task <id>\" (an unsettled task uses it or one of its publications)."
  })
}).annotations({ identifier: "RepositoryVersion" })

export const PruneSubmitted = Schema.Struct({
  graph: Schema.String,
  task: Schema.String.annotations({ description: "the repository.prune task; its `report` output says what was released and what is still held" })
}).annotations({ identifier: "PruneSubmitted" })

export const ContentUnitView = Schema.Struct(
  {
    id: Schema.String,
    sha256: Schema.String,
    size: Schema.Number,
    artifact: Schema.NullOr(Schema.String).annotations({ description: "null while an on-demand unit was never fetched" })
  },
  Schema.Record({ key: Schema.String, value: Schema.Unknown })
).annotations({
  identifier: "ContentUnit",
  description: "A unit of the version, with the fields its content type adds: " +
    plugins.map((p) => `${p.type}: ${Object.keys(p.content.view).join(", ")}`).join("; ")
})

export const ContentPage = Schema.Struct({
  items: Schema.Array(ContentUnitView),
  next: Schema.optional(Schema.String).annotations({ description: "pass as `after` for the next page" })
}).annotations({ identifier: "ContentPage" })

const VersionPath = Schema.Struct({
  name: Schema.String,
  // The database's integer: a larger number names no version (and PostgreSQL would refuse it).
  number: Schema.NumberFromString.pipe(Schema.int(), Schema.between(0, 2_147_483_647))
})
const ContentQuery = Schema.Struct({
  after: Schema.optional(Schema.String),
  limit: Schema.optional(Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 10_000)))
})

export const RepositoriesGroup = makeGroup("repositories", "repositories", RepositoryFields, RepositoryView, {}, { type: ContentType })
  .add(
    HttpApiEndpoint.get("versions", "/repositories/:name/versions").setPath(NamePath).addSuccess(Schema.Array(VersionView))
      .annotate(OpenApi.Description, "The versions something holds, newest first; a released version is gone from here at once.")
  )
  .add(
    HttpApiEndpoint.get("version", "/repositories/:name/versions/:number").setPath(VersionPath).addSuccess(VersionView)
      .annotate(OpenApi.Description, "404 for a version that does not exist or was released.")
  )
  .add(
    HttpApiEndpoint.del("deleteVersion", "/repositories/:name/versions/:number").setPath(VersionPath)
      .addSuccess(PruneSubmitted, { status: 202 })
      .annotate(
        OpenApi.Description,
        "Submits a repository.prune task releasing this version (ordered with the repository's syncs and modifies) and " +
          "answers its graph and task. The task fails with `in_use` if a live distribution serves the version; the latest " +
          "version, and one an unsettled task uses, are reported held instead. 404 for an unknown repository or a version " +
          "that does not exist or was released already."
      )
  )
  .add(
    HttpApiEndpoint.get("content", "/repositories/:name/versions/:number/content").setPath(VersionPath).setUrlParams(ContentQuery)
      .addSuccess(ContentPage).annotate(OpenApi.Description, "404 for a version that does not exist or was released.")
  )
export const RemotesGroup = makeGroup("remotes", "remotes", RemoteFields, RemoteView, {}, { type: ContentType })
export const DistributionsGroup = makeGroup("distributions", "distributions", DistributionFields, DistributionView)
  .add(
    HttpApiEndpoint.post("sign", "/distributions/:name/sign").setPath(NamePath).setPayload(SignRequest).addSuccess(SignedUrl)
      .annotate(OpenApi.Summary, "A signed URL for one file of a distribution with a signed guard")
      .annotate(
        OpenApi.Description,
        "Signs the distribution, the relative path (as the content app decodes it from a URL) and the expiry with the " +
          "distribution's key, using the server's clock. The URL opens that one path until it expires, whatever the " +
          "distribution serves by then; another path, another distribution, a changed expiry or a rotated key: 403. " +
          "Writes nothing. A distribution without a signed guard: 409."
      )
  )
