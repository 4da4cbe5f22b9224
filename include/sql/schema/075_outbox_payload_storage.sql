-- The recipients' notices (TP-5, #12): a notice's payload, the pseudonyms and order ids, is kept
-- uncompressed (out of line when large): a sweep batch's retention_ended notice names up to
-- notices.retention_records_per_notice records, and pglz compressing such an array cost more than
-- the rest of queueing it (bench/README.md, "Recipient notices"). The payload is short-lived
-- (RET-9-notices removes it after the acknowledgement), so the space does not matter. Idempotent.
ALTER TABLE governance.recipient_outbox ALTER COLUMN subject_pseudonyms SET STORAGE EXTERNAL;
ALTER TABLE governance.recipient_outbox ALTER COLUMN order_ids SET STORAGE EXTERNAL;
