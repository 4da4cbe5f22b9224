-- Audit of RET-4 (CAT-4): newsletter subscriptions (and their events), 2 years after the last
-- communication with the person; bulk sends do not renew it (RET-10).
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
SELECT 'newsletter-subscriptions'::text AS rule_id,
       s.subscription_id AS record_id,
       floor(extract(epoch FROM %(now)s::timestamptz
             - ((t.at AT TIME ZONE 'UTC' + %(window__newsletter_subscriptions)s::interval) AT TIME ZONE 'UTC')))::bigint
           AS overdue_seconds,
       EXISTS (
         SELECT 1 FROM governance.holds_at(%(now)s::timestamptz) h
         WHERE (h.scope = 'rule' AND h.rule_id = 'newsletter-subscriptions')
            OR (h.scope = 'record' AND h.table_name = 'shop.newsletter_subscriptions' AND h.record_key = s.subscription_id::text)
            OR (h.scope = 'person' AND (h.account_id = s.account_id OR h.email_sha256 = governance.email_pseudonym(s.email)
                 OR EXISTS (SELECT 1 FROM shop.accounts ha WHERE ha.account_id = s.account_id AND governance.email_pseudonym(ha.email) = h.email_sha256)
                 OR EXISTS (SELECT 1 FROM shop.accounts ha WHERE ha.account_id = h.account_id AND lower(btrim(ha.email)) = lower(btrim(s.email)))))) AS held
FROM shop.newsletter_subscriptions s
JOIN last_touch t ON t.person = lower(btrim(s.email))
WHERE (t.at AT TIME ZONE 'UTC' + %(window__newsletter_subscriptions)s::interval) AT TIME ZONE 'UTC' <= %(now)s::timestamptz
