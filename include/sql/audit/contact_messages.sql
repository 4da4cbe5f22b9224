-- Audit of RET-4 (CAT-4): contact messages, 2 years after the last communication with the person
-- (any message from or to them, newsletter sign-up or confirmation, their own opens and clicks;
-- bulk sends do not count, RET-10).
WITH touch AS (
    SELECT lower(btrim(email)) AS person, sent_at AS at FROM shop.contact_messages
    UNION ALL SELECT lower(btrim(email)), subscribed_at FROM shop.newsletter_subscriptions
    UNION ALL SELECT lower(btrim(email)), confirmed_at FROM shop.newsletter_subscriptions WHERE confirmed_at IS NOT NULL
    UNION ALL SELECT lower(btrim(s.email)), e.occurred_at
              FROM shop.newsletter_events e JOIN shop.newsletter_subscriptions s USING (subscription_id)
              WHERE e.kind <> 'send'
), last_touch AS (
    SELECT person, max(at) AS at FROM touch GROUP BY person
)
SELECT 'contact-messages'::text AS rule_id,
       m.message_id AS record_id,
       floor(extract(epoch FROM %(now)s::timestamptz
             - ((t.at AT TIME ZONE 'UTC' + %(window__contact_messages)s::interval) AT TIME ZONE 'UTC')))::bigint
           AS overdue_seconds,
       EXISTS (
         SELECT 1 FROM governance.holds_at(%(now)s::timestamptz) h
         WHERE (h.scope = 'rule' AND h.rule_id = 'contact-messages')
            OR (h.scope = 'record' AND h.table_name = 'shop.contact_messages' AND h.record_key = m.message_id::text)
            OR (h.scope = 'person' AND (h.email_sha256 = governance.email_pseudonym(m.email)
                                     OR EXISTS (SELECT 1 FROM shop.accounts ha WHERE ha.account_id = h.account_id AND lower(btrim(ha.email)) = lower(btrim(m.email)))))) AS held
FROM shop.contact_messages m
JOIN last_touch t ON t.person = lower(btrim(m.email))
WHERE (t.at AT TIME ZONE 'UTC' + %(window__contact_messages)s::interval) AT TIME ZONE 'UTC' <= %(now)s::timestamptz
