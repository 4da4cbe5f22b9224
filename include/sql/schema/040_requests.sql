-- Data-subject requests (REQ-1; ACC-1, POR-1 and the rights of policy art. 5): the ledger, the
-- answer address kept apart (RET-9), and the export copies made to answer them (RET-9, SEC-3).
-- The ledger holds no personal data: the subject is an account id and/or the e-mail pseudonym
-- (governance.email_pseudonym), as legal holds and breach notices name a person.
CREATE TABLE IF NOT EXISTS governance.subject_requests (
    request_id           bigserial   PRIMARY KEY,
    kind                 text        NOT NULL CHECK (kind IN ('access', 'portability', 'erasure', 'rectification',
                                         'restriction', 'objection', 'consent_withdrawal', 'account_deletion')),
    account_id           bigint,
    email_sha256         text        CHECK (email_sha256 IS NULL OR email_sha256 ~ '^[0-9a-f]{64}$'),
    channel              text        NOT NULL CHECK (channel IN ('email', 'support_tool', 'web_form', 'post', 'phone',
                                         'in_person')),
    opened_by            text        NOT NULL CHECK (btrim(opened_by) <> ''),
    received_at          timestamptz NOT NULL,
    opened_at            timestamptz NOT NULL,
    due_at               timestamptz NOT NULL,   -- received_at + 1 calendar month (GDPR art. 12(3))
    extended_due_at      timestamptz,            -- received_at + 1 + extension_months calendar months
    extension_months     integer     NOT NULL DEFAULT 0 CHECK (extension_months BETWEEN 0 AND 2),
    extension_reason     text,
    state                text        NOT NULL DEFAULT 'received'
                         CHECK (state IN ('received', 'verified', 'in_progress', 'completed', 'refused', 'withdrawn')),
    subject_found        boolean,                -- false: "no data held" (found nobody when opened)
    verified_by          text,
    verified_at          timestamptz,
    verification_method  text                    -- how the identity was checked; never the document itself
                         CHECK (verification_method IN ('id_document', 'signed_in_account', 'bankid', 'known_contact')),
    started_at           timestamptz,
    closed_at            timestamptz,            -- completed, refused or withdrawn; the RET-9 clocks start here
    refused_reason       text,
    outcome              jsonb       NOT NULL DEFAULT '{}'::jsonb,   -- counts only
    due_soon_alerted_at  timestamptz,            -- on-call and compliance told: 7 days left
    late_alerted_at      timestamptz,            -- on-call and compliance told: past the deadline
    CHECK (account_id IS NOT NULL OR email_sha256 IS NOT NULL),
    CHECK (opened_at >= received_at),
    CHECK ((extended_due_at IS NULL) = (extension_months = 0)),
    CHECK (extended_due_at IS NULL OR (extended_due_at > due_at AND extension_reason IS NOT NULL
                                        AND btrim(extension_reason) <> '')),
    CHECK (state IN ('received', 'withdrawn', 'refused') OR verified_at IS NOT NULL),
    CHECK (verified_at IS NULL OR (verified_by IS NOT NULL AND verification_method IS NOT NULL)),
    CHECK (state NOT IN ('in_progress', 'completed') OR started_at IS NOT NULL),
    CHECK ((state IN ('completed', 'refused', 'withdrawn')) = (closed_at IS NOT NULL)),
    CHECK (state <> 'refused' OR (refused_reason IS NOT NULL AND btrim(refused_reason) <> ''))
);
CREATE INDEX IF NOT EXISTS subject_requests_open_idx ON governance.subject_requests (due_at)
    WHERE state IN ('received', 'verified', 'in_progress');
-- One open request per kind and subject: a second is a duplicate, refused at intake.
CREATE UNIQUE INDEX IF NOT EXISTS subject_requests_one_open_idx ON governance.subject_requests
    (kind, coalesce(account_id, -1), coalesce(email_sha256, '')) WHERE state IN ('received', 'verified', 'in_progress');

-- The state machine (REQ-1): received -> verified -> in_progress -> completed; refused from any open
-- state; withdrawn before completion. Anything else is refused here too, whoever writes the row.
CREATE OR REPLACE FUNCTION governance.subject_request_transition() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = OLD.state THEN
        IF OLD.state IN ('completed', 'refused', 'withdrawn') AND NEW IS DISTINCT FROM OLD THEN
            RAISE EXCEPTION 'request % is %: a closed request does not change', OLD.request_id, OLD.state
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END IF;
    IF (OLD.state, NEW.state) NOT IN (('received', 'verified'), ('verified', 'in_progress'),
                                      ('in_progress', 'completed'), ('received', 'refused'),
                                      ('verified', 'refused'), ('in_progress', 'refused'),
                                      ('received', 'withdrawn'), ('verified', 'withdrawn'),
                                      ('in_progress', 'withdrawn')) THEN
        RAISE EXCEPTION 'request %: % -> % is not a transition of the request state machine',
            OLD.request_id, OLD.state, NEW.state USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS subject_request_transition ON governance.subject_requests;
CREATE TRIGGER subject_request_transition BEFORE UPDATE ON governance.subject_requests
    FOR EACH ROW EXECUTE FUNCTION governance.subject_request_transition();

-- Personal data of a request, apart from the ledger: the address to answer to and the address the
-- subject named. Deleted by the RET-9 rule 'request-contacts' a window after the request closed.
CREATE TABLE IF NOT EXISTS governance.request_contacts (
    request_id     bigint      PRIMARY KEY REFERENCES governance.subject_requests (request_id),
    reply_to       text        NOT NULL,
    subject_email  text,
    created_at     timestamptz NOT NULL
);
-- A person's requests are found by their normalised address (governance.person, ACC-1); without
-- it every person query of the data map reads the whole table (bench/README.md, #10).
CREATE INDEX IF NOT EXISTS request_contacts_reply_to_idx ON governance.request_contacts (lower(btrim(reply_to)));

-- Export archives (ACC-1, POR-1): a copy with a window (RET-9, rule 'request-exports'). Its object
-- goes first ('purging' is the tombstone, as for uploads), then the row.
CREATE TABLE IF NOT EXISTS governance.request_exports (
    export_id      bigserial   PRIMARY KEY,
    request_id     bigint      NOT NULL REFERENCES governance.subject_requests (request_id),
    bucket         text        NOT NULL,
    object_key     text        NOT NULL,
    created_at     timestamptz NOT NULL,
    byte_size      bigint      NOT NULL CHECK (byte_size >= 0),
    sha256         text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    file_count     integer     NOT NULL CHECK (file_count >= 0),
    link_expires_at timestamptz,
    link_sent_at   timestamptz,
    state          text        NOT NULL DEFAULT 'stored' CHECK (state IN ('stored', 'purging')),
    UNIQUE (bucket, object_key),
    UNIQUE (request_id)
);
