/**
 * The v1 HTTP API as an `HttpApi` definition: the single description from which the server is
 * built, the OpenAPI document is generated, and the typed client (HttpApiClient) is derived.
 */
import { HttpApi, HttpApiEndpoint, HttpApiGroup, OpenApi } from "@effect/platform"
import { Authorization } from "./auth.js"
import { DistributionsGroup, RemotesGroup, RepositoriesGroup } from "./named-groups.js"
import { SchedulesGroup } from "./schedules-group.js"
import { UploadsGroup } from "./uploads-group.js"
import { Schema } from "effect"
import * as E from "./errors.js"
import * as S from "./schemas.js"

const LONG_POLL = (what: string) =>
  `The answer carries an etag (a digest of the body); \`if-none-match\` with the current etag answers 304. With \`wait\` ` +
  `(0..60 seconds) and \`if-none-match\`, the request is held until ${what} differs from that etag (200), or for \`wait\` ` +
  "seconds (304): one open request keeps a view live. Settlements answer at once, other moves (a task claimed, its " +
  "progress) within a second or two. Held requests count towards CAIRN_LONG_POLLS_PER_CLIENT (429 past it)."

export const GraphsGroup = HttpApiGroup.make("graphs")
  .add(
    HttpApiEndpoint.post("submit", "/graphs")
      .setPayload(S.GraphSubmission)
      .addSuccess(S.SubmittedGraph, { status: 201 })
      .annotate(OpenApi.Summary, "Submit a graph of tasks; every output future exists when this answers")
  )
  .add(
    HttpApiEndpoint.get("list", "/graphs").setUrlParams(S.GraphListQuery).setHeaders(S.IfNoneMatch)
      .addSuccess(S.GraphPage).addError(E.TooManyRequestsSchema)
      .annotate(OpenApi.Summary, "Graphs, newest first, with their task counts; cursor-paginated")
      .annotate(OpenApi.Description, LONG_POLL("the page"))
  )
  .add(
    HttpApiEndpoint.get("get", "/graphs/:id").setPath(S.IdPath).setUrlParams(S.GraphGetQuery).setHeaders(S.IfNoneMatch)
      .addSuccess(S.GraphView).addError(E.TooManyRequestsSchema)
      .annotate(OpenApi.Description, LONG_POLL("the graph"))
  )
  .add(
    HttpApiEndpoint.post("cancel", "/graphs/:id/cancel")
      .setPath(S.IdPath)
      .addSuccess(S.GraphView, { status: 202 })
      .annotate(OpenApi.Summary, "Cancel every unsettled task of the graph")
  )
  .middleware(Authorization)

export const TasksGroup = HttpApiGroup.make("tasks")
  .add(HttpApiEndpoint.get("list", "/tasks").setUrlParams(S.TaskQuery).addSuccess(S.TaskPage))
  .add(HttpApiEndpoint.get("get", "/tasks/:id").setPath(S.IdPath).addSuccess(S.TaskView))
  .add(HttpApiEndpoint.post("cancel", "/tasks/:id/cancel").setPath(S.IdPath).addSuccess(S.TaskView, { status: 202 }))
  .middleware(Authorization)

export const FuturesGroup = HttpApiGroup.make("futures")
  .add(
    HttpApiEndpoint.get("get", "/futures/:id")
      .setPath(S.IdPath)
      .setUrlParams(S.FutureQuery)
      .addSuccess(S.FutureView)
      .addError(E.TooManyRequestsSchema)
      .annotate(
        OpenApi.Description,
        "`wait` long-polls until the future settles; `if-none-match` with the etag answers 304 while nothing changed. " +
          "One client (IP address) may hold at most CAIRN_LONG_POLLS_PER_CLIENT long-polls at once (default 1000); " +
          "past that: 429, retry after a moment."
      )
  )
  .middleware(Authorization)

export const WorkersGroup = HttpApiGroup.make("workers")
  .add(HttpApiEndpoint.get("list", "/workers").addSuccess(Schema.Array(S.WorkerView)))
  .middleware(Authorization)

export class CairnApi extends HttpApi.make("cairn")
  .add(GraphsGroup)
  .add(TasksGroup)
  .add(FuturesGroup)
  .add(WorkersGroup)
  .add(RepositoriesGroup)
  .add(RemotesGroup)
  .add(DistributionsGroup)
  .add(SchedulesGroup)
  .add(UploadsGroup)
  .addError(E.BadRequestSchema)
  .addError(E.NotFoundSchema)
  .addError(E.ConflictSchema)
  .addError(E.PreconditionFailedSchema)
  .addError(E.PayloadTooLargeSchema)
  .addError(E.UnsupportedMediaTypeSchema)
  .addError(E.ServiceUnavailableSchema)
  .prefix("/api/v1")
  .annotate(OpenApi.Title, "cairn")
  .annotate(OpenApi.Version, "1")
  .annotate(
    OpenApi.Description,
    "An immutable-resource content store with futures. Request bodies are JSON (content-type application/json; " +
      "another media type: 415) of at most CAIRN_BODY_MAX_BYTES bytes (default 16 MiB; larger: 413), nested at most " +
      "64 levels deep (deeper: 400); uploads are raw bytes with their own limit."
  ) {}
