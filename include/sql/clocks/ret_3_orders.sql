-- RET-3 (CAT-3), per customer (RET-10): every order of a customer shares the clock of that
-- customer's most recent order. A customer is an account, or, for orders without an account,
-- the case-insensitive, trimmed e-mail address. Anonymised orders (RET-8) are never selected again.
CREATE OR REPLACE VIEW governance_clocks.ret_3_orders AS
    SELECT o.order_id AS record_id,
           max(o.placed_at) OVER (PARTITION BY o.account_id,
                                  CASE WHEN o.account_id IS NULL THEN lower(btrim(o.email)) END) AS clock
    FROM shop.orders o
    WHERE o.anonymised_at IS NULL;
