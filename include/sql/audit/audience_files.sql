-- Audit of RET-9 for the advertising audience files (TP-1, CAT-2): a file in the drop is a copy of
-- consenting persons' addresses (SHA-256 pseudonyms); it may be kept only for a window (decision
-- RET-9-audiences) after it was written. Its object is checked against the listing of the drop's
-- bucket by the object-store check (audience-files-object-store).
SELECT 'audience-files'::text AS rule_id,
       f.file_id AS record_id,
       floor(extract(epoch FROM %(now)s::timestamptz
             - ((f.created_at AT TIME ZONE 'UTC' + %(window__audience_files)s::interval) AT TIME ZONE 'UTC')))::bigint
           AS overdue_seconds,
       EXISTS (
         SELECT 1 FROM governance.holds_at(%(now)s::timestamptz) h
         WHERE (h.scope = 'rule' AND h.rule_id = 'audience-files')
            OR (h.scope = 'record' AND h.table_name = 'governance.audience_files'
                AND h.record_key = f.file_id::text)) AS held
FROM governance.audience_files f
WHERE (f.created_at AT TIME ZONE 'UTC' + %(window__audience_files)s::interval) AT TIME ZONE 'UTC' <= %(now)s::timestamptz
