-- The rights that switch processing off (#11): restriction (RES-1), objection (OBJ-1, MKT-1) and
-- withdrawal of consent (CON-1), and account deletion with the person's choice (RET-7).

-- What a request is about beyond its kind, chosen at intake (no personal data: ids of the policy):
-- purposes: the policy's `purposes:` a restriction, objection or consent withdrawal switches off;
-- choices: an account deletion's {category id: 'keep' | 'delete'} (RET-7).
ALTER TABLE governance.subject_requests ADD COLUMN IF NOT EXISTS purposes text[] NOT NULL DEFAULT '{}';
ALTER TABLE governance.subject_requests ADD COLUMN IF NOT EXISTS choices jsonb NOT NULL DEFAULT '{}'::jsonb;
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'subject_requests_scope_check') THEN
        ALTER TABLE governance.subject_requests ADD CONSTRAINT subject_requests_scope_check CHECK (
            (cardinality(purposes) = 0 OR kind IN ('restriction', 'objection', 'consent_withdrawal'))
            AND (choices = '{}'::jsonb OR kind = 'account_deletion')
            AND jsonb_typeof(choices) = 'object'
        );
    END IF;
END
$$;

-- The processing register (RES-1, OBJ-1, MKT-1, CON-1): per person (pseudonymous: account ids and
-- e-mail pseudonyms, as the ledger names a person) and purpose, what a request switched off and
-- from when; a restriction also until when (lifted_at, or a planned ends_at). One row per request
-- and purpose. Whoever processes for a purpose (the advertising audience export, a newsletter send)
-- leaves out everyone with a row in force for it (governance.processing_off_at below).
CREATE TABLE IF NOT EXISTS governance.processing_register (
    entry_id       bigserial   PRIMARY KEY,
    request_id     bigint      NOT NULL REFERENCES governance.subject_requests (request_id),
    purpose        text        NOT NULL CHECK (purpose ~ '^[a-z0-9]+(_[a-z0-9]+)*$'),
    effect         text        NOT NULL CHECK (effect IN ('objected', 'withdrawn', 'restricted')),
    account_ids    bigint[]    NOT NULL DEFAULT '{}',
    email_sha256s  text[]      NOT NULL DEFAULT '{}'
                   CHECK (array_to_string(email_sha256s, ',') ~ '^([0-9a-f]{64}(,[0-9a-f]{64})*)?$'),
    starts_at      timestamptz NOT NULL,
    ends_at        timestamptz,            -- a restriction's planned end
    lifted_at      timestamptz,            -- a restriction lifted (governance request lift)
    lifted_by      text,
    CHECK (cardinality(account_ids) > 0 OR cardinality(email_sha256s) > 0),
    CHECK (effect = 'restricted' OR (ends_at IS NULL AND lifted_at IS NULL)),
    CHECK (ends_at IS NULL OR ends_at > starts_at),
    CHECK ((lifted_at IS NULL) = (lifted_by IS NULL)),
    UNIQUE (request_id, purpose)
);
CREATE INDEX IF NOT EXISTS processing_register_accounts_idx ON governance.processing_register USING gin (account_ids);
CREATE INDEX IF NOT EXISTS processing_register_emails_idx ON governance.processing_register USING gin (email_sha256s);

-- The register unnested: one row per identifier and purpose, for the entries in force at p_now.
CREATE OR REPLACE FUNCTION governance.processing_off_at(p_now timestamptz)
RETURNS TABLE (purpose text, effect text, account_id bigint, email_sha256 text, request_id bigint)
LANGUAGE sql STABLE AS $$
    SELECT r.purpose, r.effect, a.account_id, NULL::text, r.request_id
    FROM governance.processing_register r CROSS JOIN LATERAL unnest(r.account_ids) AS a(account_id)
    WHERE r.starts_at <= p_now AND (r.ends_at IS NULL OR r.ends_at > p_now)
      AND (r.lifted_at IS NULL OR r.lifted_at > p_now)
    UNION ALL
    SELECT r.purpose, r.effect, NULL::bigint, e.email_sha256, r.request_id
    FROM governance.processing_register r CROSS JOIN LATERAL unnest(r.email_sha256s) AS e(email_sha256)
    WHERE r.starts_at <= p_now AND (r.ends_at IS NULL OR r.ends_at > p_now)
      AND (r.lifted_at IS NULL OR r.lifted_at > p_now)
$$;

-- RES-1 decision (policy `decisions: RES-1`): a restriction in force keeps the person's records from
-- retention deletion as a person hold whose reason names the restriction; the hold names its request.
ALTER TABLE governance.legal_holds ADD COLUMN IF NOT EXISTS request_id bigint
    REFERENCES governance.subject_requests (request_id);

-- Why a restriction was lifted (`governance request lift --reason`): staff text without personal
-- data, kept here; evidence holds its SHA-256 only.
ALTER TABLE governance.processing_register ADD COLUMN IF NOT EXISTS lift_reason text;
