/**
 * Content-type plugins: the one interface through which a content type (files, Python packages,
 * ...) joins the core. DESIGN.md "Content-type plugins" explains the seam with the file plugin
 * (src/plugins/file/) as the worked example.
 *
 * The core stores, versions, publishes and serves; it knows of a content unit only what every type
 * has: `type`, a path (`relative_path`: what the type names a unit by: a file's relative path, a
 * Python distribution's file name), the digest and size of its bytes, and the repository key that
 * the plugin computes when the unit is recorded. A plugin says what a unit is (its repository key,
 * and any detail it keeps in its own tables), which remote fields it takes, its task kinds (sync,
 * publish), what `repository.modify` accepts for it, where a publication serves each unit and which
 * files it generates (manifests, index pages), and how a version's content is listed.
 *
 * The plugins are listed in one place, src/plugins/index.ts, which the core reads (registry.ts);
 * adding a type is a folder under src/plugins/ and a line there. A plugin's tables live in its own
 * `schema.ts` (drizzle.config.ts reads every src/plugins/<type>/schema.ts), its functions and
 * triggers one file each in its own `sql/` folder (found by `npm run db:functions` like the core's),
 * and it never replaces the core's SQL nor another plugin's: where the core has hooks (the engine's
 * settle and submit hooks, the content store's held-params registry) a plugin registers rows.
 */
import type { Effect, Schema } from "effect"
import type { Db, DbError, Tx } from "../db/client.js"
import type { TaskFailure } from "../engine/errors.js"
import type { TaskKind } from "../engine/kind.js"
import type { ContentServices } from "./services.js"

/**
 * What the core records of every unit. Two units of one type with the same path, digest and size
 * are the same unit, in every repository (the natural key: `(type, relative_path, sha256, size)`;
 * the path is whatever the type names a unit by, so it is part of the key: a file's relative path,
 * a Python distribution's file name).
 */
export interface UnitSpec {
  readonly relative_path: string
  /** Lowercase hex. */
  readonly sha256: string
  readonly size: number
}

/** A unit as recorded: its id, and its artifact (null while an on-demand unit was never fetched). */
export interface StoredUnit extends UnitSpec {
  readonly id: string
  readonly artifact: string | null
}

/** A file a publication generates (a manifest, an index page), stored as an artifact at publish time. */
export interface GeneratedFile {
  /**
   * Where the publication serves it: a relative path, or one ending in `/` for a directory's page
   * (`simple/`, `simple/attrs/`), which is what a request for that path with its trailing slash gets.
   */
  readonly relative_path: string
  /**
   * Its `content-type`. Several files may share a path with different media types (PEP 691's HTML
   * and JSON pages): the content app picks one by the request's `accept` (q-values; the first of
   * them in `generate`'s order when nothing is preferred) and answers `vary: accept`.
   */
  readonly media_type: string
  readonly bytes: Uint8Array
}

/** A unit `repository.modify` adds from an uploaded artifact (an `add` entry that is not a content id). */
export interface UploadedUnit<D = unknown> {
  readonly unit: UnitSpec
  /** The artifact holding its bytes (the upload's). */
  readonly artifact: string
  /** What the plugin keeps of it in its own tables (`unit.record`). */
  readonly detail: D
}

/** A plugin's type and unit: what recording units needs (src/content/content-units.ts `ensureUnits`). */
export interface UnitType<D = any> {
  /** `"file"`, `"python"`: the `type` of its repositories, remotes and units. */
  readonly type: string

  readonly unit: {
    /**
     * Pulp's repo_key_fields: two units with the same key cannot both be in one repository version
     * (an added unit replaces the base's unit with its key). Computed once, when the unit is recorded
     * (`content_units.repo_key`), so the core cuts versions by it without knowing the type.
     * file: the relative path; python: the file name.
     */
    readonly repoKey: (unit: UnitSpec) => string
    /** What the key is, for messages: "relative path", "file name". */
    readonly repoKeyName: string
    /**
     * In the transaction that records units (sync, modify): write the plugin's detail rows for the
     * units just ensured (ids are the core's; a unit may already have its rows: insert idempotently).
     * Absent when the plugin keeps nothing beyond the core's columns (file).
     */
    readonly record?: (tx: Tx, units: ReadonlyArray<{ readonly id: string; readonly detail: D }>) => Effect.Effect<void, DbError>
  }
}

