-- Versions, tasks, workflows, their mappings and the production activation history are
-- immutable (DESIGN.md section 4): the database itself refuses to change or delete them, whoever
-- asks. SQLSTATE 'RP001' lets the store turn the refusal into a clear error.
CREATE FUNCTION reprise_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'reprise: % is immutable: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'RP001';
END
$$;
--> statement-breakpoint
CREATE TRIGGER versions_immutable BEFORE UPDATE OR DELETE ON versions FOR EACH ROW EXECUTE FUNCTION reprise_refuse_change();
--> statement-breakpoint
CREATE TRIGGER versions_no_truncate BEFORE TRUNCATE ON versions FOR EACH STATEMENT EXECUTE FUNCTION reprise_refuse_change();
--> statement-breakpoint
CREATE TRIGGER tasks_immutable BEFORE UPDATE OR DELETE ON tasks FOR EACH ROW EXECUTE FUNCTION reprise_refuse_change();
--> statement-breakpoint
CREATE TRIGGER tasks_no_truncate BEFORE TRUNCATE ON tasks FOR EACH STATEMENT EXECUTE FUNCTION reprise_refuse_change();
--> statement-breakpoint
CREATE TRIGGER workflows_immutable BEFORE UPDATE OR DELETE ON workflows FOR EACH ROW EXECUTE FUNCTION reprise_refuse_change();
--> statement-breakpoint
CREATE TRIGGER workflows_no_truncate BEFORE TRUNCATE ON workflows FOR EACH STATEMENT EXECUTE FUNCTION reprise_refuse_change();
--> statement-breakpoint
CREATE TRIGGER version_tasks_immutable BEFORE UPDATE OR DELETE ON version_tasks FOR EACH ROW EXECUTE FUNCTION reprise_refuse_change();
--> statement-breakpoint
CREATE TRIGGER version_tasks_no_truncate BEFORE TRUNCATE ON version_tasks FOR EACH STATEMENT EXECUTE FUNCTION reprise_refuse_change();
--> statement-breakpoint
CREATE TRIGGER version_workflows_immutable BEFORE UPDATE OR DELETE ON version_workflows FOR EACH ROW EXECUTE FUNCTION reprise_refuse_change();
--> statement-breakpoint
CREATE TRIGGER version_workflows_no_truncate BEFORE TRUNCATE ON version_workflows FOR EACH STATEMENT EXECUTE FUNCTION reprise_refuse_change();
--> statement-breakpoint
CREATE TRIGGER activations_immutable BEFORE UPDATE OR DELETE ON activations FOR EACH ROW EXECUTE FUNCTION reprise_refuse_change();
--> statement-breakpoint
CREATE TRIGGER activations_no_truncate BEFORE TRUNCATE ON activations FOR EACH STATEMENT EXECUTE FUNCTION reprise_refuse_change();
