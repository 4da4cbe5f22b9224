-- Rights check (#12 item 5): every notice sent to a recipient is acknowledged within the policy's
-- notices.ack_within_days, or compliance was alerted that it was not (TP-5, GDPR art. 19): no
-- completed request whose recipients are not all acknowledged after that many days without an alert.
-- requirements: TP-5
-- on failure: a sent notice is unacknowledged past notices.ack_within_days and nobody was told: rerun the recipient_notices DAG's task ack_overdue so compliance is told, ask the recipient, then `governance notices ack ID --by WHO` or `governance notices retry ID`; see docs/runbook.md 'A rights check failed', notices-acknowledged
--
-- A notice in state 'sent' (not acknowledged, not dead), sent longer ago than the window rendered
-- from the policy (marker notice_ack_within, an interval) before the instant audited, whose overdue
-- alert was never sent (ack_overdue_alerted_at IS NULL) is a finding.
-- record_id: 'notice:<notice id>' (ids only).
SELECT 'notices-acknowledged' AS check_id, 'notice:' || o.notice_id AS record_id
FROM governance.recipient_outbox o
WHERE o.state = 'sent'
  AND o.acked_at IS NULL
  AND o.ack_overdue_alerted_at IS NULL
  AND o.sent_at + {{ notice_ack_within }} < %(now)s::timestamptz
