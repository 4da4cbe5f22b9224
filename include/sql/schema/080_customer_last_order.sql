-- RET-3 (CAT-3), RET-10: the per-customer clock kept incrementally (issue #14 item 5, ADR 0011).
--
-- Every order of a customer shares the clock of the customer's most recent order that is not yet
-- anonymised (the window of governance_clocks.ret_3_orders). Recomputing that window reads every
-- order; this table keeps its result, one row per customer with live (not anonymised) orders, so
-- the sweep finds the due customers by an index range scan on last_placed_at and their orders by
-- an index on the customer key: work in proportion to the customers due, not to all orders.
--
-- customer: governance.order_customer(account_id, email): 'a' || the account id, or, for an order
-- without an account, 'g' || the pseudonym of the trimmed, lower-cased address (never the address
-- itself). Kept by the statement triggers below on every INSERT, UPDATE, DELETE and TRUNCATE of
-- shop.orders (the sweep's own anonymisation included); governance.rebuild_customer_last_order()
-- rebuilds it from the orders. The audit reconciles it with the orders
-- (include/sql/audit/rights/customer_last_order_reconciled.sql), independently of both.

CREATE OR REPLACE FUNCTION governance.order_customer(p_account_id bigint, p_email text)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p_account_id IS NOT NULL THEN 'a' || p_account_id::text
                WHEN p_email IS NOT NULL THEN 'g' || governance.email_pseudonym(p_email) END
$$;

-- The same key of an order row (what the policy names as the clock's row_key): inlined by the
-- planner into the two-argument form, so the index below serves it.
CREATE OR REPLACE FUNCTION governance.order_customer(o shop.orders)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT governance.order_customer(o.account_id, o.email)
$$;

CREATE TABLE IF NOT EXISTS governance.customer_last_order (
    customer       text        PRIMARY KEY,
    last_placed_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS customer_last_order_placed_idx
    ON governance.customer_last_order (last_placed_at, customer);

-- A customer's live orders by the customer key (the sweep's batches, the triggers' recounts).
CREATE INDEX IF NOT EXISTS orders_customer_idx
    ON shop.orders (governance.order_customer(account_id, email), placed_at) WHERE anonymised_at IS NULL;

-- Recompute the rows of the given customers from their live orders (index above): a customer with
-- none left loses its row. The existing rows are locked first (in key order), so a concurrent
-- recount or insert of one customer waits, and the recount, a statement of its own, sees what
-- committed before it. A customer with no row yet gets one; should a concurrent insert have made
-- it meanwhile, the later of the two clocks stays (each saw orders the other did not).
CREATE OR REPLACE FUNCTION governance.recount_customer_last_order(p_customers text[])
RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_customers IS NULL OR cardinality(p_customers) = 0 THEN
        RETURN;
    END IF;
    PERFORM FROM governance.customer_last_order c WHERE c.customer = ANY(p_customers)
    ORDER BY c.customer FOR UPDATE;
    WITH counted AS (
        SELECT k AS customer,
               (SELECT max(o.placed_at) FROM shop.orders o
                WHERE governance.order_customer(o.account_id, o.email) = k AND o.anonymised_at IS NULL) AS last
        FROM unnest(p_customers) k WHERE k IS NOT NULL
    ), gone AS (
        DELETE FROM governance.customer_last_order c USING counted n
        WHERE c.customer = n.customer AND n.last IS NULL
    ), moved AS (
        UPDATE governance.customer_last_order c SET last_placed_at = n.last
        FROM counted n WHERE c.customer = n.customer AND n.last IS NOT NULL AND c.last_placed_at <> n.last
    )
    INSERT INTO governance.customer_last_order AS c (customer, last_placed_at)
    SELECT n.customer, n.last FROM counted n
    WHERE n.last IS NOT NULL AND NOT EXISTS (SELECT FROM governance.customer_last_order k WHERE k.customer = n.customer)
    ORDER BY n.customer
    ON CONFLICT (customer) DO UPDATE SET last_placed_at = greatest(c.last_placed_at, excluded.last_placed_at);
END
$$;

CREATE OR REPLACE FUNCTION governance.customer_last_order_inserted()
RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO governance.customer_last_order AS c (customer, last_placed_at)
    SELECT governance.order_customer(n.account_id, n.email), max(n.placed_at)
    FROM new_orders n WHERE n.anonymised_at IS NULL AND (n.account_id IS NOT NULL OR n.email IS NOT NULL)
    GROUP BY 1 ORDER BY 1
    ON CONFLICT (customer) DO UPDATE SET last_placed_at = greatest(c.last_placed_at, excluded.last_placed_at);
    RETURN NULL;
END
$$;

-- An update recounts the customers of the rows whose account, address, placed_at or anonymised_at
-- changed, before and after (an order moved to another customer changes both). The live rows
-- before and after are compared as they are (EXCEPT, hashed: transition tables have no statistics,
-- a join of them could be planned as a nested loop), so only the changed rows' keys are computed.
CREATE OR REPLACE FUNCTION governance.customer_last_order_updated()
RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM governance.recount_customer_last_order(array_agg(DISTINCT governance.order_customer(x.account_id, x.email)))
    FROM (
        (SELECT o.order_id, o.account_id, o.email, o.placed_at FROM old_orders o WHERE o.anonymised_at IS NULL
         EXCEPT ALL
         SELECT n.order_id, n.account_id, n.email, n.placed_at FROM new_orders n WHERE n.anonymised_at IS NULL)
        UNION ALL
        (SELECT n.order_id, n.account_id, n.email, n.placed_at FROM new_orders n WHERE n.anonymised_at IS NULL
         EXCEPT ALL
         SELECT o.order_id, o.account_id, o.email, o.placed_at FROM old_orders o WHERE o.anonymised_at IS NULL)
    ) x WHERE x.account_id IS NOT NULL OR x.email IS NOT NULL;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION governance.customer_last_order_deleted()
RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM governance.recount_customer_last_order(array_agg(DISTINCT k ORDER BY k))
    FROM (SELECT governance.order_customer(o.account_id, o.email) AS k FROM old_orders o
          WHERE o.anonymised_at IS NULL) gone WHERE k IS NOT NULL;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION governance.customer_last_order_truncated()
RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM governance.customer_last_order;
    RETURN NULL;
END
$$;

-- Rebuild from the orders (after a restore, a bulk load with triggers off, or a failed
-- reconciliation); returns the customers kept.
CREATE OR REPLACE FUNCTION governance.rebuild_customer_last_order()
RETURNS bigint LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    kept bigint;
BEGIN
    LOCK TABLE governance.customer_last_order IN EXCLUSIVE MODE;
    DELETE FROM governance.customer_last_order;
    INSERT INTO governance.customer_last_order (customer, last_placed_at)
    SELECT governance.order_customer(o.account_id, o.email), max(o.placed_at)
    FROM shop.orders o WHERE o.anonymised_at IS NULL AND (o.account_id IS NOT NULL OR o.email IS NOT NULL)
    GROUP BY 1;
    GET DIAGNOSTICS kept = ROW_COUNT;
    RETURN kept;
END
$$;

CREATE OR REPLACE TRIGGER orders_customer_last_order_insert
    AFTER INSERT ON shop.orders REFERENCING NEW TABLE AS new_orders
    FOR EACH STATEMENT EXECUTE FUNCTION governance.customer_last_order_inserted();
CREATE OR REPLACE TRIGGER orders_customer_last_order_update
    AFTER UPDATE ON shop.orders REFERENCING OLD TABLE AS old_orders NEW TABLE AS new_orders
    FOR EACH STATEMENT EXECUTE FUNCTION governance.customer_last_order_updated();
CREATE OR REPLACE TRIGGER orders_customer_last_order_delete
    AFTER DELETE ON shop.orders REFERENCING OLD TABLE AS old_orders
    FOR EACH STATEMENT EXECUTE FUNCTION governance.customer_last_order_deleted();
CREATE OR REPLACE TRIGGER orders_customer_last_order_truncate
    AFTER TRUNCATE ON shop.orders
    FOR EACH STATEMENT EXECUTE FUNCTION governance.customer_last_order_truncated();

-- Orders that existed before this file was applied.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM governance.customer_last_order) AND EXISTS (SELECT FROM shop.orders) THEN
        PERFORM governance.rebuild_customer_last_order();
    END IF;
END
$$;
