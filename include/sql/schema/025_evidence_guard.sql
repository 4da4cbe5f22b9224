-- Evidence that cannot be rewritten (SEC-1, issue #9): the log is append-only for everyone.
-- 1. Triggers refuse UPDATE, DELETE and TRUNCATE of governance.evidence, and let the chain head
--    move only forward, onto the newest entry (what append_evidence does). They hold for the
--    tables' owner too; only a superuser can switch them off (ALTER TABLE ... DISABLE TRIGGER,
--    session_replication_role = replica), which the anchors outside the database then expose.
-- 2. Privileges: the tables and append_evidence (SECURITY DEFINER) belong to the NOLOGIN role
--    governance_evidence_owner; the application's roles are granted governance_evidence_writer:
--    EXECUTE on append_evidence and SELECT on the log, nothing else. Apply the schema as a
--    superuser (or a member of governance_evidence_owner); the application's runtime role must
--    be neither.

CREATE OR REPLACE FUNCTION governance.refuse_evidence_change()
RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%.% is append-only: % refused', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'entries are written only by governance.append_evidence and never changed; '
                     'see docs/runbook.md "Evidence is append-only"';
END
$$;

CREATE OR REPLACE TRIGGER evidence_no_update_delete
    BEFORE UPDATE OR DELETE ON governance.evidence
    FOR EACH ROW EXECUTE FUNCTION governance.refuse_evidence_change();
CREATE OR REPLACE TRIGGER evidence_no_truncate
    BEFORE TRUNCATE ON governance.evidence
    FOR EACH STATEMENT EXECUTE FUNCTION governance.refuse_evidence_change();

-- The head: created once (the genesis row), then only moved forward to the newest entry.
CREATE OR REPLACE FUNCTION governance.guard_evidence_head()
RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' AND NEW.last_entry_id IS NULL AND NEW.last_hash = repeat('0', 64)
       AND NOT EXISTS (SELECT FROM governance.evidence) THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.singleton AND NEW.last_entry_id IS NOT NULL
       AND NEW.last_entry_id > coalesce(OLD.last_entry_id, 0)
       AND NEW.last_entry_id = (SELECT max(entry_id) FROM governance.evidence)
       AND NEW.last_hash = (SELECT entry_hash FROM governance.evidence WHERE entry_id = NEW.last_entry_id) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'governance.evidence_head moves only through governance.append_evidence: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'see docs/runbook.md "Evidence is append-only"';
END
$$;

CREATE OR REPLACE TRIGGER evidence_head_guard
    BEFORE INSERT OR UPDATE OR DELETE ON governance.evidence_head
    FOR EACH ROW EXECUTE FUNCTION governance.guard_evidence_head();
CREATE OR REPLACE TRIGGER evidence_head_no_truncate
    BEFORE TRUNCATE ON governance.evidence_head
    FOR EACH STATEMENT EXECUTE FUNCTION governance.refuse_evidence_change();

-- Roles are per cluster: created once, by whichever database's schema comes first (another
-- session may be creating them at the same moment).
DO $$
DECLARE
    v_role text;
BEGIN
    FOREACH v_role IN ARRAY ARRAY['governance_evidence_owner', 'governance_evidence_writer'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = v_role) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', v_role);
            EXCEPTION
                WHEN duplicate_object OR unique_violation THEN NULL;
                WHEN insufficient_privilege THEN
                    RAISE WARNING 'cannot create role % (no CREATEROLE): the evidence is guarded by its '
                                  'triggers only; see docs/runbook.md "Evidence is append-only"', v_role;
                    RETURN;
            END;
        END IF;
    END LOOP;
    IF NOT pg_has_role('governance_evidence_owner', 'MEMBER') THEN
        RAISE WARNING 'not a member of governance_evidence_owner: evidence ownership left as it is';
        RETURN;
    END IF;
    GRANT USAGE ON SCHEMA governance TO governance_evidence_owner;  -- append_evidence runs as the owner
    IF (SELECT relowner::regrole::text FROM pg_class WHERE oid = 'governance.evidence'::regclass)
       = 'governance_evidence_owner' THEN
        RETURN;  -- done by an earlier apply; ALTER ... OWNER would lock the log for nothing
    END IF;
    ALTER TABLE governance.evidence OWNER TO governance_evidence_owner;
    ALTER TABLE governance.evidence_head OWNER TO governance_evidence_owner;
    ALTER FUNCTION governance.append_evidence(text, text, text, text, text[], timestamptz, text, jsonb, jsonb)
        OWNER TO governance_evidence_owner;
    REVOKE ALL ON governance.evidence, governance.evidence_head FROM PUBLIC;
    REVOKE ALL ON FUNCTION governance.append_evidence(text, text, text, text, text[], timestamptz, text, jsonb, jsonb)
        FROM PUBLIC;
    GRANT USAGE ON SCHEMA governance TO governance_evidence_writer;
    GRANT SELECT ON governance.evidence, governance.evidence_head TO governance_evidence_writer;
    GRANT EXECUTE ON FUNCTION governance.append_evidence(text, text, text, text, text[], timestamptz, text, jsonb, jsonb)
        TO governance_evidence_writer;
END
$$;
