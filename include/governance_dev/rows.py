"""The shop's rows, one method per kind of record: ids assigned here, each row a COPY text line.

``ShopRows`` writes accounts, calendar events, saved products, orders and their lines, uploads and
their links, newsletter subscriptions and events, contact messages, cookie preferences and visits
into the current ``Batch``, and, when asked, the same rows as plain dicts into a
``reference.Snapshot`` (the oracle's input). Pure: no I/O. What to write, and when, is decided by
the generator (the random shop) and the scenarios (the scripted cases).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from governance_dev import reference
from governance_dev.tables import COLUMNS, ID_COLUMNS, NULL, id_or_null, opt, ts
from governance_dev.vocabulary import (
    CALENDAR_TITLES,
    CONTACT_SUBJECTS,
    INBOUND_BODIES,
    LANGUAGES,
    OUTBOUND_BODIES,
    PAYMENT_BAG,
    PRODUCT_BAG,
    PRODUCTS,
    REGIONS,
    SAVED_TITLES,
    VISIT_COUNTRIES,
    Person,
    Rng,
    build_pools,
    email_variant,
    jpeg_payload,
    make_person,
    text_payload,
)


@dataclass
class Batch:
    """One chunk's rows (COPY text lines per table) and the objects to write for its uploads and exports."""

    lines: dict[str, list[str]] = field(default_factory=lambda: {t: [] for t in COLUMNS})
    objects: list[tuple[str, int, str]] = field(default_factory=list)  # (key, upload_id, kind)
    exports: list[tuple[str, int]] = field(default_factory=list)  # (key, export_id): the exports bucket


