-- Audit of RET-2 (CAT-2): calendar events of a deleted account, 2 years after the deletion.
SELECT 'deleted-account-calendar-events'::text AS rule_id,
       e.event_id AS record_id,
       floor(extract(epoch FROM %(now)s::timestamptz
             - ((a.deleted_at AT TIME ZONE 'UTC' + %(window__deleted_account_calendar_events)s::interval) AT TIME ZONE 'UTC')))::bigint
           AS overdue_seconds,
       EXISTS (
         SELECT 1 FROM governance.holds_at(%(now)s::timestamptz) h
         WHERE (h.scope = 'rule' AND h.rule_id = 'deleted-account-calendar-events')
            OR (h.scope = 'record' AND h.table_name = 'shop.calendar_events' AND h.record_key = e.event_id::text)
            OR (h.scope = 'person' AND (h.account_id = a.account_id OR h.email_sha256 = governance.email_pseudonym(a.email)))) AS held
FROM shop.calendar_events e
JOIN shop.accounts a ON a.account_id = e.account_id
WHERE a.deleted_at IS NOT NULL
  AND (a.deleted_at AT TIME ZONE 'UTC' + %(window__deleted_account_calendar_events)s::interval) AT TIME ZONE 'UTC' <= %(now)s::timestamptz
