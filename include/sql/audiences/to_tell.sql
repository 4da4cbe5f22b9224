WITH off AS MATERIALIZED (
    SELECT o.account_id, o.email_sha256
    FROM governance.processing_off_at(%(now)s::timestamptz) o
    WHERE o.purpose = %(purpose)s
),
off_accounts AS MATERIALIZED (
    SELECT account_id FROM off WHERE account_id IS NOT NULL
    UNION
    SELECT a.account_id FROM off JOIN shop.accounts a ON governance.email_pseudonym(a.email) = off.email_sha256
)
SELECT a.account_id, a.email AS address
FROM shop.accounts a
WHERE (a.deleted_at IS NULL OR a.deleted_at > %(now)s::timestamptz)
  AND EXISTS (SELECT 1 FROM shop.marketing_consents c
              WHERE c.account_id = a.account_id AND c.purpose = %(purpose)s
                AND c.given_at <= %(now)s::timestamptz
                AND (c.withdrawn_at IS NULL OR c.withdrawn_at > %(now)s::timestamptz))
  AND NOT EXISTS (SELECT 1 FROM off_accounts x WHERE x.account_id = a.account_id)
  AND NOT EXISTS (SELECT 1 FROM governance.audience_notices n
                  WHERE n.account_id = a.account_id AND n.audience_id = %(audience)s)
  AND a.account_id <> ALL (%(skip)s::bigint[])
ORDER BY a.account_id
LIMIT %(limit)s
