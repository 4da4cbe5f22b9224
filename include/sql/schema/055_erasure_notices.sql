-- The erasure's notices to the recipients (TP-5, ERA-1, RET-7): how each recipient names the person,
-- computed when the erasure records its work (the addresses that find the person go with the
-- erasure) and read at its completion, when the notices are queued in the completion's
-- transaction. Per-recipient keyed pseudonyms only (HMAC-SHA256, governance.notices.pseudonyms),
-- never an address; deleted in that same transaction, once copied into the outbox.
CREATE TABLE IF NOT EXISTS governance.erasure_recipient_names (
    request_id        bigint NOT NULL REFERENCES governance.subject_requests (request_id),
    recipient_id      text   NOT NULL,
    subject_pseudonyms text[] NOT NULL
                      CHECK (array_to_string(subject_pseudonyms, ',') ~ '^[0-9a-f]{64}(,[0-9a-f]{64})*$'),
    pseudonym_key_id  text   NOT NULL CHECK (pseudonym_key_id ~ '^[0-9a-f]{16}$'),
    PRIMARY KEY (request_id, recipient_id)
);
