/**
 * The content store's tables. DESIGN.md ("The content store") explains each; in short:
 *
 * - Named resources are copy-on-write: `resources` gives a repository, remote or distribution its
 *   stable identity, `*_revisions` are immutable snapshots of its fields (each keeps its name), and
 *   `names` is the lookup table (kind, name) -> current revision, changed by compare-and-swap.
 * - `artifacts` are content-addressed blobs (sha256, size), stored once; `content_units` are
 *   (type, relative_path, sha256, size), deduplicated; `content_artifacts` links a unit to its stored
 *   artifact (absent while an on-demand unit has not been fetched yet); `content_sources` says where
 *   an on-demand unit can be fetched from.
 * - Repository versions share membership rows: `repository_content` has one row per (repository,
 *   unit, version added), closed by `removed_in` when a later version removes it. A version that
 *   adds 10 units to a 100,000-unit base writes 10 rows.
 * - `publications` point at a version; `publication_files` are the files each generated (a
 *   PULP_MANIFEST, index pages), stored as artifacts. Units, repositories and remotes have a `type`
 *   (`content_types`: one per content-type plugin, src/content/plugin.ts).
 * - `distribution_paths` holds the base path of every live distribution, with an exclusion
 *   constraint that makes overlapping base paths impossible, even between racing transactions.
 * - Ownership for orphan cleanup: `uploads` (until used or expired), `task_artifacts` (while a task
 *   is unsettled), plus versions and publications through foreign keys.
 * - Holds (DESIGN.md §19 "The lifecycle"): live rows that keep payload rows from being reclaimed,
 *   each a foreign key (or a guard trigger where a range is held) so that PostgreSQL refuses to
 *   delete what is held: `version_keeps` (a repository's retention), `repository_heads` (the
 *   latest version of a repository that can still get versions), `distribution_paths.publication_id`
 *   (what a live distribution serves), `task_holds` (what an unsettled task will use).
 * - `slot_locks`: optimistic named locks (Drydock's slot locks), owned by a task.
 */
import { sql } from "drizzle-orm"
import { bigint, check, doublePrecision, index, integer, jsonb, pgTable, primaryKey, text, timestamp, uniqueIndex } from "drizzle-orm/pg-core"
import { futures, tasks, workers } from "./schema.js"

const ts = (name: string) => timestamp(name, { withTimezone: true, precision: 6, mode: "date" })

export const resources = pgTable("resources", {
  id: text("id").primaryKey(),
  kind: text("kind", { enum: ["repository", "remote", "distribution", "schedule"] }).notNull(),
  createdAt: ts("created_at").notNull().defaultNow()
})

export const names = pgTable(
  "names",
  {
    kind: text("kind", { enum: ["repository", "remote", "distribution", "schedule"] }).notNull(),
    name: text("name").notNull(),
    resourceId: text("resource_id").notNull().references(() => resources.id),
    revisionId: text("revision_id").notNull()
  },
  (t) => [
    primaryKey({ columns: [t.kind, t.name] }),
    uniqueIndex("names_resource").on(t.resourceId),
    // The current revision of a name holds it (src/content/sql/cairn_revision_guard.sql asks by revision).
    uniqueIndex("names_revision").on(t.revisionId)
  ]
)

export const repositoryRevisions = pgTable(
  "repository_revisions",
  {
    id: text("id").primaryKey(),
    repositoryId: text("repository_id").notNull().references(() => resources.id),
    name: text("name").notNull(),
    /** Its content type, fixed at creation (every revision repeats it). */
    type: text("type").notNull().default("file").references(() => contentTypes.type),
    description: text("description"),
    /** Versions the repository keeps: the newest N (>= 1, a check in drizzle/), or all when null. */
    retainVersions: integer("retain_versions"),
    createdAt: ts("created_at").notNull().defaultNow()
  },
  (t) => [index("repository_revisions_repo").on(t.repositoryId, t.id)]
)

