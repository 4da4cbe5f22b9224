-- Audit of RET-3 (CAT-3), anonymised per RET-8: an order not yet anonymised is overdue when its
-- customer's most recent order is 2 years old. The customer is the account, or for orders without
-- an account the trimmed, case-insensitive e-mail address (RET-10).
WITH customer_last_order AS (
    SELECT coalesce('account:' || o.account_id::text, 'email:' || lower(btrim(o.email))) AS customer,
           max(o.placed_at) AS last_placed_at
    FROM shop.orders o
    WHERE o.anonymised_at IS NULL
    GROUP BY 1
)
SELECT 'order-records'::text AS rule_id,
       o.order_id AS record_id,
       floor(extract(epoch FROM %(now)s::timestamptz
             - ((c.last_placed_at AT TIME ZONE 'UTC' + %(window__order_records)s::interval) AT TIME ZONE 'UTC')))::bigint
           AS overdue_seconds,
       EXISTS (
         SELECT 1 FROM governance.holds_at(%(now)s::timestamptz) h
         WHERE (h.scope = 'rule' AND h.rule_id = 'order-records')
            OR (h.scope = 'record' AND h.table_name = 'shop.orders' AND h.record_key = o.order_id::text)
            OR (h.scope = 'person' AND (h.account_id = o.account_id OR h.email_sha256 = governance.email_pseudonym(o.email)
                 OR EXISTS (SELECT 1 FROM shop.accounts ha WHERE ha.account_id = o.account_id AND governance.email_pseudonym(ha.email) = h.email_sha256)
                 OR EXISTS (SELECT 1 FROM shop.accounts ha WHERE ha.account_id = h.account_id AND lower(btrim(ha.email)) = lower(btrim(o.email)))))) AS held
FROM shop.orders o
JOIN customer_last_order c
  ON c.customer = coalesce('account:' || o.account_id::text, 'email:' || lower(btrim(o.email)))
WHERE o.anonymised_at IS NULL
  AND (c.last_placed_at AT TIME ZONE 'UTC' + %(window__order_records)s::interval) AT TIME ZONE 'UTC' <= %(now)s::timestamptz
