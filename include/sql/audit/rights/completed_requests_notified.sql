-- Rights check: every completed erasure, account deletion, rectification and restriction told each
-- recipient of a category it changed (TP-5, GDPR art. 19): an outbox notice per recipient.
-- requirements: TP-5, ERA-1, REC-1, RES-1, RET-7
-- on failure: a request's effect committed without its notices: queue them (governance.notices.queue_notices for the request and event) and audit again; see docs/runbook.md 'A rights check failed'
--
-- What a completed request changed, from what it recorded (not from the code that queues notices):
-- an erasure's records erased or anonymised (governance.erasure_work, state done); any other
-- request's evidence naming its changed tables as details.rows_by_table ({table: rows}, rows > 0).
-- The tables' categories and the recipients of each come from the policy (store_categories,
-- recipient_categories, rendered as VALUES lists). A recipient of a changed table's category
-- without an outbox row for the request and the event is a finding.
-- record_id: '<request id>:<recipient id>:<event>' (ids only).
WITH recipients (recipient_id, category) AS (
{{ recipient_categories }}
),
stores (table_name, category) AS (
{{ store_categories }}
),
completed AS (
    SELECT request_id,
           CASE kind WHEN 'account_deletion' THEN 'erasure' ELSE kind END AS event
    FROM governance.subject_requests
    WHERE kind IN ('erasure', 'account_deletion', 'rectification', 'restriction') AND state = 'completed'
      AND closed_at <= %(now)s::timestamptz
),
changed AS (
    SELECT w.request_id, w.table_name
    FROM governance.erasure_work w JOIN completed c ON c.request_id = w.request_id
    WHERE w.disposition IN ('erase', 'anonymise') AND w.state = 'done'
    UNION
    SELECT c.request_id, t.key
    FROM completed c
    JOIN governance.evidence e ON e.run_id = 'request-' || c.request_id
    CROSS JOIN LATERAL jsonb_each(
        CASE WHEN jsonb_typeof(e.details -> 'rows_by_table') = 'object' THEN e.details -> 'rows_by_table'
             ELSE '{}'::jsonb END) AS t
    WHERE jsonb_typeof(t.value) = 'number' AND (t.value)::numeric > 0
),
due AS (
    SELECT DISTINCT ch.request_id, c.event, r.recipient_id
    FROM changed ch
    JOIN completed c ON c.request_id = ch.request_id
    JOIN stores s ON s.table_name = ch.table_name
    JOIN recipients r ON r.category = s.category
)
SELECT 'completed-requests-notified' AS check_id,
       d.request_id || ':' || d.recipient_id || ':' || d.event AS record_id
FROM due d
WHERE NOT EXISTS (
    SELECT 1 FROM governance.recipient_outbox o
    WHERE o.request_id = d.request_id AND o.recipient_id = d.recipient_id AND o.event = d.event)
