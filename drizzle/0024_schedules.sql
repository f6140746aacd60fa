CREATE TABLE "schedule_revisions" (
	"id" text PRIMARY KEY NOT NULL,
	"schedule_id" text NOT NULL,
	"name" text NOT NULL,
	"cron" text NOT NULL,
	"timezone" text NOT NULL,
	"graph" jsonb NOT NULL,
	"enabled" boolean NOT NULL,
	"created_at" timestamp (6) with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "schedule_state" (
	"schedule_id" text PRIMARY KEY NOT NULL,
	"tick" timestamp (6) with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "schedule_ticks" (
	"schedule_id" text NOT NULL,
	"tick" timestamp (6) with time zone NOT NULL,
	"graph_id" text,
	"error" jsonb,
	"claimed_at" timestamp (6) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "schedule_ticks_schedule_id_tick_pk" PRIMARY KEY("schedule_id","tick")
);
--> statement-breakpoint
ALTER TABLE "schedule_revisions" ADD CONSTRAINT "schedule_revisions_schedule_id_resources_id_fk" FOREIGN KEY ("schedule_id") REFERENCES "public"."resources"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "schedule_state" ADD CONSTRAINT "schedule_state_schedule_id_resources_id_fk" FOREIGN KEY ("schedule_id") REFERENCES "public"."resources"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "schedule_ticks" ADD CONSTRAINT "schedule_ticks_schedule_id_resources_id_fk" FOREIGN KEY ("schedule_id") REFERENCES "public"."resources"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "schedule_ticks" ADD CONSTRAINT "schedule_ticks_graph_id_graphs_id_fk" FOREIGN KEY ("graph_id") REFERENCES "public"."graphs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "schedule_revisions_schedule" ON "schedule_revisions" USING btree ("schedule_id","created_at");--> statement-breakpoint
CREATE INDEX "schedule_ticks_graph" ON "schedule_ticks" USING btree ("graph_id");