export const remoteRevisions = pgTable(
  "remote_revisions",
  {
    id: text("id").primaryKey(),
    remoteId: text("remote_id").notNull().references(() => resources.id),
    name: text("name").notNull(),
    /** Its content type, fixed at creation (every revision repeats it). */
    type: text("type").notNull().default("file").references(() => contentTypes.type),
    url: text("url").notNull(),
    /** The fields its type's plugin adds (src/content/plugin.ts `remote.fields`), as given. */
    typeFields: jsonb("type_fields").notNull().default(sql`'{}'::jsonb`),
    policy: text("policy", { enum: ["immediate", "on_demand"] }).notNull(),
    downloadConcurrency: integer("download_concurrency").notNull(),
    // The network settings (src/content/remote-settings.ts); null: the process's default.
    /** Without its credentials, which are in `secrets`. */
    proxyUrl: text("proxy_url"),
    caCert: text("ca_cert"),
    clientCert: text("client_cert"),
    username: text("username"),
    /** The names of `headers` (their values are secret, in `secrets`), lowercase. */
    headerNames: text("header_names").array().notNull().default(sql`'{}'::text[]`),
    connectTimeoutMs: integer("connect_timeout_ms"),
    totalTimeoutMs: integer("total_timeout_ms"),
    maxRetries: integer("max_retries"),
    /** Requests per second across the cluster (src/content/remote-rate.ts). */
    rateLimit: doublePrecision("rate_limit"),
    /** Which secrets `secrets` holds: "password", "client_key", "proxy_credentials" (headers: `header_names`). */
    secretFields: text("secret_fields").array().notNull().default(sql`'{}'::text[]`),
    /** The secrets, sealed with CAIRN_SECRET_KEY (src/content/secrets.ts), or in the clear without one. */
    secrets: text("secrets"),
    createdAt: ts("created_at").notNull().defaultNow()
  },
  (t) => [index("remote_revisions_remote").on(t.remoteId, t.id)]
)

/**
 * A remote's rate limit across the cluster: the time from which its next requests may start (a
 * token bucket as virtual scheduling, src/content/remote-rate.ts). One row per remote that has
 * made a rate-limited request; mutable, like `names`.
 */
export const remoteRateBuckets = pgTable("remote_rate_buckets", {
  remoteId: text("remote_id").primaryKey(),
  nextAt: ts("next_at").notNull()
})

/**
 * Every reference to a content unit or an artifact (the rows orphan cleanup deletes by the
 * hundred thousand) is `ON DELETE RESTRICT`. It refuses the same deletes as the default (NO ACTION;
 * neither is deferrable here), but checks each deleted row with one query instead of two: NO
 * ACTION first looks whether another row with the same key took the deleted one's place, which no
 * unit or artifact id ever does. Half the per-row foreign-key cost of cleanup's deletes
 * (bench:gc); the refusal's SQLSTATE is 23001 instead of 23503 (src/db/referenced.ts takes both).
 */
const HOLDS = { onDelete: "restrict" } as const

export const artifacts = pgTable("artifacts", {
  id: text("id").primaryKey(),
  sha256: text("sha256").notNull().unique(),
  size: bigint("size", { mode: "number" }).notNull(),
  createdAt: ts("created_at").notNull().defaultNow()
})

/**
 * The content types this database knows: one row per content-type plugin (src/content/plugin.ts),
 * written by the migration that brings the plugin's tables. Repositories, remotes and units name
 * their type by foreign key, so a type no plugin registered cannot be recorded.
 */
export const contentTypes = pgTable("content_types", {
  type: text("type").primaryKey()
})

export const contentUnits = pgTable(
  "content_units",
  {
    id: text("id").primaryKey(),
    type: text("type").notNull().default("file").references(() => contentTypes.type),
    /** What its type names a unit by: a file's relative path, a Python distribution's file name. */
    relativePath: text("relative_path").notNull(),
    sha256: text("sha256").notNull(),
    size: bigint("size", { mode: "number" }).notNull(),
    /**
     * Two units with the same repository key are never in one version (Pulp's repo_key_fields),
     * computed by the type's plugin when the unit is recorded; null when it is the unit's path (file,
     * python), so that the common case costs nothing.
     */
    repoKey: text("repo_key"),
    createdAt: ts("created_at").notNull().defaultNow()
  },
  (t) => [uniqueIndex("content_units_natural").on(t.type, t.relativePath, t.sha256, t.size), index("content_units_sha256").on(t.sha256)]
)

export const contentArtifacts = pgTable(
  "content_artifacts",
  {
    contentId: text("content_id").primaryKey().references(() => contentUnits.id, HOLDS),
    artifactId: text("artifact_id").notNull().references(() => artifacts.id, HOLDS)
  },
  (t) => [index("content_artifacts_artifact").on(t.artifactId)]
)

export const contentSources = pgTable(
  "content_sources",
  {
    contentId: text("content_id").notNull().references(() => contentUnits.id, HOLDS),
    remoteRevisionId: text("remote_revision_id").notNull().references(() => remoteRevisions.id),
    url: text("url").notNull()
  },
  // By revision too: purging an old remote revision checks that no source names it.
  (t) => [primaryKey({ columns: [t.contentId, t.remoteRevisionId] }), index("content_sources_remote_revision").on(t.remoteRevisionId)]
)

