-- RET-9 for the recipients' notices (#12): once a notice is acknowledged, its pseudonyms and order
-- ids (pseudonymous personal data kept for retries) have a window (policy `decisions: RET-9-notices`);
-- after it they are removed (`payload_removed_at`) and the row stays, without them, as the proof the
-- recipient was told (TP-5). Only an acknowledged notice loses its payload.
ALTER TABLE governance.recipient_outbox ADD COLUMN IF NOT EXISTS payload_removed_at timestamptz;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'recipient_outbox_payload_removed_check'
                   AND conrelid = 'governance.recipient_outbox'::regclass) THEN
        ALTER TABLE governance.recipient_outbox DROP CONSTRAINT IF EXISTS recipient_outbox_subject_pseudonyms_check;
        ALTER TABLE governance.recipient_outbox ADD CONSTRAINT recipient_outbox_subject_pseudonyms_check CHECK (
            payload_removed_at IS NOT NULL
            OR array_to_string(subject_pseudonyms, ',') ~ '^[0-9a-f]{64}(,[0-9a-f]{64})*$');
        ALTER TABLE governance.recipient_outbox ADD CONSTRAINT recipient_outbox_payload_removed_check CHECK (
            payload_removed_at IS NULL
            OR (state = 'acknowledged' AND cardinality(subject_pseudonyms) = 0 AND cardinality(order_ids) = 0));
    END IF;
END
$$;
