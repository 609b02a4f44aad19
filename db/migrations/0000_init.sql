CREATE TABLE "activations" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"repo" text NOT NULL,
	"sha" text NOT NULL,
	"previous_sha" text,
	"actor" text NOT NULL,
	"reason" text NOT NULL,
	"activated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "api_tokens" (
	"id" text PRIMARY KEY NOT NULL,
	"token_hash" text NOT NULL,
	"repos" text[] NOT NULL,
	"read_only" boolean DEFAULT false NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone,
	"revoked_at" timestamp with time zone,
	CONSTRAINT "api_tokens_token_hash_unique" UNIQUE("token_hash")
);
--> statement-breakpoint
CREATE TABLE "attempts" (
	"execution_id" text NOT NULL,
	"node_id" text NOT NULL,
	"attempt" integer NOT NULL,
	"handle" text NOT NULL,
	"state" text NOT NULL,
	"error_kind" text,
	"error_reason" text,
	"error_message" text,
	"exit_code" integer,
	"log_ref" text,
	"started_at" timestamp with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp with time zone,
	CONSTRAINT "attempts_execution_id_node_id_attempt_pk" PRIMARY KEY("execution_id","node_id","attempt")
);
--> statement-breakpoint
CREATE TABLE "cache_entries" (
	"key" text PRIMARY KEY NOT NULL,
	"repo" text NOT NULL,
	"task_name" text NOT NULL,
	"task_digest" text NOT NULL,
	"identity" jsonb NOT NULL,
	"outputs" jsonb NOT NULL,
	"source_execution_id" text NOT NULL,
	"source_node_id" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_hit_at" timestamp with time zone,
	"hit_count" integer DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE TABLE "cache_reservations" (
	"key" text PRIMARY KEY NOT NULL,
	"repo" text NOT NULL,
	"owner" text NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "check_runs" (
	"execution_id" text PRIMARY KEY NOT NULL,
	"repo" text NOT NULL,
	"check_run_id" bigint NOT NULL,
	"name" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "deliveries" (
	"id" text PRIMARY KEY NOT NULL,
	"event" text NOT NULL,
	"action" text,
	"payload" jsonb NOT NULL,
	"received_at" timestamp with time zone DEFAULT now() NOT NULL,
	"locked_until" timestamp with time zone,
	"attempts" integer DEFAULT 0 NOT NULL,
	"processed_at" timestamp with time zone,
	"outcome" text
);
--> statement-breakpoint
CREATE TABLE "executions" (
	"id" text PRIMARY KEY NOT NULL,
	"repo" text NOT NULL,
	"sha" text NOT NULL,
	"workflow" text NOT NULL,
	"workflow_digest" text NOT NULL,
	"inputs" jsonb NOT NULL,
	"trigger" jsonb NOT NULL,
	"parent_id" text,
	"mode" text NOT NULL,
	"overwrite_cache" boolean DEFAULT false NOT NULL,
	"state" text NOT NULL,
	"outputs" jsonb,
	"error" jsonb,
	"lease_owner" text,
	"lease_token" bigint DEFAULT 0 NOT NULL,
	"lease_expires_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"started_at" timestamp with time zone,
	"finished_at" timestamp with time zone,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "node_executions" (
	"execution_id" text NOT NULL,
	"node_id" text NOT NULL,
	"task_name" text NOT NULL,
	"task_digest" text NOT NULL,
	"state" text NOT NULL,
	"cache_status" text,
	"cache_key" text,
	"inputs" jsonb,
	"outputs" jsonb,
	"attempts" integer DEFAULT 0 NOT NULL,
	"user_failures" integer DEFAULT 0 NOT NULL,
	"system_failures" integer DEFAULT 0 NOT NULL,
	"source_execution_id" text,
	"source_node_id" text,
	"error" jsonb,
	"started_at" timestamp with time zone,
	"finished_at" timestamp with time zone,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "node_executions_execution_id_node_id_pk" PRIMARY KEY("execution_id","node_id")
);
--> statement-breakpoint
CREATE TABLE "repositories" (
	"key" text PRIMARY KEY NOT NULL,
	"production_branch" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "tasks" (
	"digest" text PRIMARY KEY NOT NULL,
	"definition" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "version_tasks" (
	"repo" text NOT NULL,
	"sha" text NOT NULL,
	"name" text NOT NULL,
	"task_digest" text NOT NULL,
	"settings" jsonb NOT NULL,
	CONSTRAINT "version_tasks_repo_sha_name_pk" PRIMARY KEY("repo","sha","name")
);
--> statement-breakpoint
CREATE TABLE "version_workflows" (
	"repo" text NOT NULL,
	"sha" text NOT NULL,
	"name" text NOT NULL,
	"workflow_digest" text NOT NULL,
	"node_tasks" jsonb NOT NULL,
	"triggers" jsonb NOT NULL,
	CONSTRAINT "version_workflows_repo_sha_name_pk" PRIMARY KEY("repo","sha","name")
);
--> statement-breakpoint
CREATE TABLE "versions" (
	"repo" text NOT NULL,
	"sha" text NOT NULL,
	"parents" text[] DEFAULT '{}'::text[] NOT NULL,
	"ref" text,
	"message" text,
	"status" text NOT NULL,
	"spec_digest" text,
	"errors" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"warnings" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"registered_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "versions_repo_sha_pk" PRIMARY KEY("repo","sha")
);
--> statement-breakpoint
CREATE TABLE "workflows" (
	"digest" text PRIMARY KEY NOT NULL,
	"definition" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "activations" ADD CONSTRAINT "activations_repo_sha_versions_repo_sha_fk" FOREIGN KEY ("repo","sha") REFERENCES "public"."versions"("repo","sha") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "attempts" ADD CONSTRAINT "attempts_execution_id_node_id_node_executions_execution_id_node_id_fk" FOREIGN KEY ("execution_id","node_id") REFERENCES "public"."node_executions"("execution_id","node_id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "check_runs" ADD CONSTRAINT "check_runs_execution_id_executions_id_fk" FOREIGN KEY ("execution_id") REFERENCES "public"."executions"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "executions" ADD CONSTRAINT "executions_repo_sha_versions_repo_sha_fk" FOREIGN KEY ("repo","sha") REFERENCES "public"."versions"("repo","sha") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "executions" ADD CONSTRAINT "executions_parent_id_executions_id_fk" FOREIGN KEY ("parent_id") REFERENCES "public"."executions"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "node_executions" ADD CONSTRAINT "node_executions_execution_id_executions_id_fk" FOREIGN KEY ("execution_id") REFERENCES "public"."executions"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "version_tasks" ADD CONSTRAINT "version_tasks_task_digest_tasks_digest_fk" FOREIGN KEY ("task_digest") REFERENCES "public"."tasks"("digest") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "version_tasks" ADD CONSTRAINT "version_tasks_repo_sha_versions_repo_sha_fk" FOREIGN KEY ("repo","sha") REFERENCES "public"."versions"("repo","sha") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "version_workflows" ADD CONSTRAINT "version_workflows_workflow_digest_workflows_digest_fk" FOREIGN KEY ("workflow_digest") REFERENCES "public"."workflows"("digest") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "version_workflows" ADD CONSTRAINT "version_workflows_repo_sha_versions_repo_sha_fk" FOREIGN KEY ("repo","sha") REFERENCES "public"."versions"("repo","sha") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "versions" ADD CONSTRAINT "versions_repo_repositories_key_fk" FOREIGN KEY ("repo") REFERENCES "public"."repositories"("key") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "activations_repo" ON "activations" USING btree ("repo","id");--> statement-breakpoint
CREATE INDEX "cache_entries_task" ON "cache_entries" USING btree ("repo","task_digest");--> statement-breakpoint
CREATE INDEX "cache_entries_source" ON "cache_entries" USING btree ("source_execution_id");--> statement-breakpoint
CREATE INDEX "deliveries_pending" ON "deliveries" USING btree ("received_at") WHERE processed_at is null;--> statement-breakpoint
CREATE INDEX "executions_active" ON "executions" USING btree ("state","lease_expires_at") WHERE state in ('QUEUED', 'RUNNING', 'ABORTING');--> statement-breakpoint
CREATE INDEX "executions_repo_created" ON "executions" USING btree ("repo","created_at");--> statement-breakpoint
CREATE INDEX "version_tasks_digest" ON "version_tasks" USING btree ("task_digest");--> statement-breakpoint
CREATE INDEX "versions_spec_digest" ON "versions" USING btree ("repo","spec_digest");