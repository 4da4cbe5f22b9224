-- Rights check (#11 item 7; TP-1, MKT-1, OBJ-1, CON-1, RES-1): nobody who objected, withdrew consent
-- or is restricted is in an advertising audience file still in the drop, or still subscribed to the
-- newsletter. Written independently of the export's selection (include/sql/audiences/): the files'
-- contents are read from the object store itself into pg_temp.audience_members (file_id,
-- email_sha256) by governance.audit.audience_check before this runs.
--
-- Returns one row per offending record: (check_id text, record_id bigint, offending bigint) --
-- an audience file id or a subscription id, and how many persons in it should not be there. No
-- personal data. Parameters: %(now)s (the instant audited), %(newsletter)s (the newsletter purpose).
--
-- objectors-in-audience: a member whose address (or whose account, by its address) had a switch-off
--   of the file's purpose in force when the file was made (processing_off_at(as_of));
-- unconsented-in-audience: a member with no live account holding a consent to the purpose in force
--   when the file was made (never consented, or withdrew in the shop);
-- objectors-subscribed: a subscription not ended although a switch-off of the newsletter is in force
--   now for its account, its address, or the account of its address.
WITH files AS (
    SELECT f.file_id, f.purpose, f.as_of
    FROM governance.audience_files f
    WHERE f.state = 'stored'
),
off_then AS (
    SELECT f.file_id, o.account_id, o.email_sha256
    FROM files f CROSS JOIN LATERAL governance.processing_off_at(f.as_of) o
    WHERE o.purpose = f.purpose
),
off_then_hashes AS (
    SELECT file_id, email_sha256 FROM off_then WHERE email_sha256 IS NOT NULL
    UNION
    SELECT t.file_id, governance.email_pseudonym(a.email)
    FROM off_then t JOIN shop.accounts a ON a.account_id = t.account_id
),
consented AS (
    SELECT f.file_id, governance.email_pseudonym(a.email) AS email_sha256
    FROM files f
    JOIN shop.marketing_consents c ON c.purpose = f.purpose AND c.given_at <= f.as_of
                                  AND (c.withdrawn_at IS NULL OR c.withdrawn_at > f.as_of)
    JOIN shop.accounts a ON a.account_id = c.account_id AND (a.deleted_at IS NULL OR a.deleted_at > f.as_of)
),
off_now AS (
    SELECT o.account_id, o.email_sha256
    FROM governance.processing_off_at(%(now)s::timestamptz) o
    WHERE o.purpose = %(newsletter)s
),
off_now_hashes AS (
    SELECT email_sha256 FROM off_now WHERE email_sha256 IS NOT NULL
    UNION
    SELECT governance.email_pseudonym(a.email) FROM off_now o JOIN shop.accounts a ON a.account_id = o.account_id
)
SELECT 'objectors-in-audience'::text AS check_id, m.file_id AS record_id,
       count(DISTINCT m.email_sha256)::bigint AS offending
FROM pg_temp.audience_members m
JOIN off_then_hashes h ON h.file_id = m.file_id AND h.email_sha256 = m.email_sha256
GROUP BY m.file_id
UNION ALL
SELECT 'unconsented-in-audience', m.file_id, count(DISTINCT m.email_sha256)::bigint
FROM pg_temp.audience_members m
WHERE NOT EXISTS (SELECT 1 FROM consented c WHERE c.file_id = m.file_id AND c.email_sha256 = m.email_sha256)
GROUP BY m.file_id
UNION ALL
SELECT 'objectors-subscribed', s.subscription_id, 1::bigint
FROM shop.newsletter_subscriptions s
WHERE (s.unsubscribed_at IS NULL OR s.unsubscribed_at > %(now)s::timestamptz)
  AND s.subscribed_at <= %(now)s::timestamptz
  AND (EXISTS (SELECT 1 FROM off_now o WHERE o.account_id = s.account_id)
       OR governance.email_pseudonym(s.email) IN (SELECT email_sha256 FROM off_now_hashes))
