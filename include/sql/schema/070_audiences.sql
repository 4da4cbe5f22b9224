-- The advertising audience export (#11; TP-1, TP-3, MKT-1, OBJ-1, CON-1, RES-1).

-- TP-3: who was told, before their first inclusion in an audience, that their contact details go
-- to the recipient. No address: it is read from the account when the notice is mailed. One row per
-- account and audience, written in the transaction that follows the notice's hand-over to SMTP.
CREATE TABLE IF NOT EXISTS governance.audience_notices (
    account_id   bigint      NOT NULL,
    audience_id  text        NOT NULL CHECK (audience_id ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    notified_at  timestamptz NOT NULL,
    run_id       text        NOT NULL,
    PRIMARY KEY (account_id, audience_id)
);
CREATE INDEX IF NOT EXISTS audience_notices_audience_idx ON governance.audience_notices (audience_id, notified_at);

-- TP-1, RET-9: the audience files written to the drop (SHA-256 pseudonyms of addresses, one file
-- per audience and run). A copy with a window (the audience's keep_files decision, RET-9-audiences):
-- governance.audiences.purge removes the objects, then the row. state: 'purging' while the objects go.
CREATE TABLE IF NOT EXISTS governance.audience_files (
    file_id      bigserial   PRIMARY KEY,
    audience_id  text        NOT NULL,
    purpose      text        NOT NULL,   -- the policy purpose the audience is for (the audit checks it)
    run_id       text        NOT NULL,
    bucket       text        NOT NULL,
    object_key   text        NOT NULL,
    manifest_key text        NOT NULL,
    created_at   timestamptz NOT NULL,
    as_of        timestamptz NOT NULL,
    persons      bigint      NOT NULL CHECK (persons >= 0),
    byte_size    bigint      NOT NULL CHECK (byte_size >= 0),
    sha256       text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    state        text        NOT NULL DEFAULT 'stored' CHECK (state IN ('stored', 'purging')),
    UNIQUE (bucket, object_key),
    UNIQUE (audience_id, run_id)
);
CREATE INDEX IF NOT EXISTS audience_files_created_idx ON governance.audience_files (created_at);

-- A person is named by the pseudonym of their address in the processing register, holds and the
-- ledger: this finds their account from it without hashing every account (the audience export's
-- exclusions by address, TP-1; OBJ-1). email_pseudonym is IMMUTABLE (trim, lower-case, SHA-256).
CREATE INDEX IF NOT EXISTS accounts_email_pseudonym_idx ON shop.accounts (governance.email_pseudonym(email));
