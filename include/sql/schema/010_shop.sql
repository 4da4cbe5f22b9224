-- The reference photo shop: every personal-data category of docs/requirements.md (CAT-1..CAT-6).
-- Applied idempotently (IF NOT EXISTS everywhere); governance.apply_schema runs it in one transaction.
CREATE SCHEMA IF NOT EXISTS shop;

-- CAT-1: use of the site without an account. Range-partitioned hourly on its RET-1 clock
-- (last_activity_at) so that whole expired partitions can be dropped; see governance.ensure_visit_partitions.
CREATE TABLE IF NOT EXISTS shop.visits (
    visit_id          bigint      NOT NULL,
    session_key       uuid        NOT NULL,
    ip_address        inet        NOT NULL,
    country           text,
    region            text,
    language          text,
    basket            jsonb       NOT NULL DEFAULT '[]'::jsonb,
    started_at        timestamptz NOT NULL,
    last_activity_at  timestamptz NOT NULL,
    PRIMARY KEY (visit_id, last_activity_at)
) PARTITION BY RANGE (last_activity_at);
CREATE TABLE IF NOT EXISTS shop.visits_default PARTITION OF shop.visits DEFAULT;
CREATE SEQUENCE IF NOT EXISTS shop.visits_visit_id_seq OWNED BY shop.visits.visit_id;
ALTER TABLE shop.visits ALTER COLUMN visit_id SET DEFAULT nextval('shop.visits_visit_id_seq');