export const repositoryVersions = pgTable(
  "repository_versions",
  {
    id: text("id").primaryKey(),
    repositoryId: text("repository_id").notNull().references(() => resources.id),
    number: integer("number").notNull(),
    baseVersionId: text("base_version_id"),
    futureId: text("future_id").references(() => futures.id).unique(),
    contentCount: integer("content_count").notNull(),
    createdAt: ts("created_at").notNull().defaultNow()
  },
  (t) => [uniqueIndex("repository_versions_number").on(t.repositoryId, t.number)]
)

export const repositoryContent = pgTable(
  "repository_content",
  {
    repositoryId: text("repository_id").notNull().references(() => resources.id),
    contentId: text("content_id").notNull().references(() => contentUnits.id, HOLDS),
    addedIn: integer("added_in").notNull(),
    removedIn: integer("removed_in")
  },
  (t) => [
    primaryKey({ columns: [t.repositoryId, t.contentId, t.addedIn] }),
    index("repository_content_content").on(t.contentId)
  ]
)

export const publications = pgTable(
  "publications",
  {
    id: text("id").primaryKey(),
    versionId: text("version_id").notNull().references(() => repositoryVersions.id),
    futureId: text("future_id").references(() => futures.id).unique(),
    createdAt: ts("created_at").notNull().defaultNow()
  },
  (t) => [index("publications_version").on(t.versionId)]
)

/**
 * The files a publication generated (a PULP_MANIFEST, simple index pages), stored as artifacts at
 * publish time: relative path (a directory's page ends in `/`) -> artifact, with the media type it
 * is served as. Several media types at one path are alternatives the content app negotiates by
 * `accept`, the lowest `position` first. Deleted with their publication; the units' files are not
 * here: they are the version's content, at the paths the type's plugin gives them.
 */
export const publicationFiles = pgTable(
  "publication_files",
  {
    publicationId: text("publication_id").notNull().references(() => publications.id, { onDelete: "cascade" }),
    relativePath: text("relative_path").notNull(),
    mediaType: text("media_type").notNull(),
    position: integer("position").notNull(),
    artifactId: text("artifact_id").notNull().references(() => artifacts.id, HOLDS)
  },
  (t) => [primaryKey({ columns: [t.publicationId, t.relativePath, t.mediaType] }), index("publication_files_artifact").on(t.artifactId)]
)

export const distributionRevisions = pgTable(
  "distribution_revisions",
  {
    id: text("id").primaryKey(),
    distributionId: text("distribution_id").notNull().references(() => resources.id),
    name: text("name").notNull(),
    basePath: text("base_path").notNull(),
    /**
     * The publication this revision pointed at, as recorded: history, not a hold (no foreign key),
     * so an old revision never keeps a publication alive. What a live distribution serves is held
     * by `distribution_paths.publication_id`.
     */
    publicationId: text("publication_id"),
    /** That publication's future, as recorded, so that an old revision still names it once the publication is reclaimed. */
    publicationFutureId: text("publication_future_id"),
    /** The `distribution` future of the distribution.set that wrote this revision (null for API writes). */
    futureId: text("future_id").references(() => futures.id).unique(),
    /**
     * Who may read the content (src/content/guards.ts): null (anyone), `{ type: "token", sha256:
     * [hex digests of the tokens] }` or `{ type: "signed", key: "<64 hex digits>" }`. Secrets: never
     * returned by the API.
     */
    guard: jsonb("guard"),
    createdAt: ts("created_at").notNull().defaultNow()
  },
  (t) => [
    index("distribution_revisions_dist").on(t.distributionId, t.id),
    check(
      "distribution_revisions_guard_shape",
      sql`${t.guard} IS NULL
          OR (${t.guard}->>'type' = 'token' AND jsonb_typeof(${t.guard}->'sha256') = 'array' AND ${t.guard}->'sha256' <> '[]'::jsonb)
          OR (${t.guard}->>'type' = 'signed' AND ${t.guard}->>'key' ~ '^[0-9a-f]{64}$')`
    )
  ]
)

export const distributionPaths = pgTable(
  "distribution_paths",
  {
    distributionId: text("distribution_id").primaryKey().references(() => resources.id),
    basePath: text("base_path").notNull(),
    /** The publication the live distribution serves: the hold that keeps it (and what it needs) alive. */
    publicationId: text("publication_id").references(() => publications.id)
    // span (textrange) and its exclusion constraint are added by the hand-written migration drizzle/0004_content_rules.sql.
  },
  (t) => [index("distribution_paths_publication").on(t.publicationId)]
)

