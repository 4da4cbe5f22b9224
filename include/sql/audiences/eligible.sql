-- The accounts an audience may include at %(now)s, but for the notice (TP-3): live, consented to
-- %(purpose)s and not withdrawn (shop.marketing_consents), and nothing in the processing register
-- switches the purpose off for them, by account id or by the pseudonym of their address. The CTE
-- `eligible (account_id, email)`, shared by export.sql and to_tell.sql (selection.py puts it in
-- place of their `{{ eligible }}`).
WITH off AS MATERIALIZED (
    SELECT o.account_id, o.email_sha256
    FROM governance.processing_off_at(%(now)s::timestamptz) o
    WHERE o.purpose = %(purpose)s
),
-- the accounts switched off, by id or by the pseudonym of their address (an index lookup each)
off_accounts AS MATERIALIZED (
    SELECT account_id FROM off WHERE account_id IS NOT NULL
    UNION
    SELECT a.account_id FROM off JOIN shop.accounts a ON governance.email_pseudonym(a.email) = off.email_sha256
),
eligible AS (
    SELECT a.account_id, a.email
    FROM shop.accounts a
    WHERE (a.deleted_at IS NULL OR a.deleted_at > %(now)s::timestamptz)
      AND EXISTS (SELECT 1 FROM shop.marketing_consents c
                  WHERE c.account_id = a.account_id AND c.purpose = %(purpose)s
                    AND c.given_at <= %(now)s::timestamptz
                    AND (c.withdrawn_at IS NULL OR c.withdrawn_at > %(now)s::timestamptz))
      AND NOT EXISTS (SELECT 1 FROM off_accounts x WHERE x.account_id = a.account_id)
)
