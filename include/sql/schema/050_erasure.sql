-- Erasure (ERA-1, #11): the records one erasure request found, recorded before anything is erased,
-- so that a rerun after a crash finishes the same set and the independent check knows which
-- records and objects to look for afterwards. Keys only (an object key can carry a file name: it
-- is removed with the request's completion, in the same transaction).
-- disposition: what the erasure does to the record (erase, anonymise (RET-8), keep: a dependent
-- of an anonymised record, or a copy an open request still needs); state: pending -> done, or
-- purging (its objects being removed, the tombstone) -> done, or held (a legal hold in force, RET-8).
CREATE TABLE IF NOT EXISTS governance.erasure_work (
    request_id   bigint NOT NULL REFERENCES governance.subject_requests (request_id),
    table_name   text   NOT NULL,
    record_key   text   NOT NULL,
    disposition  text   NOT NULL CHECK (disposition IN ('erase', 'anonymise', 'keep')),
    state        text   NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'purging', 'done', 'held')),
    bucket       text,
    object_key   text,
    PRIMARY KEY (request_id, table_name, record_key)
);
CREATE INDEX IF NOT EXISTS erasure_work_pending_idx ON governance.erasure_work (request_id, table_name, record_key)
    WHERE state IN ('pending', 'purging');

-- Who an erasure request was about when it was planned, as the ledger names a person (account ids
-- and e-mail pseudonyms, no address): the independent check looks for them after the erasure,
-- when the account that joined an id to its address is gone.
CREATE TABLE IF NOT EXISTS governance.erasure_subjects (
    request_id     bigint   PRIMARY KEY REFERENCES governance.subject_requests (request_id),
    account_ids    bigint[] NOT NULL,
    email_sha256s  text[]   NOT NULL
);

-- A person hold names an address by its pseudonym (RET-8); the hold logic (governance.sweep.held)
-- finds the held address's accounts by it. Without this index that is a SHA-256 of every account
-- at every sweep and every erasure (1,000,000 accounts: 2.6 s; with it, milliseconds). Here, not
-- in 010_shop.sql: governance.email_pseudonym is created by 020_governance.sql.
CREATE INDEX IF NOT EXISTS accounts_email_pseudonym_idx ON shop.accounts (governance.email_pseudonym(email));
