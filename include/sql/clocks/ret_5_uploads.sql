-- RET-5a..d (CAT-5): one view per rule, each mapping an upload to the clock that rule gives it.
-- An upload may appear under several rules (and several times under one); the sweep keeps it
-- until every rule that applies has expired: the latest expiry wins (RET-10).

-- RET-5a: part of an ordered product: 60 days after each order containing it, account or not.
CREATE OR REPLACE VIEW governance_clocks.ret_5a_ordered_uploads AS
    SELECT olu.upload_id AS record_id, o.placed_at AS clock
    FROM shop.order_line_uploads olu
    JOIN shop.order_lines ol ON ol.order_line_id = olu.order_line_id
    JOIN shop.orders o ON o.order_id = ol.order_id;

-- RET-5b: saved in a product of an account: 2 years from the save, renewed by every later
-- order of that account.
CREATE OR REPLACE VIEW governance_clocks.ret_5b_saved_uploads AS
    SELECT spu.upload_id AS record_id,
           greatest(sp.saved_at, last_order.placed_at) AS clock
    FROM shop.saved_product_uploads spu
    JOIN shop.saved_products sp ON sp.saved_product_id = spu.saved_product_id
    LEFT JOIN LATERAL (
        SELECT max(o.placed_at) AS placed_at FROM shop.orders o WHERE o.account_id = sp.account_id
    ) last_order ON true;

-- RET-5c: uploaded without an account: 90 days from the upload.
CREATE OR REPLACE VIEW governance_clocks.ret_5c_guest_uploads AS
    SELECT u.upload_id AS record_id, u.uploaded_at AS clock
    FROM shop.uploads u
    WHERE u.account_id IS NULL;

-- RET-5d (decision): uploaded with an account, never saved as a product: as RET-5c.
CREATE OR REPLACE VIEW governance_clocks.ret_5d_unsaved_account_uploads AS
    SELECT u.upload_id AS record_id, u.uploaded_at AS clock
    FROM shop.uploads u
    WHERE u.account_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM shop.saved_product_uploads spu WHERE spu.upload_id = u.upload_id);
