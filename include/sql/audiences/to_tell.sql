WITH off AS MATERIALIZED (
    SELECT o.account_id, o.email_sha256
    FROM governance.processing_off_at(%(now)s::timestamptz) o
    WHERE o.purpose = %(purpose)s
)
SELECT p.account_id, p.address
FROM (
    SELECT a.account_id, a.email AS address, governance.email_pseudonym(a.email) AS email
    FROM shop.accounts a
    WHERE (a.deleted_at IS NULL OR a.deleted_at > %(now)s::timestamptz)
      AND EXISTS (SELECT 1 FROM shop.marketing_consents c
                  WHERE c.account_id = a.account_id AND c.purpose = %(purpose)s
                    AND c.given_at <= %(now)s::timestamptz
                    AND (c.withdrawn_at IS NULL OR c.withdrawn_at > %(now)s::timestamptz))
      AND NOT EXISTS (SELECT 1 FROM off WHERE off.account_id = a.account_id)
      AND NOT EXISTS (SELECT 1 FROM governance.audience_notices n
                      WHERE n.account_id = a.account_id AND n.audience_id = %(audience)s)
    OFFSET 0
) p
WHERE NOT EXISTS (SELECT 1 FROM off WHERE off.email_sha256 = p.email)
  AND p.account_id <> ALL (%(skip)s::bigint[])
ORDER BY p.account_id
LIMIT %(limit)s
