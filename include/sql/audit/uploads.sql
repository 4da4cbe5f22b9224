-- Audit of RET-5a..d (CAT-5): an upload is overdue when every rule that applies to it has expired
-- (the latest expiry wins, RET-10). It is reported under the rule whose expiry is the latest.
--   RET-5a ordered-uploads:          60 days after each order containing it
--   RET-5b saved-uploads:            2 years after the save or the account's latest order since
--   RET-5c guest-uploads:            90 days after upload, no account
--   RET-5d unsaved-account-uploads:  decision window after upload, account, never saved
WITH expiry AS (
    SELECT olu.upload_id, 'ordered-uploads'::text AS rule_id, 1 AS rank,
           (o.placed_at AT TIME ZONE 'UTC' + %(window__ordered_uploads)s::interval) AT TIME ZONE 'UTC' AS expires_at
    FROM shop.order_line_uploads olu
    JOIN shop.order_lines ol ON ol.order_line_id = olu.order_line_id
    JOIN shop.orders o ON o.order_id = ol.order_id
    UNION ALL
    SELECT spu.upload_id, 'saved-uploads', 2,
           (greatest(sp.saved_at, coalesce(last_order.placed_at, sp.saved_at))
               AT TIME ZONE 'UTC' + %(window__saved_uploads)s::interval) AT TIME ZONE 'UTC'
    FROM shop.saved_product_uploads spu
    JOIN shop.saved_products sp ON sp.saved_product_id = spu.saved_product_id
    -- the account's latest order, aggregated once (a per-row subquery scanned shop.orders per upload)
    LEFT JOIN (SELECT o.account_id, max(o.placed_at) AS placed_at
               FROM shop.orders o WHERE o.account_id IS NOT NULL GROUP BY o.account_id) last_order
           ON last_order.account_id = sp.account_id
    UNION ALL
    SELECT u.upload_id, 'guest-uploads', 3,
           (u.uploaded_at AT TIME ZONE 'UTC' + %(window__guest_uploads)s::interval) AT TIME ZONE 'UTC'
    FROM shop.uploads u WHERE u.account_id IS NULL
    UNION ALL
    SELECT u.upload_id, 'unsaved-account-uploads', 4,
           (u.uploaded_at AT TIME ZONE 'UTC' + %(window__unsaved_account_uploads)s::interval) AT TIME ZONE 'UTC'
    FROM shop.uploads u
    WHERE u.account_id IS NOT NULL
      AND u.upload_id NOT IN (SELECT upload_id FROM shop.saved_product_uploads)
), governing AS (
    SELECT DISTINCT ON (upload_id) upload_id, rule_id, expires_at
    FROM expiry
    ORDER BY upload_id, expires_at DESC, rank
), applicable AS (
    SELECT upload_id, array_agg(DISTINCT rule_id) AS rule_ids FROM expiry GROUP BY upload_id
)
SELECT g.rule_id,
       g.upload_id AS record_id,
       floor(extract(epoch FROM %(now)s::timestamptz - g.expires_at))::bigint AS overdue_seconds,
       EXISTS (
         SELECT 1 FROM governance.holds_at(%(now)s::timestamptz) h
         -- a hold on any rule that applies to the upload keeps it: removal needs every rule to agree
         WHERE (h.scope = 'rule' AND h.rule_id = ANY (a.rule_ids))
            OR (h.scope = 'record' AND h.table_name = 'shop.uploads' AND h.record_key = u.upload_id::text)
            OR (h.scope = 'person' AND (h.account_id = u.account_id OR EXISTS (SELECT 1 FROM shop.accounts ha WHERE ha.account_id = u.account_id AND governance.email_pseudonym(ha.email) = h.email_sha256)))) AS held
FROM governing g
JOIN applicable a ON a.upload_id = g.upload_id
JOIN shop.uploads u ON u.upload_id = g.upload_id
WHERE g.expires_at <= %(now)s::timestamptz
