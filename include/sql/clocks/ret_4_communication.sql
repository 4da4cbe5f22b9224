-- RET-4 (CAT-4): 2 years after the last communication with the person (RET-10): a message from
-- or to them, a newsletter sign-up or confirmation, or their own engagement (open, click).
-- Bulk newsletter sends do not renew it. The person is the normalised e-mail address.
CREATE OR REPLACE VIEW governance_clocks.ret_4_last_communication AS
    SELECT person, max(at) AS last_communication
    FROM (
        SELECT lower(btrim(m.email)) AS person, m.sent_at AS at FROM shop.contact_messages m
        UNION ALL
        SELECT lower(btrim(s.email)), s.subscribed_at FROM shop.newsletter_subscriptions s
        UNION ALL
        SELECT lower(btrim(s.email)), s.confirmed_at FROM shop.newsletter_subscriptions s
        WHERE s.confirmed_at IS NOT NULL
        UNION ALL
        SELECT lower(btrim(s.email)), e.occurred_at
        FROM shop.newsletter_events e
        JOIN shop.newsletter_subscriptions s ON s.subscription_id = e.subscription_id
        WHERE e.kind IN ('open', 'click')
    ) communication
    GROUP BY person;

CREATE OR REPLACE VIEW governance_clocks.ret_4_contact_messages AS
    SELECT m.message_id AS record_id, l.last_communication AS clock
    FROM shop.contact_messages m
    JOIN governance_clocks.ret_4_last_communication l ON l.person = lower(btrim(m.email));

CREATE OR REPLACE VIEW governance_clocks.ret_4_newsletter_subscriptions AS
    SELECT s.subscription_id AS record_id, l.last_communication AS clock
    FROM shop.newsletter_subscriptions s
    JOIN governance_clocks.ret_4_last_communication l ON l.person = lower(btrim(s.email));