/**
 * What the API's definition reads of a plugin, in a module of its own (`src/plugins/<type>/declaration.ts`,
 * listed in src/plugins/declarations.ts) that imports no server code: the typed client imports that
 * definition, and must not load the plugins' syncs and downloader with it. The plugin spreads its
 * declaration into its definition.
 */
export interface PluginDeclaration {
  readonly type: string
  readonly remote: {
    /**
     * The plugin's own remote fields, beside the generic ones (url, policy, download_concurrency,
     * proxy, TLS, auth, timeouts, retries, rate limit: the core's). Each must be optional (the API
     * takes one body for every type); `check` says what a remote of this type needs. Stored in
     * `remote_revisions.type_fields` (jsonb) and shown by GET as given.
     */
    readonly fields: Schema.Struct.Fields
    /** Problems of a remote's plugin fields (sentences for the 400), given the decoded body's. */
    readonly check?: (fields: Readonly<Record<string, unknown>>) => ReadonlyArray<string>
    /** What `url` addresses, for the API's description of it: "the address of a PULP_MANIFEST", "the root of a simple index". */
    readonly urlMeans: string
  }

  readonly content: {
    /**
     * How `GET .../versions/{n}/content` shows a unit of this type, beside `id`, `sha256`, `size` and
     * `artifact` (the core's): file: `relative_path`; python: `name`, `version`, `filename`.
     */
    readonly view: Schema.Struct.Fields
  }
}

export interface ContentPlugin<D = any> extends UnitType<D>, PluginDeclaration {

  /**
   * Its own task kinds, registered with the core's: at least `<type>.sync` (params `{ repository,
   * remote, mirror? }`, output `version`; the CLI's `cairn sync` picks it by the remote's type). Its
   * `<type>.publish` is the core's (publish.ts), made from `publication` below.
   */
  readonly kinds: ReadonlyArray<TaskKind<any, ContentServices>>

  readonly modify: {
    /**
     * What `repository.modify`'s `add` takes for this type besides content ids: an uploaded artifact
     * and what names it (file: `{ relative_path, artifact }`; python: `{ filename, artifact }`).
     * Checked at submission against the repository's type (a mismatch is a 400).
     */
    readonly add: Schema.Schema<any, any, never>
    /**
     * In the handler, before the commit: turn the decoded `add` objects, with their artifacts' digest
     * and size, into units (reading the bytes if the type needs to: a wheel's metadata). A bad entry
     * fails the task (`invalid_params`), and nothing is kept.
     */
    readonly resolve: (
      entries: ReadonlyArray<any>,
      artifacts: ReadonlyMap<string, { readonly sha256: string; readonly size: number }>
    ) => Effect.Effect<ReadonlyArray<UploadedUnit<D>>, TaskFailure | DbError, ContentServices>
  }

  readonly publication: {
    /** Where a publication serves a unit (file: its relative path; python: under its project's page's link). */
    readonly servedPath: (unit: UnitSpec) => string
    /**
     * The files a publication of these units generates (stored as artifacts by the core's publish,
     * recorded in `publication_files`): file: PULP_MANIFEST; python: the simple index pages.
     */
    readonly generate: (units: ReadonlyArray<StoredUnit>) => Effect.Effect<ReadonlyArray<GeneratedFile>, TaskFailure | DbError, Db>
  }

  readonly content: PluginDeclaration["content"] & {
    /** The view's fields of a page of units (one query for the page, not one per unit). */
    readonly describe: (units: ReadonlyArray<StoredUnit>) => Effect.Effect<ReadonlyArray<Readonly<Record<string, unknown>>>, DbError, Db>
  }
}

/** For a plugin's definition: checks it against the interface and keeps its detail type. */
export const definePlugin = <D>(plugin: ContentPlugin<D>): ContentPlugin<D> => plugin