-- CAT-2: the account and its calendar of personal events.
CREATE TABLE IF NOT EXISTS shop.accounts (
    account_id     bigserial PRIMARY KEY,
    email          text        NOT NULL,
    password_hash  text        NOT NULL,
    first_name     text,
    last_name      text,
    preferences    jsonb       NOT NULL DEFAULT '{}'::jsonb,
    other_info     text,
    created_at     timestamptz NOT NULL,
    deleted_at     timestamptz,          -- RET-2 clock: the account was deleted by its owner
    CHECK (deleted_at IS NULL OR deleted_at >= created_at)
);
CREATE INDEX IF NOT EXISTS accounts_deleted_at_idx ON shop.accounts (deleted_at) WHERE deleted_at IS NOT NULL;
-- A data-subject request names a person by address (#10): the account is found by it.
CREATE INDEX IF NOT EXISTS accounts_email_idx ON shop.accounts (lower(btrim(email)));

CREATE TABLE IF NOT EXISTS shop.calendar_events (
    event_id    bigserial PRIMARY KEY,
    account_id  bigint      NOT NULL REFERENCES shop.accounts (account_id) ON DELETE CASCADE,
    title       text        NOT NULL,
    event_date  date        NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS calendar_events_account_idx ON shop.calendar_events (account_id);

-- CAT-3: ordering, delivery, billing and payment. Amounts, dates and product lines are kept
-- anonymised when RET-3 expires (RET-8 decision); every personal column is nullable for that.
CREATE TABLE IF NOT EXISTS shop.orders (
    order_id             bigserial PRIMARY KEY,
    account_id           bigint REFERENCES shop.accounts (account_id) ON DELETE SET NULL,
    email                text,
    first_name           text,
    last_name            text,
    phone                text,
    delivery_street      text,
    delivery_postal_code text,
    delivery_city        text,
    delivery_country     text,
    billing_street       text,
    billing_postal_code  text,
    billing_city         text,
    payment_method       text,
    card_last4           text,
    payment_reference    text,
    total_amount         numeric(12, 2) NOT NULL,
    currency             char(3)        NOT NULL DEFAULT 'NOK',
    placed_at            timestamptz    NOT NULL,
    anonymised_at        timestamptz,   -- RET-8: set once, never selected again
    CHECK (anonymised_at IS NOT NULL OR email IS NOT NULL)
);
CREATE INDEX IF NOT EXISTS orders_account_placed_idx ON shop.orders (account_id, placed_at) WHERE anonymised_at IS NULL;
-- Every order of an account, anonymised or not: the ON DELETE SET NULL of a deleted account (RET-2)
-- and the RET-5b clock (an account's last order) look orders up by account; without it each is a
-- full scan of shop.orders (bench/README.md: the Airflow measurement).
CREATE INDEX IF NOT EXISTS orders_account_idx ON shop.orders (account_id, placed_at);
CREATE INDEX IF NOT EXISTS orders_guest_email_idx ON shop.orders (lower(btrim(email)), placed_at)
    WHERE account_id IS NULL AND anonymised_at IS NULL;
-- A data-subject request (#10, ACC-1) finds a guest's orders by address whatever their state: the
-- index above leaves anonymised orders out, so a person's query cannot use it (governance.person).
CREATE INDEX IF NOT EXISTS orders_guest_address_idx ON shop.orders (lower(btrim(email))) WHERE account_id IS NULL;
-- The planner takes no statistics from a partial index's expression, so without these it guesses
-- 0.5 % of all orders for one address (3,437 of 2,000,000) and plans a person's order lines and
-- uploads as parallel scans: ~30 ms of worker start-up for 0.2 ms of work (bench/README.md, #10).
CREATE STATISTICS IF NOT EXISTS shop.orders_address_stats ON (lower(btrim(email))) FROM shop.orders;

CREATE TABLE IF NOT EXISTS shop.order_lines (
    order_line_id  bigserial PRIMARY KEY,
    order_id       bigint         NOT NULL REFERENCES shop.orders (order_id) ON DELETE CASCADE,
    product_type   text           NOT NULL,   -- print, photo_book, calendar, ...
    quantity       integer        NOT NULL CHECK (quantity > 0),
    unit_price     numeric(12, 2) NOT NULL
);
CREATE INDEX IF NOT EXISTS order_lines_order_idx ON shop.order_lines (order_id);

-- CAT-4: newsletter, contact form and communication.
CREATE TABLE IF NOT EXISTS shop.newsletter_subscriptions (
    subscription_id  bigserial PRIMARY KEY,
    account_id       bigint REFERENCES shop.accounts (account_id) ON DELETE SET NULL,
    email            text        NOT NULL,
    first_name       text,
    last_name        text,
    subscribed_at    timestamptz NOT NULL,
    confirmed_at     timestamptz,
    unsubscribed_at  timestamptz
);
CREATE INDEX IF NOT EXISTS newsletter_subscriptions_email_idx ON shop.newsletter_subscriptions (lower(btrim(email)));
CREATE INDEX IF NOT EXISTS newsletter_subscriptions_account_idx ON shop.newsletter_subscriptions (account_id);  -- ON DELETE SET NULL

-- Engagement by the person renews RET-4; bulk sends alone do not (RET-10).
CREATE TABLE IF NOT EXISTS shop.newsletter_events (
    event_id         bigserial PRIMARY KEY,
    subscription_id  bigint      NOT NULL REFERENCES shop.newsletter_subscriptions (subscription_id) ON DELETE CASCADE,
    kind             text        NOT NULL CHECK (kind IN ('send', 'open', 'click')),
    occurred_at      timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS newsletter_events_subscription_idx ON shop.newsletter_events (subscription_id);

CREATE TABLE IF NOT EXISTS shop.contact_messages (
    message_id  bigserial PRIMARY KEY,
    email       text        NOT NULL,     -- the person's address, also on replies sent to them
    name        text,
    direction   text        NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    subject     text,
    body        text        NOT NULL,
    sent_at     timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS contact_messages_email_idx ON shop.contact_messages (lower(btrim(email)));

-- CAT-5: uploaded photos and texts; the bytes live in the object store under object_key.
-- state: 'stored' -> 'purging' (objects being removed; a tombstone) -> row deleted.
CREATE TABLE IF NOT EXISTS shop.uploads (
    upload_id    bigserial PRIMARY KEY,
    account_id   bigint REFERENCES shop.accounts (account_id) ON DELETE SET NULL,
    kind         text        NOT NULL CHECK (kind IN ('photo', 'text')),
    bucket       text        NOT NULL,
    object_key   text        NOT NULL,
    byte_size    integer     NOT NULL,
    uploaded_at  timestamptz NOT NULL,
    state        text        NOT NULL DEFAULT 'stored' CHECK (state IN ('stored', 'purging')),
    UNIQUE (bucket, object_key)
);
CREATE INDEX IF NOT EXISTS uploads_account_idx ON shop.uploads (account_id);

CREATE TABLE IF NOT EXISTS shop.saved_products (
    saved_product_id  bigserial PRIMARY KEY,
    account_id        bigint      NOT NULL REFERENCES shop.accounts (account_id) ON DELETE CASCADE,
    product_type      text        NOT NULL,
    title             text,
    saved_at          timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS saved_products_account_idx ON shop.saved_products (account_id);

CREATE TABLE IF NOT EXISTS shop.saved_product_uploads (
    saved_product_id  bigint NOT NULL REFERENCES shop.saved_products (saved_product_id) ON DELETE CASCADE,
    upload_id         bigint NOT NULL REFERENCES shop.uploads (upload_id) ON DELETE CASCADE,
    PRIMARY KEY (saved_product_id, upload_id)
);
CREATE INDEX IF NOT EXISTS saved_product_uploads_upload_idx ON shop.saved_product_uploads (upload_id);

-- A photo or text that is part of an ordered product (RET-5a).
CREATE TABLE IF NOT EXISTS shop.order_line_uploads (
    order_line_id  bigint NOT NULL REFERENCES shop.order_lines (order_line_id) ON DELETE CASCADE,
    upload_id      bigint NOT NULL REFERENCES shop.uploads (upload_id) ON DELETE CASCADE,
    PRIMARY KEY (order_line_id, upload_id)
);
CREATE INDEX IF NOT EXISTS order_line_uploads_upload_idx ON shop.order_line_uploads (upload_id);

-- CAT-6: cookie preferences of a visitor (a cookie identifier), optionally tied to an account.
CREATE TABLE IF NOT EXISTS shop.cookie_preferences (
    preference_id  bigserial PRIMARY KEY,
    visitor_key    uuid        NOT NULL,
    account_id     bigint REFERENCES shop.accounts (account_id) ON DELETE SET NULL,
    analytics      boolean     NOT NULL,
    marketing      boolean     NOT NULL,
    given_at       timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS cookie_preferences_given_at_idx ON shop.cookie_preferences (given_at);
CREATE INDEX IF NOT EXISTS cookie_preferences_account_idx ON shop.cookie_preferences (account_id);  -- ON DELETE SET NULL

-- CAT-2 (TP-1, CON-1): the consents a person gave to a purpose resting on consent, such as
-- advertising audiences; the shop can show each consent (GDPR art. 7(1)). withdrawn_at: the person
-- withdrew it (in the shop, or by a request: the purpose's switch_off sets it). Goes with the account.
CREATE TABLE IF NOT EXISTS shop.marketing_consents (
    consent_id    bigserial   PRIMARY KEY,
    account_id    bigint      NOT NULL REFERENCES shop.accounts (account_id) ON DELETE CASCADE,
    purpose       text        NOT NULL CHECK (purpose ~ '^[a-z0-9]+(_[a-z0-9]+)*$'),
    given_at      timestamptz NOT NULL,
    withdrawn_at  timestamptz,
    CHECK (withdrawn_at IS NULL OR withdrawn_at >= given_at)
);
CREATE INDEX IF NOT EXISTS marketing_consents_account_idx ON shop.marketing_consents (account_id);
CREATE INDEX IF NOT EXISTS marketing_consents_purpose_idx ON shop.marketing_consents (purpose, account_id)
    WHERE withdrawn_at IS NULL;
