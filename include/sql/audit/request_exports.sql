-- Audit of RET-9 (CAT-7; ACC-1, POR-1): an export archive answering a data-subject request is a
-- copy of the person's data; it may be kept only while its download link can be used, a window
-- (decision RET-9-exports) after the archive was written. Its object is checked against the
-- listing of the exports bucket by the object-store check (request-exports-object-store).
SELECT 'request-exports'::text AS rule_id,
       x.export_id AS record_id,
       floor(extract(epoch FROM %(now)s::timestamptz
             - ((x.created_at AT TIME ZONE 'UTC' + %(window__request_exports)s::interval) AT TIME ZONE 'UTC')))::bigint
           AS overdue_seconds,
       EXISTS (
         SELECT 1 FROM governance.holds_at(%(now)s::timestamptz) h
         WHERE (h.scope = 'rule' AND h.rule_id = 'request-exports')
            OR (h.scope = 'record' AND h.table_name = 'governance.request_exports'
                AND h.record_key = x.export_id::text)) AS held
FROM governance.request_exports x
WHERE (x.created_at AT TIME ZONE 'UTC' + %(window__request_exports)s::interval) AT TIME ZONE 'UTC' <= %(now)s::timestamptz
