/**
 * /api/v1/repositories, /remotes, /distributions: the same copy-on-write operations for each kind
 * of named resource, built by one factory so that they cannot drift apart.
 */
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { type Context, Schema } from "effect"
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

export const RepositoryFields = { description: Schema.optional(Schema.NullOr(Schema.String.pipe(Schema.maxLength(10_000)))) }
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
  url: Schema.String.pipe(Schema.maxLength(4096)),
  policy: Schema.optional(Schema.Literal("immediate", "on_demand")),
  download_concurrency: Schema.optional(Schema.Int.pipe(Schema.between(1, 64))),
  ...RemoteSettingsFields
}
export const DistributionFields = {
  base_path: Schema.String.pipe(Schema.maxLength(256)),
  publication: Schema.optional(Schema.NullOr(Schema.String))
}

export const viewOf = <V extends Schema.Struct.Fields>(identifier: string, view: V) =>
  Schema.Struct({ ...revisionBase, ...view }).annotations({ identifier })

export const RepositoryView = viewOf("RepositoryRevision", { description: Schema.NullOr(Schema.String) })
const shown = <S extends Schema.Schema.AnyNoContext>(s: S, description: string) => s.annotations({ description })

export const RemoteView = viewOf("RemoteRevision", {
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
  publication: Schema.NullOr(Schema.String)
})

/** An OpenAPI description per operation of a named group (optional). */
export type NamedGroupDocs = Partial<Record<"create" | "list" | "get" | "revisions" | "update" | "delete", string>>

export const makeGroup = <G extends string, P extends string, F extends Schema.Struct.Fields, V extends Schema.Schema.Any>(
  group: G,
  plural: P,
  fields: F,
  View: V,
  docs: NamedGroupDocs = {}
) => {
  const Create = Schema.Struct({ name: Name, ...fields }).annotations({ ...strict, identifier: `${group}Create` })
  // exact: a JSON body has no `undefined`, and an error must not list it as an alternative.
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
    .add(doc("delete", HttpApiEndpoint.del("delete", `/${plural}/:name`).setPath(NamePath).addSuccess(HttpApiSchema.NoContent)))
    .middleware(Authorization)
}

export const VersionView = Schema.Struct({
  id: Schema.String,
  number: Schema.Number,
  content_count: Schema.Number,
  future: Schema.NullOr(Schema.String).annotations({ description: "the future this version resolved (null for version 0)" }),
  created_at: Schema.String
}).annotations({ identifier: "RepositoryVersion" })

export const ContentUnitView = Schema.Struct({
  id: Schema.String,
  relative_path: Schema.String,
  sha256: Schema.String,
  size: Schema.Number,
  artifact: Schema.NullOr(Schema.String).annotations({ description: "null while an on-demand unit was never fetched" })
}).annotations({ identifier: "ContentUnit" })

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

export const RepositoriesGroup = makeGroup("repositories", "repositories", RepositoryFields, RepositoryView)
  .add(HttpApiEndpoint.get("versions", "/repositories/:name/versions").setPath(NamePath).addSuccess(Schema.Array(VersionView)))
  .add(
    HttpApiEndpoint.get("content", "/repositories/:name/versions/:number/content").setPath(VersionPath).setUrlParams(ContentQuery)
      .addSuccess(ContentPage)
  )
export const RemotesGroup = makeGroup("remotes", "remotes", RemoteFields, RemoteView)
export const DistributionsGroup = makeGroup("distributions", "distributions", DistributionFields, DistributionView)
