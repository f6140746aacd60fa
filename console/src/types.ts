/**
 * The API's shapes, as the server defines them (types only: nothing of the server is bundled).
 */
import type { Schema } from "effect"
import type { ContentUnitView, DistributionView, RemoteView, RepositoryView, VersionView } from "../../src/api/named-groups.js"
import type { WorkerView } from "../../src/api/schemas.js"
import type { GraphSummary } from "../../src/engine/graph-list.js"

export type { GraphSummary, StateCounts } from "../../src/engine/graph-list.js"
export type { GraphState } from "../../src/engine/views.js"

export interface GraphPage {
  readonly items: ReadonlyArray<GraphSummary>
  readonly next_cursor?: string
}
export type Worker = Schema.Schema.Type<typeof WorkerView>
export type Repository = Schema.Schema.Type<typeof RepositoryView>
export type Remote = Schema.Schema.Type<typeof RemoteView>
export type Distribution = Schema.Schema.Type<typeof DistributionView>
export type Version = Schema.Schema.Type<typeof VersionView>
export type ContentUnit = Schema.Schema.Type<typeof ContentUnitView>
export interface ContentPage {
  readonly items: ReadonlyArray<ContentUnit>
  readonly next?: string
}
