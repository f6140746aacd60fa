CREATE TABLE "futures" (
	"id" text PRIMARY KEY NOT NULL,
	"kind" text NOT NULL,
	"state" text NOT NULL,
	"producer_task" text NOT NULL,
	"output" text NOT NULL,
	"created_at" timestamp (6) with time zone DEFAULT now() NOT NULL,
	"settled_at" timestamp (6) with time zone,
	"value" jsonb,
	"error" jsonb
);
--> statement-breakpoint
CREATE TABLE "graphs" (
	"id" text PRIMARY KEY NOT NULL,
	"label" text,
	"created_at" timestamp (6) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "task_inputs" (
	"task_id" text NOT NULL,
	"future_id" text NOT NULL,
	CONSTRAINT "task_inputs_task_id_future_id_pk" PRIMARY KEY("task_id","future_id")
);
--> statement-breakpoint
CREATE TABLE "task_keys" (
	"task_id" text NOT NULL,
	"key" text NOT NULL,
	"exclusive" boolean NOT NULL,
	"seq" bigint NOT NULL,
	"free" boolean DEFAULT false NOT NULL,
	CONSTRAINT "task_keys_task_id_key_pk" PRIMARY KEY("task_id","key")
);
--> statement-breakpoint
CREATE TABLE "tasks" (
	"id" text PRIMARY KEY NOT NULL,
	"graph_id" text NOT NULL,
	"node" text NOT NULL,
	"kind" text NOT NULL,
	"seq" bigserial NOT NULL,
	"params" jsonb NOT NULL,
	"state" text NOT NULL,
	"pending_inputs" integer NOT NULL,
	"blocked_keys" integer NOT NULL,
	"exclusive" text[] DEFAULT '{}'::text[] NOT NULL,
	"shared" text[] DEFAULT '{}'::text[] NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"max_attempts" integer DEFAULT 1 NOT NULL,
	"worker_id" text,
	"cancel_requested" boolean DEFAULT false NOT NULL,
	"created_at" timestamp (6) with time zone DEFAULT now() NOT NULL,
	"ready_at" timestamp (6) with time zone,
	"started_at" timestamp (6) with time zone,
	"finished_at" timestamp (6) with time zone,
	"error" jsonb,
	"progress" jsonb
);
--> statement-breakpoint
CREATE TABLE "workers" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"host" text NOT NULL,
	"pid" integer NOT NULL,
	"slots" integer NOT NULL,
	"lock_key" bigserial NOT NULL,
	"backend_pid" integer NOT NULL,
	"started_at" timestamp (6) with time zone DEFAULT now() NOT NULL,
	"last_heartbeat" timestamp (6) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "futures" ADD CONSTRAINT "futures_producer_task_tasks_id_fk" FOREIGN KEY ("producer_task") REFERENCES "public"."tasks"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "task_inputs" ADD CONSTRAINT "task_inputs_task_id_tasks_id_fk" FOREIGN KEY ("task_id") REFERENCES "public"."tasks"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "task_inputs" ADD CONSTRAINT "task_inputs_future_id_futures_id_fk" FOREIGN KEY ("future_id") REFERENCES "public"."futures"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "task_keys" ADD CONSTRAINT "task_keys_task_id_tasks_id_fk" FOREIGN KEY ("task_id") REFERENCES "public"."tasks"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "tasks" ADD CONSTRAINT "tasks_graph_id_graphs_id_fk" FOREIGN KEY ("graph_id") REFERENCES "public"."graphs"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "futures_producer_output" ON "futures" USING btree ("producer_task","output");--> statement-breakpoint
CREATE INDEX "task_inputs_future" ON "task_inputs" USING btree ("future_id");--> statement-breakpoint
CREATE INDEX "task_keys_key_seq" ON "task_keys" USING btree ("key","seq");--> statement-breakpoint
CREATE UNIQUE INDEX "tasks_graph_node" ON "tasks" USING btree ("graph_id","node");--> statement-breakpoint
CREATE INDEX "tasks_kind_id" ON "tasks" USING btree ("kind","id");