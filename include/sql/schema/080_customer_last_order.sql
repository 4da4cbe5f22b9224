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
-- none left loses its row. The rows are locked first (an upsert that changes nothing, in key
-- order), so concurrent recounts and inserts of one customer serialise and the recount, a
-- statement of its own, sees what committed before it.
CREATE OR REPLACE FUNCTION governance.recount_customer_last_order(p_customers text[])
RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_customers IS NULL OR cardinality(p_customers) = 0 THEN
        RETURN;
    END IF;
    INSERT INTO governance.customer_last_order AS c (customer, last_placed_at)
    SELECT k, '-infinity' FROM unnest(p_customers) k WHERE k IS NOT NULL ORDER BY k
    ON CONFLICT (customer) DO UPDATE SET last_placed_at = c.last_placed_at;
    WITH counted AS (
        SELECT k AS customer,
               (SELECT max(o.placed_at) FROM shop.orders o
                WHERE governance.order_customer(o.account_id, o.email) = k AND o.anonymised_at IS NULL) AS last
        FROM unnest(p_customers) k WHERE k IS NOT NULL
    ), gone AS (
        DELETE FROM governance.customer_last_order c USING counted n
        WHERE c.customer = n.customer AND n.last IS NULL
    )
    UPDATE governance.customer_last_order c SET last_placed_at = n.last
    FROM counted n WHERE c.customer = n.customer AND n.last IS NOT NULL AND c.last_placed_at <> n.last;
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

-- An update recounts the customers of the rows whose key, placed_at or anonymised_at changed,
-- before and after (an order moved to another customer changes both).
CREATE OR REPLACE FUNCTION governance.customer_last_order_updated()
RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM governance.recount_customer_last_order(array_agg(DISTINCT k ORDER BY k))
    FROM (
        SELECT governance.order_customer(o.account_id, o.email) AS k FROM old_orders o
        WHERE o.anonymised_at IS NULL AND NOT EXISTS (
            SELECT FROM new_orders n WHERE n.order_id = o.order_id AND n.placed_at = o.placed_at
              AND n.anonymised_at IS NULL
              AND governance.order_customer(n.account_id, n.email) = governance.order_customer(o.account_id, o.email))
        UNION
        SELECT governance.order_customer(n.account_id, n.email) FROM new_orders n
        WHERE n.anonymised_at IS NULL AND NOT EXISTS (
            SELECT FROM old_orders o WHERE o.order_id = n.order_id AND o.placed_at = n.placed_at
              AND o.anonymised_at IS NULL
              AND governance.order_customer(o.account_id, o.email) = governance.order_customer(n.account_id, n.email))
    ) changed WHERE k IS NOT NULL;
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
