"""The shop's tables as the seed loads them: columns in COPY order, generated ids, COPY text values.

Tables are listed parents first (the load order). Text values are written unescaped: every string
comes from the vocabulary and the pools, which are checked once to hold no COPY control character.
"""

from __future__ import annotations

from datetime import datetime

# Tables in load order (parents first), with the columns COPY writes.
COLUMNS: dict[str, tuple[str, ...]] = {
    "shop.accounts": (
        "account_id",
        "email",
        "password_hash",
        "first_name",
        "last_name",
        "preferences",
        "other_info",
        "created_at",
        "deleted_at",
    ),
    "shop.calendar_events": ("event_id", "account_id", "title", "event_date", "created_at"),
    "shop.orders": (
        "order_id",
        "account_id",
        "email",
        "first_name",
        "last_name",
        "phone",
        "delivery_street",
        "delivery_postal_code",
        "delivery_city",
        "delivery_country",
        "billing_street",
        "billing_postal_code",
        "billing_city",
        "payment_method",
        "card_last4",
        "payment_reference",
        "total_amount",
        "currency",
        "placed_at",
        "anonymised_at",
    ),
    "shop.order_lines": ("order_line_id", "order_id", "product_type", "quantity", "unit_price"),
    "shop.saved_products": ("saved_product_id", "account_id", "product_type", "title", "saved_at"),
    "shop.uploads": ("upload_id", "account_id", "kind", "bucket", "object_key", "byte_size", "uploaded_at", "state"),
    "shop.order_line_uploads": ("order_line_id", "upload_id"),
    "shop.saved_product_uploads": ("saved_product_id", "upload_id"),
    "shop.newsletter_subscriptions": (
        "subscription_id",
        "account_id",
        "email",
        "first_name",
        "last_name",
        "subscribed_at",
        "confirmed_at",
        "unsubscribed_at",
    ),
    "shop.newsletter_events": ("event_id", "subscription_id", "kind", "occurred_at"),
    "shop.contact_messages": ("message_id", "email", "name", "direction", "subject", "body", "sent_at"),
    "shop.cookie_preferences": ("preference_id", "visitor_key", "account_id", "analytics", "marketing", "given_at"),
    "shop.visits": (
        "visit_id",
        "session_key",
        "ip_address",
        "country",
        "region",
        "language",
        "basket",
        "started_at",
        "last_activity_at",
    ),
}
# Tables whose ids the generator assigns, and the column (sequences are set past them afterwards).
ID_COLUMNS = {
    table: cols[0]
    for table, cols in COLUMNS.items()
    if table not in ("shop.order_line_uploads", "shop.saved_product_uploads")
}
HOLDS_TABLE = "governance.legal_holds"

NULL = "\\N"


def ts(moment: datetime | None) -> str:
    return NULL if moment is None else moment.isoformat()


def opt(value: str | None) -> str:
    """A nullable text value. Text is never escaped: every string comes from the pools and
    constants, which are checked once to hold no COPY control character (tab, newline, backslash)."""
    return NULL if value is None else value


def id_or_null(value: int | None) -> str:
    return NULL if value is None else str(value)
