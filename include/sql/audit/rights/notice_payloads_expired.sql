-- Rights check (#12 item 5): an acknowledged notice keeps its payload (the recipients' pseudonyms and
-- order ids, pseudonymous personal data kept only for retries) no longer than the policy's
-- decisions: RET-9-notices window after its acknowledgement (RET-9, TP-5); the row stays as the proof.
-- requirements: RET-9, TP-5
-- on failure: an acknowledged notice still holds its pseudonyms or order ids past the RET-9-notices window: rerun the recipient_notices DAG's task payload_window (governance.notices.payloads.expire_payloads) and audit again; see docs/runbook.md 'A rights check failed', notice-payloads-expired
--
-- A notice acknowledged longer ago than the window (marker notice_payload_window, an interval
-- rendered from the policy) before the instant audited, whose payload was not removed
-- (payload_removed_at IS NULL) or still has a pseudonym or an order id, is a finding.
-- record_id: 'notice:<notice id>' (ids only).
SELECT 'notice-payloads-expired' AS check_id, 'notice:' || o.notice_id AS record_id
FROM governance.recipient_outbox o
WHERE o.state = 'acknowledged'
  AND o.acked_at + {{ notice_payload_window }} < %(now)s::timestamptz
  AND (o.payload_removed_at IS NULL OR cardinality(o.subject_pseudonyms) > 0 OR cardinality(o.order_ids) > 0)
