-- The platform's own state: legal holds (RET-8) and the tamper-evident evidence log.
-- Holds and evidence never contain personal data: a person is named by account id or by the
-- SHA-256 of the normalised e-mail address, never by the address itself.
CREATE SCHEMA IF NOT EXISTS governance;

CREATE TABLE IF NOT EXISTS governance.legal_holds (
    hold_id       bigserial PRIMARY KEY,
    scope         text        NOT NULL CHECK (scope IN ('person', 'record', 'rule')),
    rule_id       text,                 -- scope 'rule': the policy rule it suspends
    table_name    text,                 -- scope 'record': schema-qualified table ...
    record_key    text,                 -- ... and the record's key, as text
    account_id    bigint,               -- scope 'person': an account ...
    email_sha256  text,                 -- ... and/or sha256(lower(btrim(email))) in hex
    reason        text        NOT NULL CHECK (btrim(reason) <> ''),
    set_by        text        NOT NULL CHECK (btrim(set_by) <> ''),
    set_at        timestamptz NOT NULL DEFAULT now(),
    ends_at       timestamptz,
    lifted_at     timestamptz,
    lifted_by     text,
    CHECK (scope <> 'rule'   OR rule_id IS NOT NULL),
    CHECK (scope <> 'record' OR (table_name IS NOT NULL AND record_key IS NOT NULL)),
    CHECK (scope <> 'person' OR account_id IS NOT NULL OR email_sha256 IS NOT NULL),
    CHECK (email_sha256 IS NULL OR email_sha256 ~ '^[0-9a-f]{64}$'),
    CHECK (ends_at IS NULL OR ends_at > set_at)
);
CREATE INDEX IF NOT EXISTS legal_holds_record_idx ON governance.legal_holds (table_name, record_key) WHERE scope = 'record';
CREATE INDEX IF NOT EXISTS legal_holds_account_idx ON governance.legal_holds (account_id) WHERE scope = 'person';
CREATE INDEX IF NOT EXISTS legal_holds_email_idx ON governance.legal_holds (email_sha256) WHERE scope = 'person';

-- The holds in force at a moment ("now" of a run, RET-10), so a rerun decides the same way.
CREATE OR REPLACE FUNCTION governance.holds_at(p_now timestamptz)
RETURNS SETOF governance.legal_holds
LANGUAGE sql STABLE AS $$
    SELECT * FROM governance.legal_holds h
    WHERE h.set_at <= p_now
      AND (h.ends_at IS NULL OR h.ends_at > p_now)
      AND (h.lifted_at IS NULL OR h.lifted_at > p_now)
$$;

-- The pseudonym of an e-mail address used by holds and processor notices.
CREATE OR REPLACE FUNCTION governance.email_pseudonym(p_email text)
RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT encode(sha256(convert_to(lower(btrim(p_email)), 'UTF8')), 'hex')
$$;

-- Evidence: one append-only, hash-chained log for audits, sweeps and holds. Each entry carries
-- the hash of the one before; governance.verify_evidence() recomputes the chain.
CREATE TABLE IF NOT EXISTS governance.evidence (
    entry_id        bigserial   PRIMARY KEY,
    recorded_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    kind            text        NOT NULL,
    run_id          text        NOT NULL,
    rule_id         text        NOT NULL DEFAULT '',
    step            text        NOT NULL DEFAULT '',   -- what makes an entry unique within a run and rule
    requirements    text[]      NOT NULL DEFAULT '{}',
    as_of           timestamptz,                       -- the run's "now"
    policy_version  text,                              -- sha256 of the policy file
    counts          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    details         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    prev_hash       text        NOT NULL,
    entry_hash      text        NOT NULL UNIQUE,
    UNIQUE (kind, run_id, rule_id, step)
);
CREATE INDEX IF NOT EXISTS evidence_rule_idx ON governance.evidence (rule_id, recorded_at);

CREATE TABLE IF NOT EXISTS governance.evidence_head (
    singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_entry_id  bigint,
    last_hash      text NOT NULL
);
INSERT INTO governance.evidence_head (singleton, last_entry_id, last_hash)
SELECT true, NULL, repeat('0', 64) WHERE NOT EXISTS (SELECT FROM governance.evidence_head) ON CONFLICT DO NOTHING;

