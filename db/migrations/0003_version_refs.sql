CREATE TABLE "version_refs" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"repo" text NOT NULL,
	"sha" text NOT NULL,
	"ref" text NOT NULL,
	"source" text NOT NULL,
	"recorded_by" text NOT NULL,
	"recorded_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "version_refs_source" CHECK ("version_refs"."source" in ('app', 'git', 'client'))
);
--> statement-breakpoint
-- Who registered the versions already stored is not known: "unknown". Adding a column with a
-- default fills existing rows without an UPDATE (the immutability trigger would refuse one);
-- dropping the default then makes every new registration say who it is.
ALTER TABLE "versions" ADD COLUMN "registered_by" text DEFAULT 'unknown' NOT NULL;--> statement-breakpoint
ALTER TABLE "versions" ALTER COLUMN "registered_by" DROP DEFAULT;--> statement-breakpoint
ALTER TABLE "version_refs" ADD CONSTRAINT "version_refs_repo_sha_versions_repo_sha_fk" FOREIGN KEY ("repo","sha") REFERENCES "public"."versions"("repo","sha") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "version_refs_branch" ON "version_refs" USING btree ("repo","ref","source","id");--> statement-breakpoint
CREATE INDEX "version_refs_sha" ON "version_refs" USING btree ("repo","sha");--> statement-breakpoint
-- The branch each stored version was registered from becomes a client's claim: whoever posted
-- it is not known, and the App's next push of a branch records it with its own authority.
-- Oldest first, so the newest registration stays the branch's latest, as before.
INSERT INTO "version_refs" ("repo", "sha", "ref", "source", "recorded_by", "recorded_at")
  SELECT "repo", "sha", "ref", 'client', 'unknown', "registered_at" FROM "versions"
  WHERE "ref" IS NOT NULL ORDER BY "registered_at", "sha";--> statement-breakpoint
-- Append-only, like the activation history (0001_immutable.sql): a recorded ref is never
-- changed or removed, by a client or anyone else.
CREATE TRIGGER version_refs_immutable BEFORE UPDATE OR DELETE ON version_refs FOR EACH ROW EXECUTE FUNCTION reprise_refuse_change();
--> statement-breakpoint
CREATE TRIGGER version_refs_no_truncate BEFORE TRUNCATE ON version_refs FOR EACH STATEMENT EXECUTE FUNCTION reprise_refuse_change();
