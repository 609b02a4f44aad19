CREATE TABLE "artifacts" (
	"repo" text NOT NULL,
	"digest" text NOT NULL,
	"type" text NOT NULL,
	"size" bigint NOT NULL,
	"files" integer,
	"execution_id" text,
	"node_id" text,
	"task_digest" text,
	"uploaded_by" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "artifacts_repo_digest_pk" PRIMARY KEY("repo","digest")
);
--> statement-breakpoint
ALTER TABLE "node_executions" ADD COLUMN "cache_reason" text;--> statement-breakpoint
CREATE INDEX "artifacts_digest" ON "artifacts" USING btree ("digest");--> statement-breakpoint
CREATE INDEX "artifacts_execution" ON "artifacts" USING btree ("execution_id");