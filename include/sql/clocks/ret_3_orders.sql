-- RET-3 (CAT-3), per customer (RET-10): every order of a customer shares the clock of that
-- customer's most recent order. A customer is an account, or, for orders without an account,
-- the case-insensitive, trimmed e-mail address. Anonymised orders (RET-8) are never selected again.
--
-- chunk: a hash of the customer, first in the window's PARTITION BY (which leaves the clock
-- unchanged: it is a function of the customer). The sweep computes the due set in chunks,
-- mod(chunk, N) = k; PostgreSQL pushes that qual below the window function because chunk is in
-- its PARTITION BY, so each chunk is a short transaction (the clock view contract: README.md here).
CREATE OR REPLACE VIEW governance_clocks.ret_3_orders AS
    SELECT o.order_id AS record_id,
           max(o.placed_at) OVER (PARTITION BY o.chunk, o.account_id, o.guest) AS clock,
           o.chunk
    FROM (SELECT o.order_id, o.placed_at, o.account_id,
                 CASE WHEN o.account_id IS NULL THEN lower(btrim(o.email)) END AS guest,
                 CASE WHEN o.account_id IS NULL THEN hashtext(lower(btrim(o.email)))
                      ELSE hashint8(o.account_id) END AS chunk
          FROM shop.orders o
          WHERE o.anonymised_at IS NULL) o;
