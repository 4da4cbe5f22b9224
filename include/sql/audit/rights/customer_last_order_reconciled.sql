-- Reconciliation (#14 item 5, ADR 0011): the RET-3 clock the sweep reads, kept per customer in
-- governance.customer_last_order by triggers on shop.orders, equals the orders themselves: one row
-- per customer with orders not yet anonymised, holding the latest placed_at of those orders.
-- requirements: RET-3, RET-10
-- on failure: the kept RET-3 clock has drifted from the orders (triggers disabled, a bulk load with session_replication_role = replica, a restore): run `SELECT governance.rebuild_customer_last_order();`, rerun the audit, then find what bypassed the triggers; see docs/runbook.md 'A rights check failed', customer-last-order-reconciled
--
-- Written from the orders here, not from the functions that keep the table: a customer is the
-- account, or for an order without one the trimmed, lower-cased address, as the table's key
-- spells them ('a' || account id, 'g' || sha256 hex of the address).
-- record_id: 'order:<lowest order id of the customer>:missing' (no row kept) or ':clock' (another
-- clock kept), 'kept:<tuple id>:extra' (a row for no customer with live orders): ids only.
WITH customers AS (
    SELECT CASE WHEN o.account_id IS NOT NULL THEN 'a' || o.account_id::text
                ELSE 'g' || encode(sha256(convert_to(lower(btrim(o.email)), 'UTF8')), 'hex') END AS customer,
           max(o.placed_at) AS last_placed_at,
           min(o.order_id) AS first_order
    FROM shop.orders o
    WHERE o.anonymised_at IS NULL AND (o.account_id IS NOT NULL OR o.email IS NOT NULL)
    GROUP BY 1
)
SELECT 'customer-last-order-reconciled' AS check_id,
       CASE WHEN k.customer IS NULL THEN 'order:' || c.first_order || ':missing'
            WHEN c.customer IS NULL THEN 'kept:' || k.ctid::text || ':extra'
            ELSE 'order:' || c.first_order || ':clock' END AS record_id
FROM customers c
FULL JOIN governance.customer_last_order k ON k.customer = c.customer
WHERE k.customer IS NULL OR c.customer IS NULL OR k.last_placed_at <> c.last_placed_at
