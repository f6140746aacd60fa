/**
 * Request and response shapes of the v1 API, as Schemas: they validate requests (unknown fields are
 * rejected, every issue is reported), encode responses, and generate the OpenAPI document.
 */
import { JSONSchema, Schema } from "effect"
import { NodeSpec } from "../engine/submit.js"

/** Reject unknown fields and report every problem, not just the first. */
export const strict = { parseOptions: { onExcessProperty: "error", errors: "all" } } as const

const Timestamp = Schema.String.annotations({ description: "RFC 3339 timestamp, UTC", format: "date-time" })
export const Id = Schema.String.pipe(Schema.pattern(/^[0-9A-HJKMNP-TV-Z]{26}$/)).annotations({
  identifier: "Ulid",
  description: "a ULID (26 characters, Crockford base32)",
  message: () => "must be a ULID (26 characters, Crockford base32)"
})
export const IdPath = Schema.Struct({ id: Id })

export const ErrorInfo = Schema.Struct({
  code: Schema.String,
  message: Schema.String,
  cause_task: Schema.optional(Schema.String),
  cause_future: Schema.optional(Schema.String),
  retrying: Schema.optional(Schema.Boolean)
}).annotations({ identifier: "ErrorInfo" })

// ---- graphs ---------------------------------------------------------------------------------------

/**
 * Node values are checked by the engine (submitGraph), node by node, so that one 400 names every
 * offending node; the document still shows their shape.
 */
/**
 * `nodes` reaches the engine as the client sent it: decoding it as a Record would copy it key by
 * key, and a node named "__proto__" would become the copy's prototype instead of a (refused) node.
 */
const Nodes = Schema.declare(
  (u: unknown): u is { readonly [node: string]: unknown } => typeof u === "object" && u !== null && !Array.isArray(u),
  {
    identifier: "Nodes",
    description: "node name -> node",
    message: () => "nodes must be an object of node name -> node",
    jsonSchema: { type: "object", additionalProperties: JSONSchema.make(NodeSpec) as object }
  }
)

export const GraphSubmission = Schema.Struct({
  label: Schema.optional(Schema.String.pipe(Schema.maxLength(1000))),
  nodes: Nodes
}).annotations({ ...strict, identifier: "GraphSubmission" })

export const SubmittedGraph = Schema.Struct({
  id: Schema.String,
  nodes: Schema.Record({
    key: Schema.String,
    value: Schema.Struct({ task: Schema.String, outputs: Schema.Record({ key: Schema.String, value: Schema.String }) })
  })
}).annotations({ identifier: "SubmittedGraph" })

// ---- tasks ----------------------------------------------------------------------------------------

export const TaskState = Schema.Literal("blocked", "ready", "running", "succeeded", "failed", "canceled")

export const TaskView = Schema.Struct({
  id: Schema.String,
  graph: Schema.String,
  node: Schema.String,
  task: Schema.String,
  state: TaskState,
  params: Schema.Unknown,
  outputs: Schema.Record({ key: Schema.String, value: Schema.String }),
  inputs: Schema.Array(Schema.String).annotations({ description: "every input future id (an addition to the contract)" }),
  resources: Schema.Struct({ exclusive: Schema.Array(Schema.String), shared: Schema.Array(Schema.String) }),
  waiting_on: Schema.Array(Schema.Struct({
    task: Schema.String.annotations({ description: "the task waited for (reason retry: the task itself)" }),
    reason: Schema.Literal("input", "resource", "retry").annotations({
      description: "input: an input future of `task`; resource: `task` is earlier on `key`; " +
        "retry: a ready task waiting for its retry until `retry_at` (an addition to the contract)"
    }),
    key: Schema.optional(Schema.String),
    future: Schema.optional(Schema.String),
    retry_at: Schema.optional(Timestamp)
  })),
  worker: Schema.optional(Schema.String),
  attempts: Schema.Number,
  max_attempts: Schema.Number,
  priority: Schema.Number.annotations({ description: "among ready tasks, higher is claimed first (an addition to the contract)" }),
  retry_backoff_ms: Schema.Number.annotations({ description: "wait before the first retry, doubled per retry (an addition to the contract)" }),
  created_at: Timestamp,
  ready_at: Schema.optional(Timestamp),
  started_at: Schema.optional(Timestamp),
  finished_at: Schema.optional(Timestamp),
  error: Schema.optional(ErrorInfo),
  progress: Schema.optional(Schema.Struct({
    done: Schema.Number,
    total: Schema.optional(Schema.Number),
    unit: Schema.optional(Schema.String)
  }))
}).annotations({ identifier: "Task" })

