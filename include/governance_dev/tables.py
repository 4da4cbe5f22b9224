"""The shop's tables (and the request ledger's) as the seed loads them: columns in COPY order,
generated ids, COPY text values.

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
    "shop.marketing_consents": ("consent_id", "account_id", "purpose", "given_at", "withdrawn_at"),
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
    # Data-subject requests (REQ-1) and the copies they make (RET-9): include/sql/schema/040_requests.sql.
    "governance.subject_requests": (
        "request_id",
        "kind",
        "account_id",
        "email_sha256",
        "channel",
        "opened_by",
        "received_at",
        "opened_at",
        "due_at",
        "state",
        "subject_found",
        "verified_by",
        "verified_at",
        "verification_method",
        "started_at",
        "closed_at",
        "refused_reason",
    ),
    "governance.request_contacts": ("request_id", "reply_to", "subject_email", "created_at"),
    "governance.request_exports": (
        "export_id",
        "request_id",
        "bucket",
        "object_key",
        "created_at",
        "byte_size",
        "sha256",
        "file_count",
        "link_expires_at",
        "link_sent_at",
        "state",
    ),
}
# Tables whose ids the generator assigns, and the column (sequences are set past them afterwards).
ID_COLUMNS = {
    table: cols[0]
    for table, cols in COLUMNS.items()
    if table not in ("shop.order_line_uploads", "shop.saved_product_uploads", "governance.request_contacts")
}
HOLDS_TABLE = "governance.legal_holds"
# The governance tables the seed empties and loads besides the shop's and the holds.
REQUEST_TABLES = tuple(t for t in COLUMNS if t.startswith("governance."))

NULL = "\\N"


def ts(moment: datetime | None) -> str:
    return NULL if moment is None else moment.isoformat()


def opt(value: str | None) -> str:
    """A nullable text value. Text is never escaped: every string comes from the pools and
    constants, which are checked once to hold no COPY control character (tab, newline, backslash)."""
    return NULL if value is None else value


def id_or_null(value: int | None) -> str:
    return NULL if value is None else str(value)
