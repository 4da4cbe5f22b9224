-- Notices to the recipients of a person's data (TP-5, GDPR art. 19): one row per recipient of the
-- registry (policy `recipients:`) and event, queued in the transaction of the effect it reports
-- (an erasure, a rectification, a restriction), delivered by issue #12. No personal data in clear:
-- the subject is named by per-recipient pseudonyms (HMAC-SHA256 with that recipient's key, so
-- recipients cannot join their lists) and the shop's own references (order ids); the tables,
-- categories and column names concerned, never values. A corrected value is not copied here: the
-- delivery reads it from the record when it sends, encrypted to the recipient (TP-2, #12).
-- The pseudonyms and order ids are still pseudonymous personal data: #12 gives them a window after
-- the acknowledgement (RET-9) and keeps the row, without them, as the proof the recipient was told.
CREATE TABLE IF NOT EXISTS governance.recipient_outbox (
    notice_id          bigserial   PRIMARY KEY,
    request_id         bigint      REFERENCES governance.subject_requests (request_id),
    run_id             text,                   -- a sweep's run, when a retention end is notified (#12)
    recipient_id       text        NOT NULL CHECK (recipient_id ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    event              text        NOT NULL CHECK (event IN ('erasure', 'rectification', 'restriction',
                                       'restriction_lifted', 'objection', 'consent_withdrawal', 'retention_ended')),
    categories         text[]      NOT NULL CHECK (cardinality(categories) > 0),
    tables             text[]      NOT NULL CHECK (cardinality(tables) > 0),
    columns            jsonb       NOT NULL DEFAULT '{}'::jsonb,    -- table -> column names changed
    record_counts      jsonb       NOT NULL DEFAULT '{}'::jsonb,    -- table -> rows changed
    subject_pseudonyms text[]      NOT NULL
                       CHECK (array_to_string(subject_pseudonyms, ',') ~ '^[0-9a-f]{64}(,[0-9a-f]{64})*$'),
    pseudonym_key_id   text        NOT NULL CHECK (pseudonym_key_id ~ '^[0-9a-f]{16}$'),
    order_ids          bigint[]    NOT NULL DEFAULT '{}',
    idempotency_key    text        NOT NULL UNIQUE,   -- the message id the recipient deduplicates on
    created_at         timestamptz NOT NULL,
    -- Delivery (#12): queued -> sending -> sent -> acknowledged; failed -> retried; dead after N.
    state              text        NOT NULL DEFAULT 'queued'
                       CHECK (state IN ('queued', 'sending', 'sent', 'failed', 'acknowledged', 'dead')),
    attempts           integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at    timestamptz NOT NULL,
    last_attempt_at    timestamptz,
    last_error         text,                     -- an error class or HTTP status, never a payload
    claimed_at         timestamptz,              -- 'sending' is claimed (committed) before it is sent
    sent_at            timestamptz,
    acked_at           timestamptz,
    acked_via          text        CHECK (acked_via IN ('response', 'callback', 'manual')),
    ack_overdue_alerted_at timestamptz,          -- compliance told: no ack after the policy's N days
    dead_at            timestamptz,
    CHECK ((request_id IS NULL) <> (run_id IS NULL)),
    CHECK (state <> 'sending' OR claimed_at IS NOT NULL),
    CHECK ((acked_at IS NULL) = (acked_via IS NULL)),
    CHECK (state NOT IN ('sent', 'acknowledged') OR sent_at IS NOT NULL),
    CHECK ((state = 'acknowledged') = (acked_at IS NOT NULL)),
    CHECK ((state = 'dead') = (dead_at IS NOT NULL))
);
CREATE UNIQUE INDEX IF NOT EXISTS recipient_outbox_request_idx ON governance.recipient_outbox
    (request_id, recipient_id, event) WHERE request_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS recipient_outbox_due_idx ON governance.recipient_outbox (next_attempt_at)
    WHERE state IN ('queued', 'failed');

-- REC-1: the corrections a person asked for, between intake and the run that applies them. Personal
-- data (the new values), apart from the ledger like the answer address (RET-9): deleted in the
-- transaction that applies them, and when the request closes any other way (the trigger below).
CREATE TABLE IF NOT EXISTS governance.request_corrections (
    request_id   bigint      PRIMARY KEY REFERENCES governance.subject_requests (request_id),
    corrections  jsonb       NOT NULL,   -- {table: {column: new value or null}}
    created_at   timestamptz NOT NULL
);

CREATE OR REPLACE FUNCTION governance.drop_closed_request_corrections() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM governance.request_corrections WHERE request_id = NEW.request_id;
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS drop_closed_request_corrections ON governance.subject_requests;
CREATE TRIGGER drop_closed_request_corrections AFTER UPDATE OF state ON governance.subject_requests
    FOR EACH ROW WHEN (NEW.state IN ('completed', 'refused', 'withdrawn'))
    EXECUTE FUNCTION governance.drop_closed_request_corrections();
