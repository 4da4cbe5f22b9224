-- Audit of RET-1 (CAT-1): a visit may be kept 24 hours after its last activity.
SELECT 'visit-data'::text AS rule_id,
       v.visit_id AS record_id,
       floor(extract(epoch FROM %(now)s::timestamptz
             - ((v.last_activity_at AT TIME ZONE 'UTC' + %(window__visit_data)s::interval) AT TIME ZONE 'UTC')))::bigint
           AS overdue_seconds,
       EXISTS (
         SELECT 1 FROM governance.holds_at(%(now)s::timestamptz) h
         WHERE (h.scope = 'rule' AND h.rule_id = 'visit-data')
            OR (h.scope = 'record' AND h.table_name = 'shop.visits' AND h.record_key = v.visit_id::text)) AS held
FROM shop.visits v
WHERE (v.last_activity_at AT TIME ZONE 'UTC' + %(window__visit_data)s::interval) AT TIME ZONE 'UTC' <= %(now)s::timestamptz