/** A repository's retention: one row per version it keeps (all, or the newest `retain_versions`). */
export const versionKeeps = pgTable(
  "version_keeps",
  {
    versionId: text("version_id").primaryKey().references(() => repositoryVersions.id),
    repositoryId: text("repository_id").notNull().references(() => resources.id)
  },
  (t) => [index("version_keeps_repository").on(t.repositoryId)]
)

/**
 * The latest version of each repository that can still get versions: written with version 0,
 * moved by every new version, deleted (by orphans.cleanup) once the repository's name is gone and
 * no unsettled task holds it. New versions are numbered after it and diffed against it.
 */
export const repositoryHeads = pgTable(
  "repository_heads",
  {
    repositoryId: text("repository_id").primaryKey().references(() => resources.id),
    versionId: text("version_id").notNull().references(() => repositoryVersions.id)
  },
  (t) => [index("repository_heads_version").on(t.versionId)]
)

export const uploads = pgTable(
  "uploads",
  {
    id: text("id").primaryKey(),
    artifactId: text("artifact_id").notNull().references(() => artifacts.id, HOLDS),
    expiresAt: ts("expires_at").notNull(),
    createdAt: ts("created_at").notNull().defaultNow()
  },
  (t) => [index("uploads_artifact").on(t.artifactId)]
)

export const taskArtifacts = pgTable(
  "task_artifacts",
  {
    taskId: text("task_id").notNull().references(() => tasks.id),
    artifactId: text("artifact_id").notNull().references(() => artifacts.id, HOLDS)
  },
  (t) => [primaryKey({ columns: [t.taskId, t.artifactId] }), index("task_artifacts_artifact").on(t.artifactId)]
)

/**
 * What an unsettled task will use, held from its submission (or, for an input future still
 * pending then, from the commit that writes the future's payload) until it settles (the content
 * store's settle hook deletes the rows): one target per row (a check in drizzle/), each a foreign
 * key, so that the database refuses to reclaim it meanwhile. src/content/sql/cairn_content_on_submitted.sql
 * writes them.
 */
export const taskHolds = pgTable(
  "task_holds",
  {
    taskId: text("task_id").notNull().references(() => tasks.id),
    /** The repository (its head, and so its latest version) a sync, modify or prune works on. */
    repositoryId: text("repository_id").references(() => repositoryHeads.repositoryId),
    versionId: text("version_id").references(() => repositoryVersions.id),
    publicationId: text("publication_id").references(() => publications.id),
    contentId: text("content_id").references(() => contentUnits.id, HOLDS),
    artifactId: text("artifact_id").references(() => artifacts.id, HOLDS),
    remoteRevisionId: text("remote_revision_id").references(() => remoteRevisions.id)
  },
  (t) => [
    index("task_holds_task").on(t.taskId),
    index("task_holds_repository").on(t.repositoryId).where(sql`repository_id IS NOT NULL`),
    index("task_holds_version").on(t.versionId).where(sql`version_id IS NOT NULL`),
    index("task_holds_publication").on(t.publicationId).where(sql`publication_id IS NOT NULL`),
    index("task_holds_content").on(t.contentId).where(sql`content_id IS NOT NULL`),
    index("task_holds_artifact").on(t.artifactId).where(sql`artifact_id IS NOT NULL`),
    index("task_holds_remote_revision").on(t.remoteRevisionId).where(sql`remote_revision_id IS NOT NULL`)
  ]
)

/**
 * Which params of which task kinds name what a task will use, for the submit hook that holds it
 * until the task settles (src/content/sql/cairn_content_on_submitted.sql): `params.<param>` is a
 * NamedRef of a repository (its head is held) or of a remote (its revision is held). The core's
 * kinds and each plugin's register their rows in the migration that brings them: a plugin adds
 * rows, it never rewrites the hook.
 */
export const contentHeldParams = pgTable(
  "content_held_params",
  {
    kind: text("kind").notNull(),
    param: text("param").notNull(),
    holds: text("holds", { enum: ["repository", "remote_revision"] }).notNull()
  },
  (t) => [primaryKey({ columns: [t.kind, t.param] })]
)

export const slotLocks = pgTable(
  "slot_locks",
  {
    name: text("name").primaryKey(),
    // Released when the owning task settles (src/content/sql/cairn_content_on_settled.sql), or
    // when the worker holding it dies.
    ownerTask: text("owner_task").notNull().references(() => tasks.id),
    ownerWorker: text("owner_worker").references(() => workers.id, { onDelete: "cascade" }),
    acquiredAt: ts("acquired_at").notNull().default(sql`now()`)
  },
  (t) => [index("slot_locks_owner").on(t.ownerTask), index("slot_locks_worker").on(t.ownerWorker)]
)
