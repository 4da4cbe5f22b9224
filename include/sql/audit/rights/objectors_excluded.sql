-- Rights check (#11 item 7): nobody who objected, withdrew consent or is restricted is in an
-- advertising audience file still in the drop, or still subscribed to the newsletter.
-- requirements: TP-1, MKT-1, OBJ-1, CON-1, RES-1
-- on failure: an audience file lists someone it must not (or its object is gone), or a subscription of an objector was not ended: stop the advertising_audience DAG; see docs/runbook.md 'A rights check failed', objectors-excluded
--
-- Written independently of the export's selection (include/sql/audiences/): the files' contents
-- are read from the object store itself, before this runs, by the check's preparer
-- (governance.audit.audience_check): pg_temp.audience_files_read (file_id, found) lists the files
-- it saw stored and whether their object was there, pg_temp.audience_members (file_id,
-- email_sha256) their lines.
--
-- record_id (ids only):
-- 'audience-file:<id>:objected'    a member whose address (or whose account, by its address) had a
--                                  switch-off of the file's purpose in force when the file was made;
-- 'audience-file:<id>:unconsented' a member with no live account holding a consent to the purpose
--                                  in force when the file was made (never consented, or withdrew);
-- 'audience-file:<id>:missing'     recorded as stored, but its object is not in the drop;
-- 'subscription:<id>'              a newsletter subscription not ended although a switch-off of a
--                                  purpose whose switch_off names shop.newsletter_subscriptions
--                                  (the policy's purposes, rendered) is in force now for its
--                                  account, its address, or the account of its address.
WITH switched (purpose, table_name) AS (
{{ switch_off_tables }}
),
files AS (
    SELECT f.file_id, f.purpose, f.as_of, r.found
    FROM governance.audience_files f
    JOIN pg_temp.audience_files_read r ON r.file_id = f.file_id
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
    JOIN switched s ON s.purpose = o.purpose AND s.table_name = 'shop.newsletter_subscriptions'
),
off_now_hashes AS (
    SELECT email_sha256 FROM off_now WHERE email_sha256 IS NOT NULL
    UNION
    SELECT governance.email_pseudonym(a.email) FROM off_now o JOIN shop.accounts a ON a.account_id = o.account_id
)
SELECT 'objectors-excluded' AS check_id, 'audience-file:' || m.file_id || ':objected' AS record_id
FROM pg_temp.audience_members m
JOIN off_then_hashes h ON h.file_id = m.file_id AND h.email_sha256 = m.email_sha256
UNION
SELECT 'objectors-excluded', 'audience-file:' || m.file_id || ':unconsented'
FROM pg_temp.audience_members m
JOIN files f ON f.file_id = m.file_id
WHERE NOT EXISTS (SELECT 1 FROM consented c WHERE c.file_id = m.file_id AND c.email_sha256 = m.email_sha256)
UNION
SELECT 'objectors-excluded', 'audience-file:' || f.file_id || ':missing'
FROM files f
WHERE NOT f.found
UNION
SELECT 'objectors-excluded', 'subscription:' || s.subscription_id
FROM shop.newsletter_subscriptions s
WHERE (s.unsubscribed_at IS NULL OR s.unsubscribed_at > %(now)s::timestamptz)
  AND s.subscribed_at <= %(now)s::timestamptz
  AND (EXISTS (SELECT 1 FROM off_now o WHERE o.account_id = s.account_id)
       OR governance.email_pseudonym(s.email) IN (SELECT email_sha256 FROM off_now_hashes))
