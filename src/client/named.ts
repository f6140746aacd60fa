/**
 * The copy-on-write operations of repositories, remotes, distributions and schedules behind one
 * interface, as the server builds them from one factory (src/api/named-groups.ts): the CLI and the
 * promise facade treat the kinds alike.
 */
import type { Effect, Schema } from "effect"
import type { DistributionView, RemoteView, RepositoryView } from "../api/named-groups.js"
import type { ScheduleView } from "../api/schedules-group.js"
import type { ApiClient, CairnClientShape } from "./effect.js"
import type { CairnError } from "./errors.js"

export type NamedGroup = "repositories" | "remotes" | "distributions" | "schedules"

type Req<F> = F extends (req: infer R) => unknown ? R : never
export type CreateOf<G extends NamedGroup> = Req<ApiClient[G]["create"]> extends { readonly payload: infer P } ? P : never
export type PatchOf<G extends NamedGroup> = Req<ApiClient[G]["update"]> extends { readonly payload: infer P } ? P : never
/** What every revision has (spelled out so that code generic over the kind can read it). */
export interface RevisionView {
  readonly id: string
  readonly name: string
  readonly revision: string
  readonly created_at: string
}
interface Views {
  readonly repositories: Schema.Schema.Type<typeof RepositoryView>
  readonly remotes: Schema.Schema.Type<typeof RemoteView>
  readonly distributions: Schema.Schema.Type<typeof DistributionView>
  readonly schedules: Schema.Schema.Type<typeof ScheduleView>
}
export type ViewOf<G extends NamedGroup> = RevisionView & Views[G]

export interface NamedOps<G extends NamedGroup> {
  readonly create: (body: CreateOf<G>) => Effect.Effect<ViewOf<G>, CairnError>
  readonly list: () => Effect.Effect<ReadonlyArray<ViewOf<G>>, CairnError>
  readonly get: (name: string) => Effect.Effect<ViewOf<G>, CairnError>
  readonly revisions: (name: string) => Effect.Effect<ReadonlyArray<ViewOf<G>>, CairnError>
  /** A new revision; with `ifMatch`, only if `name` is still at that revision (else code precondition_failed). */
  readonly update: (name: string, patch: PatchOf<G>, ifMatch?: string) => Effect.Effect<ViewOf<G>, CairnError>
  readonly delete: (name: string) => Effect.Effect<void, CairnError>
}

/** The endpoints every named group has, typed loosely: the groups differ only in bodies. */
interface AnyNamedEndpoints {
  create(req: { payload: unknown }): Effect.Effect<unknown, unknown>
  list(): Effect.Effect<ReadonlyArray<unknown>, unknown>
  get(req: { path: { name: string } }): Effect.Effect<unknown, unknown>
  revisions(req: { path: { name: string } }): Effect.Effect<ReadonlyArray<unknown>, unknown>
  update(req: { path: { name: string }; headers: { "if-match"?: string }; payload: unknown }): Effect.Effect<unknown, unknown>
  delete(req: { path: { name: string } }): Effect.Effect<void, unknown>
}

export const named = <G extends NamedGroup>(client: CairnClientShape, group: G): NamedOps<G> => {
  // The one cast: `api[group]` is a union of structurally identical groups that TypeScript
  // cannot call through a type parameter; NamedOps<G> gives the precise types back.
  const call = <A>(f: (g: AnyNamedEndpoints) => Effect.Effect<unknown, unknown>) =>
    client.call((api) => f(api[group] as unknown as AnyNamedEndpoints)) as Effect.Effect<A, CairnError>
  const path = (name: string) => ({ path: { name } })
  return {
    create: (body) => call((g) => g.create({ payload: body })),
    list: () => call((g) => g.list()),
    get: (name) => call((g) => g.get(path(name))),
    revisions: (name) => call((g) => g.revisions(path(name))),
    update: (name, patch, ifMatch) =>
      call((g) => g.update({ ...path(name), headers: ifMatch === undefined ? {} : { "if-match": ifMatch }, payload: patch })),
    delete: (name) => call((g) => g.delete(path(name)))
  }
}
