COPY (
    WITH off AS MATERIALIZED (
        SELECT o.account_id, o.email_sha256
        FROM governance.processing_off_at(%(now)s::timestamptz) o
        WHERE o.purpose = %(purpose)s
    )
    SELECT p.email
    FROM (
        SELECT governance.email_pseudonym(a.email) AS email
        FROM shop.accounts a
        JOIN governance.audience_notices n
          ON n.account_id = a.account_id AND n.audience_id = %(audience)s
         AND n.notified_at <= %(told_before)s::timestamptz
        WHERE (a.deleted_at IS NULL OR a.deleted_at > %(now)s::timestamptz)
          AND EXISTS (SELECT 1 FROM shop.marketing_consents c
                      WHERE c.account_id = a.account_id AND c.purpose = %(purpose)s
                        AND c.given_at <= %(now)s::timestamptz
                        AND (c.withdrawn_at IS NULL OR c.withdrawn_at > %(now)s::timestamptz))
          AND NOT EXISTS (SELECT 1 FROM off WHERE off.account_id = a.account_id)
        OFFSET 0
    ) p
    WHERE NOT EXISTS (SELECT 1 FROM off WHERE off.email_sha256 = p.email)
    ORDER BY p.email
) TO STDOUT WITH (FORMAT csv, HEADER true)
