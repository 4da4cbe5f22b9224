-- Audit of RET-2 (CAT-2): products saved by a deleted account, 2 years after the deletion.
SELECT 'deleted-account-saved-products'::text AS rule_id,
       p.saved_product_id AS record_id,
       floor(extract(epoch FROM %(now)s::timestamptz
             - ((a.deleted_at AT TIME ZONE 'UTC' + %(window__deleted_account_saved_products)s::interval) AT TIME ZONE 'UTC')))::bigint
           AS overdue_seconds,
       EXISTS (
         SELECT 1 FROM governance.holds_at(%(now)s::timestamptz) h
         WHERE (h.scope = 'rule' AND h.rule_id = 'deleted-account-saved-products')
            OR (h.scope = 'record' AND h.table_name = 'shop.saved_products' AND h.record_key = p.saved_product_id::text)
            OR (h.scope = 'person' AND (h.account_id = a.account_id OR h.email_sha256 = governance.email_pseudonym(a.email)))) AS held
FROM shop.saved_products p
JOIN shop.accounts a ON a.account_id = p.account_id
WHERE a.deleted_at IS NOT NULL
  AND (a.deleted_at AT TIME ZONE 'UTC' + %(window__deleted_account_saved_products)s::interval) AT TIME ZONE 'UTC' <= %(now)s::timestamptz