export const TaskPage = Schema.Struct({
  items: Schema.Array(TaskView),
  next_cursor: Schema.optional(Schema.String)
}).annotations({ identifier: "TaskPage" })

const NumberFromQuery = (min: number, max: number) =>
  Schema.NumberFromString.pipe(Schema.int(), Schema.between(min, max))

export const TaskQuery = Schema.Struct({
  graph: Schema.optional(Id),
  state: Schema.optional(TaskState),
  task: Schema.optional(Schema.String),
  limit: Schema.optional(NumberFromQuery(1, 1000)),
  cursor: Schema.optional(Id)
}).annotations(strict)

// ---- graphs (read) --------------------------------------------------------------------------------

export const GraphView = Schema.Struct({
  id: Schema.String,
  label: Schema.optional(Schema.String),
  state: Schema.Literal("pending", "running", "succeeded", "failed", "canceled"),
  created_at: Timestamp,
  finished_at: Schema.optional(Timestamp),
  nodes: Schema.Record({ key: Schema.String, value: TaskView })
}).annotations({ identifier: "Graph" })

// ---- futures --------------------------------------------------------------------------------------

export const FutureView = Schema.Struct({
  id: Schema.String,
  kind: Schema.String,
  state: Schema.Literal("pending", "resolved", "failed", "canceled"),
  producer: Schema.String,
  created_at: Timestamp,
  settled_at: Schema.optional(Timestamp),
  value: Schema.optional(Schema.Unknown),
  error: Schema.optional(ErrorInfo)
}).annotations({ identifier: "Future" })

export const FutureQuery = Schema.Struct({
  wait: Schema.optional(Schema.NumberFromString.pipe(Schema.between(0, 60))).annotations({
    description: "seconds to long-poll for settlement (0..60)"
  })
}).annotations(strict)

// ---- workers --------------------------------------------------------------------------------------

export const WorkerView = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  host: Schema.String,
  pid: Schema.Number,
  slots: Schema.Number,
  started_at: Timestamp,
  last_heartbeat: Timestamp,
  running: Schema.Array(Schema.String)
}).annotations({ identifier: "Worker" })

// ---- graphs (list, long-poll) ---------------------------------------------------------------------

export const GraphState = Schema.Literal("pending", "running", "succeeded", "failed", "canceled")

const WaitSeconds = Schema.NumberFromString.pipe(Schema.between(0, 60))

export const GraphSummary = Schema.Struct({
  id: Schema.String,
  label: Schema.optional(Schema.String),
  state: GraphState,
  created_at: Timestamp,
  finished_at: Schema.optional(Timestamp),
  tasks: Schema.Number.annotations({ description: "how many tasks the graph has" }),
  counts: Schema.Struct({
    blocked: Schema.Number,
    ready: Schema.Number,
    running: Schema.Number,
    succeeded: Schema.Number,
    failed: Schema.Number,
    canceled: Schema.Number
  }).annotations({ description: "tasks in each state" })
}).annotations({ identifier: "GraphSummary" })

export const GraphPage = Schema.Struct({
  items: Schema.Array(GraphSummary),
  next_cursor: Schema.optional(Schema.String)
}).annotations({ identifier: "GraphPage" })

export const GraphListQuery = Schema.Struct({
  state: Schema.optional(GraphState),
  limit: Schema.optional(NumberFromQuery(1, 1000)),
  cursor: Schema.optional(Id),
  wait: Schema.optional(WaitSeconds).annotations({
    description: "with if-none-match: seconds (0..60) to wait for the page to differ from that etag"
  })
}).annotations(strict)

export const GraphGetQuery = Schema.Struct({
  wait: Schema.optional(WaitSeconds).annotations({
    description: "with if-none-match: seconds (0..60) to wait for the graph to differ from that etag"
  })
}).annotations(strict)

export const IfNoneMatch = Schema.Struct({ "if-none-match": Schema.optional(Schema.String) })
