-- RET-6 (CAT-6, decision): a configurable period from when the preference was given.
CREATE OR REPLACE VIEW governance_clocks.ret_6_cookie_preferences AS
    SELECT c.preference_id AS record_id, c.given_at AS clock
    FROM shop.cookie_preferences c;
