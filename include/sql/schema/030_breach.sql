-- SEC-2 (policy art. 6): the personal-data breach ledger and the notices to the people concerned.
-- No personal data here either: a person is an account id and/or the e-mail pseudonym
-- (governance.email_pseudonym); the address is looked up in the shop's tables at send time only.
CREATE TABLE IF NOT EXISTS governance.breaches (
    breach_id              bigserial   PRIMARY KEY,
    opened_at              timestamptz NOT NULL,
    detected_at            timestamptz NOT NULL,
    due_at                 timestamptz NOT NULL,   -- the authority notice's deadline (GDPR art. 33)
    categories             text[]      NOT NULL CHECK (cardinality(categories) > 0),
    window_from            timestamptz NOT NULL,
    window_to              timestamptz NOT NULL,
    description            text        NOT NULL CHECK (btrim(description) <> ''),
    state                  text        NOT NULL DEFAULT 'open'
                           CHECK (state IN ('open', 'authority_notified', 'subjects_notified', 'closed')),
    authority_notified_at  timestamptz,
    authority_reference    text,
    subjects_notified_at   timestamptz,
    closed_at              timestamptz,
    due_soon_alerted_at    timestamptz,   -- on-call told: the authority notice is due within 24 h
    late_alerted_at        timestamptz,   -- on-call told: the authority notice is late
    CHECK (due_at = detected_at + interval '72 hours'),
    CHECK (window_to > window_from),
    CHECK (detected_at <= opened_at),
    CHECK (state = 'open' OR authority_notified_at IS NOT NULL),
    CHECK (state NOT IN ('subjects_notified', 'closed') OR subjects_notified_at IS NOT NULL),
    CHECK (state <> 'closed' OR closed_at IS NOT NULL)
);

CREATE TABLE IF NOT EXISTS governance.breach_notices (
    notice_id     bigserial   PRIMARY KEY,
    breach_id     bigint      NOT NULL REFERENCES governance.breaches (breach_id),
    person_key    text        NOT NULL,   -- 'account:<id>' or 'email:<pseudonym>'
    account_id    bigint,
    email_sha256  text        CHECK (email_sha256 IS NULL OR email_sha256 ~ '^[0-9a-f]{64}$'),
    -- queued -> sending (claimed; committed before the SMTP call, so a crash never sends twice) -> sent | failed
    state         text        NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sending', 'sent', 'failed')),
    failure       text,                   -- a reason code, never an address: no_address, smtp_refused, smtp_error
    claimed_at    timestamptz,
    sent_at       timestamptz,
    CHECK (account_id IS NOT NULL OR email_sha256 IS NOT NULL),
    CHECK (state <> 'sent' OR sent_at IS NOT NULL),
    UNIQUE (breach_id, person_key)
);
CREATE INDEX IF NOT EXISTS breach_notices_queued_idx ON governance.breach_notices (notice_id) WHERE state = 'queued';
