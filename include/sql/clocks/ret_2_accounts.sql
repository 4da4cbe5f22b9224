-- RET-2 (CAT-2): the customer relationship ends when the account is deleted; its data goes
-- 2 years after that. Active accounts have no clock and never expire under RET-2.
CREATE OR REPLACE VIEW governance_clocks.ret_2_accounts AS
    SELECT a.account_id AS record_id, a.deleted_at AS clock
    FROM shop.accounts a
    WHERE a.deleted_at IS NOT NULL;

CREATE OR REPLACE VIEW governance_clocks.ret_2_calendar_events AS
    SELECT e.event_id AS record_id, a.deleted_at AS clock
    FROM shop.calendar_events e
    JOIN shop.accounts a ON a.account_id = e.account_id
    WHERE a.deleted_at IS NOT NULL;

CREATE OR REPLACE VIEW governance_clocks.ret_2_saved_products AS
    SELECT p.saved_product_id AS record_id, a.deleted_at AS clock
    FROM shop.saved_products p
    JOIN shop.accounts a ON a.account_id = p.account_id
    WHERE a.deleted_at IS NOT NULL;
