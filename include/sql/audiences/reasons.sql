WITH off AS MATERIALIZED (
    SELECT o.account_id, o.email_sha256,
           CASE o.effect WHEN 'objected' THEN 1 WHEN 'withdrawn' THEN 2 ELSE 3 END AS rank
    FROM governance.processing_off_at(%(now)s::timestamptz) o
    WHERE o.purpose = %(purpose)s
),
-- each account switched off (by id, or by the pseudonym of its address), with its first effect
off_accounts AS (
    SELECT account_id, min(rank) AS r
    FROM (SELECT account_id, rank FROM off WHERE account_id IS NOT NULL
          UNION ALL
          SELECT a.account_id, off.rank
          FROM off JOIN shop.accounts a ON governance.email_pseudonym(a.email) = off.email_sha256) x
    GROUP BY account_id
),
consent AS (
    SELECT c.account_id, bool_or(c.withdrawn_at IS NULL OR c.withdrawn_at > %(now)s::timestamptz) AS active
    FROM shop.marketing_consents c
    WHERE c.purpose = %(purpose)s AND c.given_at <= %(now)s::timestamptz
    GROUP BY 1
)
SELECT CASE
         WHEN NOT (a.deleted_at IS NULL OR a.deleted_at > %(now)s::timestamptz) THEN 'deleted'
         WHEN c.active IS NULL THEN 'never_consented'
         WHEN NOT c.active THEN 'withdrawn'
         WHEN x.r = 1 THEN 'objected'
         WHEN x.r = 2 THEN 'withdrawn'
         WHEN x.r = 3 THEN 'restricted'
         WHEN n.notified_at <= %(told_before)s::timestamptz THEN 'included'
         ELSE 'not_yet_told'
       END AS reason,
       count(*)
FROM shop.accounts a
LEFT JOIN consent c ON c.account_id = a.account_id
LEFT JOIN off_accounts x ON x.account_id = a.account_id
LEFT JOIN governance.audience_notices n ON n.account_id = a.account_id AND n.audience_id = %(audience)s
GROUP BY 1
