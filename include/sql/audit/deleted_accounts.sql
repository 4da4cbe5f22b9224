-- Audit of RET-2 (CAT-2): a deleted account's data may be kept 2 years after the deletion.
SELECT 'deleted-accounts'::text AS rule_id,
       a.account_id AS record_id,
       floor(extract(epoch FROM %(now)s::timestamptz
             - ((a.deleted_at AT TIME ZONE 'UTC' + %(window__deleted_accounts)s::interval) AT TIME ZONE 'UTC')))::bigint
           AS overdue_seconds,
       EXISTS (
         SELECT 1 FROM governance.holds_at(%(now)s::timestamptz) h
         WHERE (h.scope = 'rule' AND h.rule_id = 'deleted-accounts')
            OR (h.scope = 'record' AND h.table_name = 'shop.accounts' AND h.record_key = a.account_id::text)
            OR (h.scope = 'person' AND (h.account_id = a.account_id OR h.email_sha256 = governance.email_pseudonym(a.email)
                 OR EXISTS (SELECT 1 FROM shop.accounts ha WHERE ha.account_id = h.account_id AND lower(btrim(ha.email)) = lower(btrim(a.email)))))) AS held
FROM shop.accounts a
WHERE a.deleted_at IS NOT NULL
  AND (a.deleted_at AT TIME ZONE 'UTC' + %(window__deleted_accounts)s::interval) AT TIME ZONE 'UTC' <= %(now)s::timestamptz
