-- Audit of RET-6 (CAT-6): cookie preferences, a configurable period (decision) after they were given.
SELECT 'cookie-preferences'::text AS rule_id,
       c.preference_id AS record_id,
       floor(extract(epoch FROM %(now)s::timestamptz
             - ((c.given_at AT TIME ZONE 'UTC' + %(window__cookie_preferences)s::interval) AT TIME ZONE 'UTC')))::bigint
           AS overdue_seconds,
       EXISTS (
         SELECT 1 FROM governance.holds_at(%(now)s::timestamptz) h
         WHERE (h.scope = 'rule' AND h.rule_id = 'cookie-preferences')
            OR (h.scope = 'record' AND h.table_name = 'shop.cookie_preferences' AND h.record_key = c.preference_id::text)
            OR (h.scope = 'person' AND (h.account_id = c.account_id OR EXISTS (SELECT 1 FROM shop.accounts ha WHERE ha.account_id = c.account_id AND governance.email_pseudonym(ha.email) = h.email_sha256)))) AS held
FROM shop.cookie_preferences c
WHERE (c.given_at AT TIME ZONE 'UTC' + %(window__cookie_preferences)s::interval) AT TIME ZONE 'UTC' <= %(now)s::timestamptz