-- The canonical text an entry's hash covers (everything but entry_id and the hashes).
CREATE OR REPLACE FUNCTION governance.evidence_payload(
    p_recorded_at timestamptz, p_kind text, p_run_id text, p_rule_id text, p_step text,
    p_requirements text[], p_as_of timestamptz, p_policy_version text, p_counts jsonb, p_details jsonb)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_array(
        to_char(p_recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        p_kind, p_run_id, p_rule_id, p_step, to_jsonb(p_requirements),
        to_char(p_as_of AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        p_policy_version, p_counts, p_details)::text
$$;

-- Append one entry in the caller's transaction (so it commits with the effect it records).
-- Idempotent: an entry with the same (kind, run_id, rule_id, step) is not written twice; the
-- existing entry's id is returned. Locks the chain head, so keep it the last statement before commit.
-- SECURITY DEFINER: the application's roles may only EXECUTE it and SELECT the log; the tables
-- belong to governance_evidence_owner (025_evidence_guard.sql, SEC-1).
CREATE OR REPLACE FUNCTION governance.append_evidence(
    p_kind text, p_run_id text, p_rule_id text, p_step text, p_requirements text[],
    p_as_of timestamptz, p_policy_version text, p_counts jsonb, p_details jsonb)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_head governance.evidence_head;
    v_now  timestamptz := clock_timestamp();
    v_id   bigint;
    v_hash text;
BEGIN
    SELECT * INTO v_head FROM governance.evidence_head WHERE singleton FOR UPDATE;
    SELECT entry_id INTO v_id FROM governance.evidence
     WHERE kind = p_kind AND run_id = p_run_id AND rule_id = coalesce(p_rule_id, '') AND step = coalesce(p_step, '');
    IF FOUND THEN
        RETURN v_id;
    END IF;
    v_hash := encode(sha256(convert_to(v_head.last_hash || governance.evidence_payload(
        v_now, p_kind, p_run_id, coalesce(p_rule_id, ''), coalesce(p_step, ''), coalesce(p_requirements, '{}'),
        p_as_of, p_policy_version, coalesce(p_counts, '{}'::jsonb), coalesce(p_details, '{}'::jsonb)), 'UTF8')), 'hex');
    INSERT INTO governance.evidence (recorded_at, kind, run_id, rule_id, step, requirements, as_of,
                                     policy_version, counts, details, prev_hash, entry_hash)
    VALUES (v_now, p_kind, p_run_id, coalesce(p_rule_id, ''), coalesce(p_step, ''), coalesce(p_requirements, '{}'),
            p_as_of, p_policy_version, coalesce(p_counts, '{}'::jsonb), coalesce(p_details, '{}'::jsonb),
            v_head.last_hash, v_hash)
    RETURNING entry_id INTO v_id;
    UPDATE governance.evidence_head SET last_entry_id = v_id, last_hash = v_hash WHERE singleton;
    RETURN v_id;
END
$$;

-- Entries whose hash or link does not match: empty when the chain is intact.
CREATE OR REPLACE FUNCTION governance.verify_evidence()
RETURNS TABLE (entry_id bigint, problem text)
LANGUAGE sql STABLE AS $$
    WITH chain AS (
        SELECT e.*, lag(e.entry_hash, 1, repeat('0', 64)) OVER (ORDER BY e.entry_id) AS expected_prev
        FROM governance.evidence e
    )
    SELECT c.entry_id, 'prev_hash does not match the entry before' FROM chain c WHERE c.prev_hash <> c.expected_prev
    UNION ALL
    SELECT c.entry_id, 'entry_hash does not match its content' FROM chain c
    WHERE c.entry_hash <> encode(sha256(convert_to(c.prev_hash || governance.evidence_payload(
        c.recorded_at, c.kind, c.run_id, c.rule_id, c.step, c.requirements, c.as_of, c.policy_version,
        c.counts, c.details), 'UTF8')), 'hex')
    UNION ALL
    SELECT h.last_entry_id, 'chain head does not match the last entry' FROM governance.evidence_head h
    WHERE h.last_hash <> coalesce((SELECT entry_hash FROM governance.evidence ORDER BY entry_id DESC LIMIT 1), repeat('0', 64))
    ORDER BY 1
$$;

-- What a compliance reviewer reads: audits per rule, newest first.
CREATE OR REPLACE VIEW governance.audit_history AS
    SELECT recorded_at, run_id, as_of, rule_id, requirements,
           (counts ->> 'overdue')::bigint               AS overdue,
           (counts ->> 'oldest_overdue_seconds')::bigint AS oldest_overdue_seconds,
           (counts ->> 'held')::bigint                  AS held,
           details ->> 'check'                          AS check_kind,
           policy_version
    FROM governance.evidence WHERE kind = 'audit_rule';

-- Hourly range partitions created ahead of time for a table partitioned on a timestamptz clock
-- (shop.visits, RET-1). Idempotent. Partition names: <table>_pYYYYMMDDHH, in UTC. An hour already
-- covered by a partition of another name (the table was renamed, or another tool made it) is left
-- as it is.
CREATE OR REPLACE FUNCTION governance.ensure_hourly_partitions(p_parent regclass, p_from timestamptz, p_to timestamptz)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    v_schema text;
    v_table  text;
    v_start  timestamptz := date_trunc('hour', p_from AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    v_name   text;
    v_made   integer := 0;
    v_owner  name;
BEGIN
    SELECT n.nspname, c.relname, pg_get_userbyid(c.relowner) INTO v_schema, v_table, v_owner
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = p_parent;
    WHILE v_start < p_to LOOP
        v_name := v_table || '_p' || to_char(v_start AT TIME ZONE 'UTC', 'YYYYMMDDHH24');
        IF to_regclass(format('%I.%I', v_schema, v_name)) IS NULL THEN
            BEGIN
                EXECUTE format('CREATE TABLE %I.%I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                               v_schema, v_name, p_parent, v_start, v_start + interval '1 hour');
                -- the parent's owner owns every partition (SEC-4: the sweeper's group role, not
                -- the login that happened to create it, so every member may drop it)
                EXECUTE format('ALTER TABLE %I.%I OWNER TO %I', v_schema, v_name, v_owner);
                v_made := v_made + 1;
            EXCEPTION WHEN invalid_object_definition THEN
                IF SQLERRM NOT LIKE '%would overlap partition%' THEN
                    RAISE;
                END IF;
            END;
        END IF;
        v_start := v_start + interval '1 hour';
    END LOOP;
    RETURN v_made;
END
$$;
