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
export const RemoteFields = {
  url: Schema.String.pipe(Schema.maxLength(4096)),
  policy: Schema.optional(Schema.Literal("immediate", "on_demand")),
  download_concurrency: Schema.optional(Schema.Int.pipe(Schema.between(1, 64)))
}
export const DistributionFields = {
  base_path: Schema.String.pipe(Schema.maxLength(256)),
  publication: Schema.optional(Schema.NullOr(Schema.String))
}

export const viewOf = <V extends Schema.Struct.Fields>(identifier: string, view: V) =>
  Schema.Struct({ ...revisionBase, ...view }).annotations({ identifier })

export const RepositoryView = viewOf("RepositoryRevision", { description: Schema.NullOr(Schema.String) })
export const RemoteView = viewOf("RemoteRevision", {
  url: Schema.String,
  policy: Schema.Literal("immediate", "on_demand"),
  download_concurrency: Schema.Number
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
  const Patch = Schema.partial(Schema.Struct(fields)).annotations({ ...strict, identifier: `${group}Patch` })
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
