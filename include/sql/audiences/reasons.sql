WITH off AS MATERIALIZED (
    SELECT o.effect, o.account_id, o.email_sha256,
           CASE o.effect WHEN 'objected' THEN 1 WHEN 'withdrawn' THEN 2 ELSE 3 END AS rank
    FROM governance.processing_off_at(%(now)s::timestamptz) o
    WHERE o.purpose = %(purpose)s
),
by_account AS (SELECT account_id, min(rank) AS r FROM off WHERE account_id IS NOT NULL GROUP BY 1),
by_address AS (SELECT email_sha256, min(rank) AS r FROM off WHERE email_sha256 IS NOT NULL GROUP BY 1),
consent AS (
    SELECT c.account_id, bool_or(c.withdrawn_at IS NULL OR c.withdrawn_at > %(now)s::timestamptz) AS active
    FROM shop.marketing_consents c
    WHERE c.purpose = %(purpose)s AND c.given_at <= %(now)s::timestamptz
    GROUP BY 1
),
people AS (
    SELECT a.account_id,
           NOT (a.deleted_at IS NULL OR a.deleted_at > %(now)s::timestamptz) AS deleted,
           c.active, n.notified_at,
           CASE WHEN c.active THEN governance.email_pseudonym(a.email) END AS email
    FROM shop.accounts a
    LEFT JOIN consent c ON c.account_id = a.account_id
    LEFT JOIN governance.audience_notices n ON n.account_id = a.account_id AND n.audience_id = %(audience)s
)
SELECT CASE
         WHEN p.deleted THEN 'deleted'
         WHEN p.active IS NULL THEN 'never_consented'
         WHEN NOT p.active THEN 'withdrawn'
         ELSE CASE least(ba.r, bm.r)
                WHEN 1 THEN 'objected' WHEN 2 THEN 'withdrawn' WHEN 3 THEN 'restricted'
                ELSE CASE WHEN p.notified_at <= %(told_before)s::timestamptz THEN 'included'
                          ELSE 'not_yet_told' END
              END
       END AS reason,
       count(*)
FROM people p
LEFT JOIN by_account ba ON ba.account_id = p.account_id
LEFT JOIN by_address bm ON bm.email_sha256 = p.email
GROUP BY 1
