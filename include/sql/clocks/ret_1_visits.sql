-- RET-1 (CAT-1): a visit's clock is its last activity; kept 24 hours after it.
CREATE OR REPLACE VIEW governance_clocks.ret_1_visits AS
    SELECT v.visit_id AS record_id, v.last_activity_at AS clock
    FROM shop.visits v;
