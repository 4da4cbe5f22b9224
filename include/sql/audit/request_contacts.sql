-- Audit of RET-9 (CAT-7; REQ-1): the address to answer a data-subject request to is personal data
-- kept apart from the ledger, and only as long as the request needs it: while the request is open,
-- and a window (decision RET-9-contacts) after it was completed, refused or withdrawn.
SELECT 'request-contacts'::text AS rule_id,
       c.request_id AS record_id,
       floor(extract(epoch FROM %(now)s::timestamptz
             - ((r.closed_at AT TIME ZONE 'UTC' + %(window__request_contacts)s::interval) AT TIME ZONE 'UTC')))::bigint
           AS overdue_seconds,
       EXISTS (
         SELECT 1 FROM governance.holds_at(%(now)s::timestamptz) h
         WHERE (h.scope = 'rule' AND h.rule_id = 'request-contacts')
            OR (h.scope = 'record' AND h.table_name = 'governance.request_contacts'
                AND h.record_key = c.request_id::text)
            OR (h.scope = 'person' AND (h.email_sha256 = governance.email_pseudonym(c.reply_to)
                                     OR EXISTS (SELECT 1 FROM shop.accounts ha WHERE ha.account_id = h.account_id AND lower(btrim(ha.email)) = lower(btrim(c.reply_to)))))) AS held
FROM governance.request_contacts c
JOIN governance.subject_requests r ON r.request_id = c.request_id
WHERE r.state IN ('completed', 'refused', 'withdrawn')
  AND (r.closed_at AT TIME ZONE 'UTC' + %(window__request_contacts)s::interval) AT TIME ZONE 'UTC' <= %(now)s::timestamptz