class ShopRows:
    """Writes rows into the current batch (and the snapshot), assigning ids in load order."""

    def __init__(
        self,
        now: datetime,
        *,
        seed: int,
        bucket: str,
        prefix: str,
        keep_snapshot: bool,
        uploads_enabled: bool,
        max_uploads: int | None,
        upload_rate: float,
    ):
        self.now = now
        self.seed = seed
        self.bucket = bucket
        self.prefix = prefix
        self.uploads_enabled = uploads_enabled
        self.max_uploads = max_uploads
        self.upload_rate = upload_rate
        self.pools = build_pools(seed)
        self.snapshot = reference.Snapshot() if keep_snapshot else None
        self._keep = keep_snapshot
        self.counts = {t: 0 for t in COLUMNS}
        self._next = {t: 1 for t in ID_COLUMNS}
        self.batch = Batch()
        self.rng = Rng()
        self.urng = Rng()  # uploads draw apart: a cap changes nothing else
        self.crng = Rng()  # consents draw apart too (#11)

    def next_id(self, table: str) -> int:
        """The id the next row of ``table`` would get (orphan objects use ids no row has)."""
        return self._next[table]

    def _take(self, table: str) -> int:
        value = self._next[table]
        self._next[table] = value + 1
        return value

    def _emit(self, table: str, line: str, row: dict[str, Any] | None = None) -> None:
        self.batch.lines[table].append(line)
        self.counts[table] += 1
        if self.snapshot is not None and row is not None:
            getattr(self.snapshot, table.split(".", 1)[1]).append(row)

    # --- people ---

    def person(self, index: int, rng: Rng) -> Person:
        return make_person(self.pools, index, rng)

    email_variant = staticmethod(email_variant)

    # --- rows ---

    def account(self, p: Person, created_at: datetime, deleted_at: datetime | None = None) -> int:
        rng = self.rng
        account_id = self._take("shop.accounts")
        prefs = (
            '{"language": "nb", "currency": "NOK", "newsletter": true}'
            if rng.random() < 0.4
            else '{"language": "nb", "currency": "NOK", "newsletter": false}'
        )
        other = None if rng.random() < 0.8 else f"Fødselsdag {rng.between(1, 28)}.{rng.between(1, 12)}."
        password = f"pbkdf2_sha256$600000${rng.getrandbits(64):016x}${rng.getrandbits(256):064x}"
        self._emit(
            "shop.accounts",
            "\t".join(
                (
                    str(account_id),
                    p.email,
                    password,
                    p.first,
                    p.last,
                    prefs,
                    opt(other),
                    ts(created_at),
                    ts(deleted_at),
                )
            ),
            {"account_id": account_id, "email": p.email, "created_at": created_at, "deleted_at": deleted_at}
            if self._keep
            else None,
        )
        return account_id

    def calendar_event(self, account_id: int, created_at: datetime) -> int:
        rng = self.rng
        event_id = self._take("shop.calendar_events")
        event_date = (created_at + timedelta(days=rng.between(1, 400))).date()
        self._emit(
            "shop.calendar_events",
            "\t".join(
                (str(event_id), str(account_id), rng.pick(CALENDAR_TITLES), event_date.isoformat(), ts(created_at))
            ),
            {"event_id": event_id, "account_id": account_id} if self._keep else None,
        )
        return event_id

    def marketing_consent(self, account_id: int, given_at: datetime, withdrawn_at: datetime | None) -> int:
        """CON-1, TP-1 (#11): a consent to advertising audiences; not in the reference snapshot (no rule)."""
        consent_id = self._take("shop.marketing_consents")
        withdrawn = ts(withdrawn_at) if withdrawn_at is not None else NULL
        self._emit(
            "shop.marketing_consents",
            "\t".join((str(consent_id), str(account_id), "advertising_audiences", ts(given_at), withdrawn)),
        )
        return consent_id

    def saved_product(self, account_id: int, saved_at: datetime) -> int:
        rng = self.rng
        saved_id = self._take("shop.saved_products")
        product = rng.pick(("photo_book", "calendar", "canvas", "poster"))
        title = f"{rng.pick(SAVED_TITLES)} {saved_at.year}"
        self._emit(
            "shop.saved_products",
            "\t".join((str(saved_id), str(account_id), product, title, ts(saved_at))),
            {"saved_product_id": saved_id, "account_id": account_id, "saved_at": saved_at} if self._keep else None,
        )
        return saved_id

    def order(
        self, p: Person, account_id: int | None, email: str, placed_at: datetime, products: list[int] | None = None
    ) -> tuple[int, list[tuple[int, int]]]:
        """An order with its lines; returns (order_id, [(order_line_id, product index)])."""
        rng = self.rng
        order_id = self._take("shop.orders")
        if products is None:
            products = [rng.pick(PRODUCT_BAG) for _ in range(rng.pick((1, 1, 1, 2, 2, 3)))]
        lines = []
        total = 0.0
        for product in products:
            line_id = self._take("shop.order_lines")
            kind, price, _, _ = PRODUCTS[product]
            quantity = rng.pick((1, 1, 1, 2, 3, 5, 10, 20)) if kind == "print" else rng.pick((1, 1, 1, 2))
            total += quantity * price
            self._emit(
                "shop.order_lines",
                f"{line_id}\t{order_id}\t{kind}\t{quantity}\t{price:.2f}",
                {"order_line_id": line_id, "order_id": order_id} if self._keep else None,
            )
            lines.append((line_id, product))
        total += 49.0  # shipping
        method = rng.pick(PAYMENT_BAG)
        last4 = f"{rng.below(10000):04d}" if method == "card" else None
        same_billing = rng.random() < 0.85
        country = "NO" if rng.random() < 0.97 else rng.pick(("SE", "DK"))
        billing_street = p.street if same_billing else f"{rng.pick(self.pools.streets)} {rng.between(1, 80)}"
        billing_place = (p.postcode, p.city) if same_billing else rng.pick(self.pools.places)
        self._emit(
            "shop.orders",
            "\t".join(
                (
                    str(order_id),
                    id_or_null(account_id),
                    email,
                    p.first,
                    p.last,
                    p.phone,
                    p.street,
                    p.postcode,
                    p.city,
                    country,
                    billing_street,
                    billing_place[0],
                    billing_place[1],
                    method,
                    opt(last4),
                    f"pay_{rng.getrandbits(64):016x}",
                    f"{total:.2f}",
                    "NOK",
                    ts(placed_at),
                    NULL,
                )
            ),
            {
                "order_id": order_id,
                "account_id": account_id,
                "email": email,
                "placed_at": placed_at,
                "anonymised_at": None,
            }
            if self._keep
            else None,
        )
        return order_id, lines

    def upload(self, account_id: int | None, kind: str, uploaded_at: datetime, *, scripted: bool = False) -> int | None:
        """An upload and its object, or None when uploads are off, sampled out or capped."""
        if not self.uploads_enabled:
            return None
        if not scripted and self.upload_rate < 1.0 and self.urng.random() >= self.upload_rate:
            return None
        if self.max_uploads is not None and self.counts["shop.uploads"] >= self.max_uploads:
            return None
        upload_id = self._take("shop.uploads")
        owner = f"a{account_id}" if account_id is not None else "guest"
        key = f"{self.prefix}{owner}/{upload_id}.{'jpg' if kind == 'photo' else 'txt'}"
        size = len(jpeg_payload(upload_id, self.seed) if kind == "photo" else text_payload(upload_id, self.seed))
        self._emit(
            "shop.uploads",
            "\t".join(
                (str(upload_id), id_or_null(account_id), kind, self.bucket, key, str(size), ts(uploaded_at), "stored")
            ),
            {"upload_id": upload_id, "account_id": account_id, "uploaded_at": uploaded_at} if self._keep else None,
        )
        self.batch.objects.append((key, upload_id, kind))
        return upload_id

    def link_order_line(self, line_id: int, upload_id: int | None) -> None:
        if upload_id is not None:
            self._emit(
                "shop.order_line_uploads",
                f"{line_id}\t{upload_id}",
                {"order_line_id": line_id, "upload_id": upload_id} if self._keep else None,
            )

    def link_saved(self, saved_id: int, upload_id: int | None) -> None:
        if upload_id is not None:
            self._emit(
                "shop.saved_product_uploads",
                f"{saved_id}\t{upload_id}",
                {"saved_product_id": saved_id, "upload_id": upload_id} if self._keep else None,
            )

    def subscription(
        self,
        p: Person,
        email: str,
        account_id: int | None,
        subscribed_at: datetime,
        confirmed_at: datetime | None,
        unsubscribed_at: datetime | None = None,
    ) -> int:
        sub_id = self._take("shop.newsletter_subscriptions")
        self._emit(
            "shop.newsletter_subscriptions",
            "\t".join(
                (
                    str(sub_id),
                    id_or_null(account_id),
                    email,
                    p.first,
                    p.last,
                    ts(subscribed_at),
                    ts(confirmed_at),
                    ts(unsubscribed_at),
                )
            ),
            {
                "subscription_id": sub_id,
                "account_id": account_id,
                "email": email,
                "subscribed_at": subscribed_at,
                "confirmed_at": confirmed_at,
            }
            if self._keep
            else None,
        )
        return sub_id

    def newsletter_event(self, sub_id: int, kind: str, at: datetime) -> None:
        event_id = self._take("shop.newsletter_events")
        self._emit(
            "shop.newsletter_events",
            f"{event_id}\t{sub_id}\t{kind}\t{ts(at)}",
            {"subscription_id": sub_id, "kind": kind, "occurred_at": at} if self._keep else None,
        )

    def message(self, p: Person, email: str, direction: str, at: datetime) -> int:
        rng = self.rng
        message_id = self._take("shop.contact_messages")
        body = rng.pick(INBOUND_BODIES if direction == "inbound" else OUTBOUND_BODIES)
        subject = rng.pick(CONTACT_SUBJECTS)
        if direction == "outbound":
            subject = f"Sv: {subject}"
        self._emit(
            "shop.contact_messages",
            "\t".join((str(message_id), email, f"{p.first} {p.last}", direction, subject, body, ts(at))),
            {"message_id": message_id, "email": email, "sent_at": at} if self._keep else None,
        )
        return message_id

    def cookie_preference(self, account_id: int | None, given_at: datetime) -> int:
        rng = self.rng
        pref_id = self._take("shop.cookie_preferences")
        key = f"{rng.getrandbits(128):032x}"
        analytics = "t" if rng.random() < 0.6 else "f"
        marketing = "t" if rng.random() < 0.35 else "f"
        self._emit(
            "shop.cookie_preferences",
            f"{pref_id}\t{key}\t{id_or_null(account_id)}\t{analytics}\t{marketing}\t{ts(given_at)}",
            {"preference_id": pref_id, "account_id": account_id, "given_at": given_at} if self._keep else None,
        )
        return pref_id

    def visit(self, last_activity_at: datetime) -> int:
        rng = self.rng
        visit_id = self._take("shop.visits")
        started_at = last_activity_at - timedelta(seconds=30 + int(rng.random() * 5400))
        if rng.random() < 0.85:
            # carrier-grade NAT (100.64.0.0/10): how most Norwegian mobile visitors reach a site
            ip = f"100.{64 + rng.below(64)}.{rng.below(256)}.{rng.between(1, 254)}"
        else:
            ip = f"2001:db8:{rng.getrandbits(16):x}:{rng.getrandbits(16):x}::{rng.getrandbits(16):x}"
        basket = json.dumps(
            [
                {"product": PRODUCTS[rng.pick(PRODUCT_BAG)][0], "quantity": rng.between(1, 3)}
                for _ in range(rng.pick((0, 0, 1, 1, 2, 3)))
            ]
        )
        self._emit(
            "shop.visits",
            "\t".join(
                (
                    str(visit_id),
                    f"{rng.getrandbits(128):032x}",
                    ip,
                    rng.pick(VISIT_COUNTRIES),
                    rng.pick(REGIONS),
                    rng.pick(LANGUAGES),
                    basket,
                    ts(started_at),
                    ts(last_activity_at),
                )
            ),
            {"visit_id": visit_id, "last_activity_at": last_activity_at} if self._keep else None,
        )
        return visit_id
