"""Deterministic synthetic data for the reference photo shop, at any scale (the test bed of every rule).

``seed(conn, s3, policy, now, customers=N, seed=S)`` empties the shop and loads a realistic
Norwegian shop — accounts, calendars, guests, orders, uploads and their photo/text objects,
saved products, newsletter, contact messages, cookie preferences, hourly-partitioned visits —
whose ages are spread so that at ``now`` every rule of the policy has records on both sides of
its window (REQUIREMENTS.md RET-1..RET-6), plus fixed boundary cases (RET-10: exactly at the
boundary, one second either side, a clock on 29 February 2024, uploads under several rules where
the latest expiry wins) and a few legal holds (RET-8).

Determinism: the same (customers, seed, now, max_objects, objects) gives byte-identical rows and
objects. Nothing reads the wall clock; randomness comes from ``random.Random`` streams derived
from the seed, and the name/street/city pools from Faker's Norwegian locale seeded the same way
(Faker has no ``nb_NO``; its Norwegian Bokmål data is ``no_NO``). Faker is called only to build
the pools, never per row, so a million customers load in minutes.

Loading: ids are assigned here, rows go in with COPY in chunks of customers (memory stays
bounded; a producer thread generates the next chunk while PostgreSQL ingests the last), and the
sequences are moved past the ids afterwards. Everything is one transaction on ``conn``.

Objects (CAT-5): every ``shop.uploads`` row has its object in ``policy.object_store.uploads_bucket``
under the store's prefix, and nothing else is there (the prefix is emptied first) except
``orphan_objects`` deliberate orphans. ``max_objects`` caps the number of uploads — rows are capped
with the objects, never the other way round — and ``objects=False`` writes neither uploads rows
(nor their links) nor objects, and never touches S3.

Ground truth: for small scales (or ``keep_snapshot=True``) the generated rows are kept as a
``governance.reference.Snapshot`` and the report carries the reference's overdue counts, the
independent oracle the audit and the sweeps are checked against.
"""

from __future__ import annotations

import hashlib
import io
import json
import queue
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg2.errors
from psycopg2 import sql

from governance import reference
from governance.policy import Policy
from governance.windows import as_utc

FAKER_LOCALE = "no_NO"  # Faker's Norwegian (Bokmål); Faker has no 'nb_NO'
MIN_CUSTOMERS = 100  # the fixed boundary cases use about 70 of them
CHUNK_CUSTOMERS = 10_000
SNAPSHOT_LIMIT = 20_000  # above this the snapshot is kept only when asked (memory)
PUT_THREADS = 16
HISTORY = timedelta(days=6 * 365)  # how far back the shop's history goes
VISIT_SPAN = timedelta(hours=72)
LEAP_DAY_CLOCK = datetime(2024, 2, 29, 12, 0, tzinfo=UTC)  # P2Y -> 2026-02-28, P12M -> 2025-02-28 (RET-10)
SEED_ACTOR = "seed"

# Expected uploads per customer when uncapped (measured), used to spread a max_objects cap evenly.
_UPLOADS_PER_CUSTOMER = 3.3

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

# Products: (type, unit price NOK, photos per line (min, max), takes a text)
PRODUCTS = (
    ("print", 9.0, (1, 1), False),
    ("photo_book", 399.0, (1, 2), True),
    ("calendar", 249.0, (1, 2), False),
    ("canvas", 549.0, (1, 1), False),
    ("poster", 199.0, (1, 1), False),
    ("mug", 179.0, (1, 1), False),
    ("card", 29.0, (1, 1), True),
)
PRODUCT_WEIGHTS = (30, 15, 12, 8, 10, 10, 15)
PAYMENT_METHODS = ("card", "vipps", "invoice", "klarna")
PAYMENT_WEIGHTS = (50, 30, 12, 8)
# weighted choices as bags drawn from uniformly (a list index is much cheaper than random.choices)
_PRODUCT_BAG = tuple(i for i, w in enumerate(PRODUCT_WEIGHTS) for _ in range(w))
_PAYMENT_BAG = tuple(m for m, w in zip(PAYMENT_METHODS, PAYMENT_WEIGHTS, strict=True) for _ in range(w))
REGIONS = (
    "Oslo",
    "Viken",
    "Vestland",
    "Rogaland",
    "Trøndelag",
    "Innlandet",
    "Agder",
    "Møre og Romsdal",
    "Nordland",
    "Troms og Finnmark",
    "Vestfold og Telemark",
)
VISIT_COUNTRIES = ("NO",) * 17 + ("SE", "DK", "DE")
LANGUAGES = ("nb",) * 7 + ("nn", "en")
EMAIL_DOMAINS = ("example.com", "example.net", "example.org")  # reserved for examples (RFC 2606): never mailable
CALENDAR_TITLES = (
    "Bursdag",
    "Bryllupsdag",
    "Mormors bursdag",
    "Farfars 80-årsdag",
    "Konfirmasjon",
    "Dåp",
    "Jubileum",
    "Sommerferie",
    "Skoleavslutning",
    "Julebord",
    "Hyttetur",
    "Morsdag",
    "Farsdag",
)
SAVED_TITLES = (
    "Sommerferie",
    "Bryllup",
    "Jul",
    "Hytta",
    "Barna",
    "Fjelltur",
    "Konfirmasjon",
    "Familien",
    "Bursdag",
    "Dåp",
    "Vinterferie",
    "Påske",
)
CONTACT_SUBJECTS = (
    "Spørsmål om bestilling",
    "Levering",
    "Feil på trykket",
    "Faktura",
    "Endre adresse",
    "Slette kontoen min",
    "Kampanjekode",
    "Retur",
)
INBOUND_BODIES = (
    "Hei! Jeg har ikke mottatt bestillingen min ennå. Kan dere sjekke?",
    "Hei, fotoboken kom med en skade på omslaget. Hva gjør jeg?",
    "Kan jeg endre leveringsadressen på ordren jeg la inn i går?",
    "Jeg vil gjerne at dere sletter kontoen min og bildene mine.",
    "Kampanjekoden fungerer ikke i kassen.",
    "Hvor lang er leveringstiden til Nord-Norge?",
)
OUTBOUND_BODIES = (
    "Takk for at du tok kontakt! Vi har sjekket saken og sender en ny forsendelse.",
    "Hei, vi har oppdatert adressen. Ha en fin dag!",
    "Beklager ulempen. Vi trykker produktet på nytt uten kostnad.",
    "Kontoen din er nå slettet. Takk for at du handlet hos oss.",
)
TEXT_UPLOADS = (
    "Gratulerer med dagen!",
    "God jul og godt nytt år!",
    "Til verdens beste mormor.",
    "Sommeren vår på hytta",
    "Takk for alle fine minner.",
    "Velkommen til verden, lille venn!",
)
# Short first names ("Per", "Dag", "Ola") and English words are left out of the pools so that a
# leak scan matching personal values as substrings does not hit ordinary words in logs.
_NOT_NAMES = {"Finn", "Frank", "Line", "Else", "Even", "Stein", "Stig", "Mark", "John"}
_ASCII = str.maketrans({"æ": "ae", "ø": "o", "å": "aa", "é": "e", "ü": "u", "ö": "o", "ä": "a", " ": "", "'": ""})

_JPEG_HEAD = bytes.fromhex(
    "ffd8"  # SOI
    "ffe000104a46494600010100000100010000"  # APP0 JFIF 1.1
)
# A baseline 1x1 grey JPEG: one-code Huffman tables (DC category 0, AC end-of-block) and a one-byte scan.
_JPEG_TAIL = (
    bytes.fromhex("ffdb004300")
    + bytes([1] * 64)
    + bytes.fromhex("ffc0000b080001000101011100")
    + bytes.fromhex("ffc4001400" + "01" + "00" * 15 + "00")
    + bytes.fromhex("ffc4001410" + "01" + "00" * 15 + "00")
    + bytes.fromhex("ffda000801010000003f00" + "3f")
    + bytes.fromhex("ffd9")
)


class _Rng(random.Random):
    """random.Random with cheap uniform draws (no rejection sampling: a float scaled to an int)."""

    def pick(self, seq: Any) -> Any:
        return seq[int(self.random() * len(seq))]

    def below(self, n: int) -> int:
        return int(self.random() * n)

    def between(self, low: int, high: int) -> int:
        return low + int(self.random() * (high - low + 1))


@dataclass
class SeedReport:
    """What ``seed`` loaded. ``objects`` counts every object written to the bucket, orphans included."""

    rows: dict[str, int]
    objects: int
    seconds: float
    expected_overdue: dict[str, int] | None = None
    expected_oldest_overdue_seconds: dict[str, int] | None = None
    snapshot: reference.Snapshot | None = None
    orphan_objects: int = 0
    bucket: str = ""

    def summary(self) -> str:
        """A short human summary: counts and time only, never personal data."""
        width = max(len(t) for t in self.rows)
        lines = [f"  {table:<{width}}  {count:>12,}" for table, count in self.rows.items()]
        lines.append(
            f"  {'objects in ' + self.bucket:<{width}}  {self.objects:>12,}"
            + (f"  ({self.orphan_objects} without a row)" if self.orphan_objects else "")
        )
        lines.append(f"  seeded in {self.seconds:.1f} s")
        if self.expected_overdue is not None:
            lines.append(
                "  overdue per the reference: "
                + ", ".join(f"{rule}={count}" for rule, count in self.expected_overdue.items())
            )
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Pools: Faker is called here only, a few thousand times, never per row.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pools:
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    streets: tuple[str, ...]
    places: tuple[tuple[str, str], ...]  # (postcode, city)


def build_pools(seed: int) -> _Pools:
    """Norwegian names, streets and places from Faker, seeded: the same seed gives the same pools."""
    from faker import Faker

    fake = Faker(FAKER_LOCALE)
    fake.seed_instance(seed)

    def usable(name: str) -> bool:
        return len(name) >= 4 and name not in _NOT_NAMES

    males = sorted({n for n in (fake.first_name_male() for _ in range(2000)) if usable(n)})
    females = sorted({n for n in (fake.first_name_female() for _ in range(2000)) if usable(n)})
    firsts = sorted({*males, *females})
    lasts = sorted({n for n in (fake.last_name() for _ in range(2000)) if len(n) >= 4})
    rng = _Rng(f"{seed}:pools")
    # Norwegians often carry double first names (Kari-Anne, Per-Erik) and double surnames.
    compound_first = {
        f"{a}-{b}"
        for names in (males, females)
        for a, b in ((rng.pick(names), rng.pick(names)) for _ in range(1500))
        if a != b
    }
    compound_last = {f"{a} {b}" for a, b in ((rng.pick(lasts), rng.pick(lasts)) for _ in range(3000)) if a != b}
    first_names = tuple(firsts * 40 + sorted(compound_first))  # single names stay the most common
    last_names = tuple(lasts * 60 + sorted(compound_last))
    streets = tuple(sorted({fake.street_name() for _ in range(4000)}))
    places = tuple(sorted({(fake.postcode(), fake.city()) for _ in range(4000)}))
    _check_copy_safe((*first_names, *last_names, *streets, *(c for _, c in places), *(pc for pc, _ in places)))
    return _Pools(first_names, last_names, streets, places)


# --------------------------------------------------------------------------------------------
# COPY text helpers
# --------------------------------------------------------------------------------------------

_NULL = "\\N"


def _ts(moment: datetime | None) -> str:
    return _NULL if moment is None else moment.isoformat()


def _opt(value: str | None) -> str:
    """A nullable text value. Text is never escaped: every string comes from the pools and
    constants, which are checked once to hold no COPY control character (tab, newline, backslash)."""
    return _NULL if value is None else value


def _check_copy_safe(values: Any) -> None:
    for value in values:
        if any(ch in value for ch in "\t\n\r\\"):
            raise ValueError(f"{value!r} contains a COPY control character")


def _id(value: int | None) -> str:
    return _NULL if value is None else str(value)


_check_copy_safe((*CALENDAR_TITLES, *SAVED_TITLES, *CONTACT_SUBJECTS, *INBOUND_BODIES, *OUTBOUND_BODIES, *REGIONS))


def jpeg_payload(upload_id: int, seed: int) -> bytes:
    """A tiny valid baseline JPEG (1x1 grey) with a comment naming the synthetic upload."""
    note = (
        f"synthetic photo {upload_id} seed {seed} ".encode()
        + hashlib.sha256(f"{seed}:{upload_id}".encode()).digest() * 6
    )
    comment = b"\xff\xfe" + (len(note) + 2).to_bytes(2, "big") + note
    return _JPEG_HEAD + comment + _JPEG_TAIL


def text_payload(upload_id: int, seed: int) -> bytes:
    line = TEXT_UPLOADS[(upload_id * 7 + seed) % len(TEXT_UPLOADS)]
    return f"{line}\n(syntetisk tekst {upload_id})\n".encode()


# --------------------------------------------------------------------------------------------
# The generator: ids, rows as COPY lines, optionally the reference snapshot.
# --------------------------------------------------------------------------------------------


@dataclass
class _Person:
    first: str
    last: str
    email: str
    phone: str
    street: str
    postcode: str
    city: str


@dataclass
class _Batch:
    """One chunk's rows (COPY text lines per table) and the objects to write for its uploads."""

    lines: dict[str, list[str]] = field(default_factory=lambda: {t: [] for t in COLUMNS})
    objects: list[tuple[str, int, str]] = field(default_factory=list)  # (key, upload_id, kind)


@dataclass
class HoldSpec:
    """A legal hold the seed sets (RET-8); ``email`` is turned into its pseudonym by the database."""

    scope: str
    reason: str
    set_at: datetime
    table_name: str | None = None
    record_key: str | None = None
    account_id: int | None = None
    email: str | None = None
    ends_at: datetime | None = None
    lifted_at: datetime | None = None

    def as_row(self) -> dict[str, Any]:
        """The hold as a governance.legal_holds row for the reference (pseudonym computed in Python)."""
        return {
            "scope": self.scope,
            "rule_id": None,
            "table_name": self.table_name,
            "record_key": self.record_key,
            "account_id": self.account_id,
            "email_sha256": reference.email_pseudonym(self.email) if self.email is not None else None,
            "set_at": self.set_at,
            "ends_at": self.ends_at,
            "lifted_at": self.lifted_at,
        }


class Generator:
    """Generates the shop chunk by chunk. Pure: no I/O, so unit tests can run it without services."""

    def __init__(
        self,
        policy: Policy,
        now: datetime,
        *,
        customers: int = 500,
        seed: int = 42,
        uploads: bool = True,
        max_uploads: int | None = None,
        keep_snapshot: bool = False,
        holds: bool = True,
        bucket: str | None = None,
        prefix: str = "uploads/",
    ):
        if customers < MIN_CUSTOMERS:
            raise ValueError(
                f"customers must be at least {MIN_CUSTOMERS} (the fixed boundary cases need them), got {customers}"
            )
        if max_uploads is not None and max_uploads < 0:
            raise ValueError(f"max_objects must be zero or more, got {max_uploads}")
        self.policy = policy
        self.now = as_utc(now)
        self.customers = customers
        self.seed = seed
        self.uploads_enabled = uploads and max_uploads != 0
        self.max_uploads = max_uploads
        self.holds_enabled = holds
        self.bucket = bucket or policy.object_store.uploads_bucket
        self.prefix = prefix
        self.pools = build_pools(seed)
        self.windows = {rule.id: policy.window(rule) for rule in policy.rules}
        self.snapshot = reference.Snapshot() if keep_snapshot else None
        self._keep = keep_snapshot
        self.holds: list[HoldSpec] = []
        self.counts = {t: 0 for t in COLUMNS}
        self._next = {t: 1 for t in ID_COLUMNS}
        self.upload_rate = 1.0
        if max_uploads is not None:
            expected = _UPLOADS_PER_CUSTOMER * customers
            self.upload_rate = min(1.0, 1.1 * max_uploads / expected) if expected else 1.0
        self._batch = _Batch()
        self._rng = _Rng()
        self._urng = _Rng()

    # --- the boundary of a rule: clock + window == now (RET-10) ---

    def boundary(self, rule_id: str) -> datetime:
        return self.now - self.windows[rule_id].relativedelta

    # --- driving ---

    def batches(self) -> Iterator[_Batch]:
        """Yield one batch per chunk of customers; the first holds the fixed cases and the holds."""
        scripted = _Scripted(self)
        for index, start in enumerate(range(0, self.customers, CHUNK_CUSTOMERS)):
            end = min(start + CHUNK_CUSTOMERS, self.customers)
            self._rng = _Rng(f"{self.seed}:chunk:{index}")
            self._urng = _Rng(f"{self.seed}:uploads:{index}")  # uploads draw apart: a cap changes nothing else
            if index == 0:
                start = scripted.run(start_index=0)
            for i in range(start, end):
                self._random_customer(i)
            for _ in range((end - start) // 2 + (1 if index == 0 else 0)):
                self._random_visit()
            for _ in range(max(1, (end - start) // 100)):
                self._anonymised_order()
            batch, self._batch = self._batch, _Batch()
            yield batch

    def _take(self, table: str) -> int:
        value = self._next[table]
        self._next[table] = value + 1
        return value

    def _emit(self, table: str, line: str, row: dict[str, Any] | None = None) -> None:
        self._batch.lines[table].append(line)
        self.counts[table] += 1
        if self.snapshot is not None and row is not None:
            getattr(self.snapshot, table.split(".", 1)[1]).append(row)

    # --- people ---

    def person(self, index: int, rng: _Rng) -> _Person:
        p = self.pools
        first = rng.pick(p.first_names)
        last = rng.pick(p.last_names)
        a, b = first.lower().translate(_ASCII), last.lower().translate(_ASCII)
        style = rng.random()
        # the customer's index in the local part keeps every address unique (a person is an address, RET-4)
        if style < 0.6:
            local = f"{a}.{b}{index}"
        elif style < 0.85:
            local = f"{a}{index}"
        else:
            local = f"{a[0]}_{b}{index}"
        email = f"{local}@{EMAIL_DOMAINS[index % 3]}"
        mobile = (4 if rng.random() < 0.5 else 9) * 10_000_000 + rng.below(10_000_000)  # mobiles start with 4 or 9
        phone = f"+47 {mobile // 100_000} {mobile // 1000 % 100:02d} {mobile % 1000:03d}"
        street = f"{rng.pick(p.streets)} {rng.between(1, 120)}{rng.pick(('', '', '', 'A', 'B'))}"
        postcode, city = rng.pick(p.places)
        return _Person(first, last, email, phone, street, postcode, city)

    @staticmethod
    def email_variant(email: str, rng: _Rng) -> str:
        """The same address as a person types it another day: case and surrounding spaces (RET-3, RET-4)."""
        r = rng.random()
        if r < 0.35:
            return email.capitalize()
        if r < 0.55:
            return email.upper()
        if r < 0.8:
            return f" {email} "
        return f"{email.title()} "

    # --- rows ---

    def account(self, p: _Person, created_at: datetime, deleted_at: datetime | None = None) -> int:
        rng = self._rng
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
                    _opt(other),
                    _ts(created_at),
                    _ts(deleted_at),
                )
            ),
            {"account_id": account_id, "email": p.email, "created_at": created_at, "deleted_at": deleted_at}
            if self._keep
            else None,
        )
        return account_id

    def calendar_event(self, account_id: int, created_at: datetime) -> int:
        rng = self._rng
        event_id = self._take("shop.calendar_events")
        event_date = (created_at + timedelta(days=rng.between(1, 400))).date()
        self._emit(
            "shop.calendar_events",
            "\t".join(
                (str(event_id), str(account_id), rng.pick(CALENDAR_TITLES), event_date.isoformat(), _ts(created_at))
            ),
            {"event_id": event_id, "account_id": account_id} if self._keep else None,
        )
        return event_id

    def saved_product(self, account_id: int, saved_at: datetime) -> int:
        rng = self._rng
        saved_id = self._take("shop.saved_products")
        product = rng.pick(("photo_book", "calendar", "canvas", "poster"))
        title = f"{rng.pick(SAVED_TITLES)} {saved_at.year}"
        self._emit(
            "shop.saved_products",
            "\t".join((str(saved_id), str(account_id), product, title, _ts(saved_at))),
            {"saved_product_id": saved_id, "account_id": account_id, "saved_at": saved_at} if self._keep else None,
        )
        return saved_id

    def order(
        self, p: _Person, account_id: int | None, email: str, placed_at: datetime, products: list[int] | None = None
    ) -> tuple[int, list[tuple[int, int]]]:
        """An order with its lines; returns (order_id, [(order_line_id, product index)])."""
        rng = self._rng
        order_id = self._take("shop.orders")
        if products is None:
            products = [rng.pick(_PRODUCT_BAG) for _ in range(rng.pick((1, 1, 1, 2, 2, 3)))]
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
        method = rng.pick(_PAYMENT_BAG)
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
                    _id(account_id),
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
                    _opt(last4),
                    f"pay_{rng.getrandbits(64):016x}",
                    f"{total:.2f}",
                    "NOK",
                    _ts(placed_at),
                    _NULL,
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

    def _anonymised_order(self) -> None:
        """An order whose RET-3 window ran out before: anonymised by an earlier sweep (RET-8)."""
        rng = self._rng
        order_id = self._take("shop.orders")
        placed_at = self.now - timedelta(days=730 + rng.random() * 1400)
        anonymised_at = min(self.now, placed_at + timedelta(days=731 + rng.random() * 20))
        kind, price, _, _ = PRODUCTS[rng.pick(_PRODUCT_BAG)]
        line_id = self._take("shop.order_lines")
        self._emit(
            "shop.order_lines",
            f"{line_id}\t{order_id}\t{kind}\t1\t{price:.2f}",
            {"order_line_id": line_id, "order_id": order_id} if self._keep else None,
        )
        person = "\t".join([_NULL] * 7)  # e-mail .. delivery city: set null (RET-8); the country is kept
        billing = "\t".join([_NULL] * 3)
        self._emit(
            "shop.orders",
            f"{order_id}\t{_NULL}\t{person}\tNO\t{billing}\tanonymised\t{_NULL}\t{_NULL}\t"
            f"{price + 49:.2f}\tNOK\t{_ts(placed_at)}\t{_ts(anonymised_at)}",
            {
                "order_id": order_id,
                "account_id": None,
                "email": None,
                "placed_at": placed_at,
                "anonymised_at": anonymised_at,
            }
            if self._keep
            else None,
        )

    def upload(self, account_id: int | None, kind: str, uploaded_at: datetime, *, scripted: bool = False) -> int | None:
        """An upload and its object, or None when uploads are off, sampled out or capped."""
        if not self.uploads_enabled:
            return None
        if not scripted and self.upload_rate < 1.0 and self._urng.random() >= self.upload_rate:
            return None
        if self.max_uploads is not None and self.counts["shop.uploads"] >= self.max_uploads:
            return None
        upload_id = self._take("shop.uploads")
        owner = f"a{account_id}" if account_id is not None else "guest"
        key = f"{self.prefix}{owner}/{upload_id}.{'jpg' if kind == 'photo' else 'txt'}"
        size = len(jpeg_payload(upload_id, self.seed) if kind == "photo" else text_payload(upload_id, self.seed))
        self._emit(
            "shop.uploads",
            "\t".join((str(upload_id), _id(account_id), kind, self.bucket, key, str(size), _ts(uploaded_at), "stored")),
            {"upload_id": upload_id, "account_id": account_id, "uploaded_at": uploaded_at} if self._keep else None,
        )
        self._batch.objects.append((key, upload_id, kind))
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
        p: _Person,
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
                    _id(account_id),
                    email,
                    p.first,
                    p.last,
                    _ts(subscribed_at),
                    _ts(confirmed_at),
                    _ts(unsubscribed_at),
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
            f"{event_id}\t{sub_id}\t{kind}\t{_ts(at)}",
            {"subscription_id": sub_id, "kind": kind, "occurred_at": at} if self._keep else None,
        )

    def message(self, p: _Person, email: str, direction: str, at: datetime) -> int:
        rng = self._rng
        message_id = self._take("shop.contact_messages")
        body = rng.pick(INBOUND_BODIES if direction == "inbound" else OUTBOUND_BODIES)
        subject = rng.pick(CONTACT_SUBJECTS)
        if direction == "outbound":
            subject = f"Sv: {subject}"
        self._emit(
            "shop.contact_messages",
            "\t".join((str(message_id), email, f"{p.first} {p.last}", direction, subject, body, _ts(at))),
            {"message_id": message_id, "email": email, "sent_at": at} if self._keep else None,
        )
        return message_id

    def cookie_preference(self, account_id: int | None, given_at: datetime) -> int:
        rng = self._rng
        pref_id = self._take("shop.cookie_preferences")
        key = f"{rng.getrandbits(128):032x}"
        analytics = "t" if rng.random() < 0.6 else "f"
        marketing = "t" if rng.random() < 0.35 else "f"
        self._emit(
            "shop.cookie_preferences",
            f"{pref_id}\t{key}\t{_id(account_id)}\t{analytics}\t{marketing}\t{_ts(given_at)}",
            {"preference_id": pref_id, "account_id": account_id, "given_at": given_at} if self._keep else None,
        )
        return pref_id

    def visit(self, last_activity_at: datetime) -> int:
        rng = self._rng
        visit_id = self._take("shop.visits")
        started_at = last_activity_at - timedelta(seconds=30 + int(rng.random() * 5400))
        if rng.random() < 0.85:
            # carrier-grade NAT (100.64.0.0/10): how most Norwegian mobile visitors reach a site
            ip = f"100.{64 + rng.below(64)}.{rng.below(256)}.{rng.between(1, 254)}"
        else:
            ip = f"2001:db8:{rng.getrandbits(16):x}:{rng.getrandbits(16):x}::{rng.getrandbits(16):x}"
        basket = json.dumps(
            [
                {"product": PRODUCTS[rng.pick(_PRODUCT_BAG)][0], "quantity": rng.between(1, 3)}
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
                    _ts(started_at),
                    _ts(last_activity_at),
                )
            ),
            {"visit_id": visit_id, "last_activity_at": last_activity_at} if self._keep else None,
        )
        return visit_id

    # --- random customers: ages spread over the shop's history ---

    def _ago(self, earliest: datetime, latest: datetime | None = None, rng: _Rng | None = None) -> datetime:
        """A whole second uniformly in [earliest, latest] (upload times draw from the uploads' stream)."""
        latest = latest or self.now
        span = max(0, int((latest - earliest).total_seconds()))
        return earliest + timedelta(seconds=int((rng or self._rng).random() * span))

    def _random_customer(self, index: int) -> None:
        rng = self._rng
        p = self.person(index, rng)
        kind = rng.random()
        if kind < 0.70:
            self._random_account_holder(p)
        elif kind < 0.92:
            self._random_guest(p)
        else:
            self._random_prospect(p)

    def _order_uploads(
        self, lines: list[tuple[int, int]], account_id: int | None, placed_at: datetime, floor: datetime
    ) -> list[int]:
        """Photos (and texts) of the ordered products; mostly uploaded just before the order, sometimes weeks."""
        urng = self._urng
        made = []
        for line_id, product in lines:
            _, _, (low, high), takes_text = PRODUCTS[product]
            for _ in range(urng.between(low, high)):
                if urng.random() < 0.8:
                    lag = timedelta(seconds=60 + int(urng.random() * 7200))
                else:  # uploaded to the library weeks earlier (RET-5a can then outlast RET-5c/5d)
                    lag = timedelta(days=1 + urng.random() * 120)
                upload_id = self.upload(account_id, "photo", max(floor, placed_at - lag))
                self.link_order_line(line_id, upload_id)
                if upload_id is not None:
                    made.append(upload_id)
            if takes_text and urng.random() < 0.3:
                upload_id = self.upload(account_id, "text", max(floor, placed_at - timedelta(minutes=5)))
                self.link_order_line(line_id, upload_id)
        return made

    def _random_account_holder(self, p: _Person) -> None:
        rng, urng = self._rng, self._urng
        created_at = self._ago(self.now - HISTORY, self.now - timedelta(hours=1))
        deleted_at = self._ago(created_at) if rng.random() < 0.12 else None
        end = deleted_at or self.now
        account_id = self.account(p, created_at, deleted_at)
        if rng.random() < 0.3:
            for _ in range(rng.between(1, 3)):
                self.calendar_event(account_id, self._ago(created_at, end))
        saved: list[tuple[datetime, int]] = []  # (saved_at, upload_id)
        if rng.random() < 0.2:
            for _ in range(rng.between(1, 2)):
                saved_at = self._ago(created_at, end)
                saved_id = self.saved_product(account_id, saved_at)
                for _ in range(urng.between(1, 2)):
                    upload_id = self.upload(account_id, "photo", max(created_at, saved_at - timedelta(minutes=10)))
                    self.link_saved(saved_id, upload_id)
                    if upload_id is not None:
                        saved.append((saved_at, upload_id))
        count = rng.pick((0,) * 25 + (1,) * 35 + (2,) * 20 + (3,) * 12 + (4,) * 8)
        placed = sorted(self._ago(created_at, end) for _ in range(count))
        ordered: list[int] = []
        for placed_at in placed:
            _, lines = self.order(p, account_id, p.email, placed_at)
            # a saved product's photos ordered later, or a reorder of an earlier photo (RET-5a + 5b/5d)
            earlier = [u for s, u in saved if s <= placed_at]
            if earlier and urng.random() < 0.3:
                self.link_order_line(lines[0][0], urng.pick(earlier))
            elif ordered and urng.random() < 0.1:
                self.link_order_line(lines[0][0], urng.pick(ordered))
            ordered += self._order_uploads(lines, account_id, placed_at, created_at)
        if urng.random() < 0.2:  # photos in the library, never saved in a product (RET-5d)
            for _ in range(urng.between(1, 2)):
                self.upload(account_id, "photo", self._ago(created_at, end, urng))
        if rng.random() < 0.4:
            self._random_subscription(p, p.email, account_id, created_at, end)
        if rng.random() < 0.1:
            self._random_conversation(p, p.email, created_at)
        if rng.random() < 0.5:
            self.cookie_preference(account_id, self._ago(max(created_at, self.now - timedelta(days=900))))

    def _random_guest(self, p: _Person) -> None:
        rng, urng = self._rng, self._urng
        first = self._ago(self.now - HISTORY)
        count = rng.pick((1,) * 12 + (2,) * 5 + (3,) * 3)
        placed = sorted([first] + [self._ago(first) for _ in range(count - 1)])
        for n, placed_at in enumerate(placed):
            email = p.email if n == 0 or rng.random() < 0.6 else self.email_variant(p.email, rng)
            _, lines = self.order(p, None, email, placed_at)
            self._order_uploads(lines, None, placed_at, self.now - HISTORY)
        if urng.random() < 0.15:  # uploaded, never ordered (RET-5c)
            for _ in range(urng.between(1, 2)):
                self.upload(None, "photo", self._ago(self.now - timedelta(days=500), None, urng))
        if rng.random() < 0.2:
            email = p.email if rng.random() < 0.7 else self.email_variant(p.email, rng)
            self._random_subscription(p, email, None, first, self.now)
        if rng.random() < 0.1:
            self._random_conversation(p, p.email, first)
        if rng.random() < 0.6:
            self.cookie_preference(None, self._ago(self.now - timedelta(days=900)))

    def _random_prospect(self, p: _Person) -> None:
        rng = self._rng
        first = self._ago(self.now - HISTORY)
        if rng.random() < 0.8:
            self._random_subscription(p, p.email, None, first, self.now)
        if rng.random() < 0.4:
            self._random_conversation(p, p.email, first)
        if rng.random() < 0.5:
            self.cookie_preference(None, self._ago(self.now - timedelta(days=900)))

    def _random_subscription(
        self, p: _Person, email: str, account_id: int | None, earliest: datetime, end: datetime
    ) -> None:
        rng = self._rng
        subscribed_at = self._ago(earliest, end)
        confirmed_at = (
            min(end, subscribed_at + timedelta(seconds=30 + int(rng.random() * 3600))) if rng.random() < 0.85 else None
        )
        unsubscribed_at = self._ago(subscribed_at, end) if rng.random() < 0.15 else None
        sub_id = self.subscription(p, email, account_id, subscribed_at, confirmed_at, unsubscribed_at)
        active_until = unsubscribed_at or end
        if confirmed_at is None:
            return
        for _ in range(rng.pick((0, 1, 2, 3))):  # bulk sends: do not renew RET-4
            self.newsletter_event(sub_id, "send", self._ago(confirmed_at, active_until))
        if rng.random() < 0.45:
            opened = self._ago(confirmed_at, active_until)
            self.newsletter_event(sub_id, "open", opened)
            if rng.random() < 0.4:
                self.newsletter_event(sub_id, "click", min(active_until, opened + timedelta(seconds=20)))

    def _random_conversation(self, p: _Person, email: str, earliest: datetime) -> None:
        rng = self._rng
        asked = self._ago(earliest)
        self.message(p, email if rng.random() < 0.8 else self.email_variant(email, rng), "inbound", asked)
        if rng.random() < 0.7:
            self.message(p, email, "outbound", min(self.now, asked + timedelta(hours=2 + rng.random() * 40)))

    def _random_visit(self) -> None:
        self.visit(self.now - timedelta(seconds=int(self._rng.random() * VISIT_SPAN.total_seconds())))


class _Scripted:
    """The fixed cases (RET-10): for every rule a record exactly at its boundary (expired), one a
    second before (kept), one a second after (overdue by 1 s), one on 29 February 2024, uploads
    under several rules, and records that legal holds keep (RET-8)."""

    OFFSETS = (("at", 0), ("before", 1), ("after", -1))  # clock shift in seconds from the boundary

    def __init__(self, gen: Generator):
        self.g = gen
        self.index = 0

    def person(self) -> _Person:
        p = self.g.person(self.index, self.g._rng)
        self.index += 1
        return p

    def clocks(self, rule_id: str) -> list[datetime]:
        """The boundary cases of a rule, plus the leap-day clock when it lies in the shop's history."""
        boundary = self.g.boundary(rule_id)
        clocks = [boundary + timedelta(seconds=shift) for _, shift in self.OFFSETS]
        if self.g.now - HISTORY < LEAP_DAY_CLOCK < self.g.now:
            clocks.append(LEAP_DAY_CLOCK)
        return clocks

    def run(self, start_index: int) -> int:
        g = self.g
        now = g.now
        self.index = start_index
        day = timedelta(days=1)

        # RET-1 visits
        for clock in self.clocks("visit-data")[:3]:
            g.visit(clock)

        # RET-2 a deleted account with a calendar event and a saved product
        for clock in self.clocks("deleted-accounts"):
            p = self.person()
            created = clock - 900 * day
            account_id = g.account(p, created, clock)
            g.calendar_event(account_id, created + 10 * day)
            g.saved_product(account_id, created + 20 * day)

        # RET-3 a guest whose earlier order was typed with another case and spaces: per customer
        for clock in self.clocks("order-records"):
            p = self.person()
            g.order(p, None, g.email_variant(p.email, g._rng), clock - 300 * day)
            g.order(p, None, p.email, clock)
        # one recent order keeps all of an account's orders
        p = self.person()
        account_id = g.account(p, now - 2000 * day)
        g.order(p, account_id, p.email, now - 1500 * day)
        g.order(p, account_id, p.email, now - 10 * day)

        # RET-4 contact messages: the reply is the last communication
        for clock in self.clocks("contact-messages"):
            p = self.person()
            g.message(p, p.email, "inbound", clock - 2 * day)
            g.message(p, p.email, "outbound", clock)
        # bulk sends do not renew RET-4; an open does
        p = self.person()
        g.message(p, p.email, "inbound", now - 1100 * day)
        sub_id = g.subscription(p, p.email, None, now - 1100 * day, now - 1100 * day + timedelta(minutes=3))
        for months in (1, 2, 3):
            g.newsletter_event(sub_id, "send", now - 30 * months * day)
        p = self.person()
        g.message(p, p.email, "inbound", now - 1100 * day)
        sub_id = g.subscription(p, g.email_variant(p.email, g._rng), None, now - 1100 * day, None)
        g.newsletter_event(sub_id, "open", now - 365 * day)

        # RET-4 newsletter subscriptions: confirmed exactly at the clock, sends after it
        for clock in self.clocks("newsletter-subscriptions"):
            p = self.person()
            sub_id = g.subscription(p, p.email, None, clock - timedelta(minutes=10), clock)
            g.newsletter_event(sub_id, "send", min(now, clock + 20 * day))

        # RET-5a a photo uploaded 40 days before the order: the order's 60 days outlast the 90 days
        for clock in self.clocks("ordered-uploads")[:3]:
            p = self.person()
            _, lines = g.order(p, None, p.email, clock, products=[0])
            g.link_order_line(lines[0][0], g.upload(None, "photo", clock - 40 * day, scripted=True))
        # a tie: a guest's photo uploaded 90 days ago and ordered 60 days ago expire at the same instant
        p = self.person()
        tie = g.boundary("guest-uploads")
        _, lines = g.order(p, None, p.email, g.boundary("ordered-uploads"), products=[0])
        g.link_order_line(lines[0][0], g.upload(None, "photo", tie, scripted=True))
        # an account's unsaved photo from 100 days ago, ordered 61 days ago: RET-5a governs, 1 day overdue
        p = self.person()
        account_id = g.account(p, now - 400 * day)
        _, lines = g.order(p, account_id, p.email, now - 61 * day, products=[0])
        g.link_order_line(lines[0][0], g.upload(account_id, "photo", now - 100 * day, scripted=True))

        # RET-5b saved in a product, no later order
        for clock in self.clocks("saved-uploads"):
            p = self.person()
            account_id = g.account(p, clock - 30 * day)
            saved_id = g.saved_product(account_id, clock)
            g.link_saved(saved_id, g.upload(account_id, "photo", clock - timedelta(minutes=5), scripted=True))
        # ordered more than 60 days ago but saved less than 2 years ago: the save wins, kept
        p = self.person()
        account_id = g.account(p, now - 500 * day)
        saved_id = g.saved_product(account_id, now - 365 * day)
        upload_id = g.upload(account_id, "photo", now - 366 * day, scripted=True)
        g.link_saved(saved_id, upload_id)
        _, lines = g.order(p, account_id, p.email, now - 200 * day, products=[1])
        g.link_order_line(lines[0][0], upload_id)
        # saved 3 years ago, the account ordered half a year ago: renewed (RET-5b), kept
        p = self.person()
        account_id = g.account(p, now - 1200 * day)
        saved_id = g.saved_product(account_id, now - 1100 * day)
        g.link_saved(saved_id, g.upload(account_id, "photo", now - 1100 * day, scripted=True))
        g.order(p, account_id, p.email, now - 180 * day, products=[0])
        # saved 4 years ago, renewed by an order 2 years and 10 days ago: still overdue, under RET-5b
        p = self.person()
        account_id = g.account(p, now - 1600 * day)
        saved_id = g.saved_product(account_id, now - 1460 * day)
        g.link_saved(saved_id, g.upload(account_id, "photo", now - 1460 * day, scripted=True))
        g.order(p, account_id, p.email, now - 740 * day, products=[0])

        # RET-5c a guest's upload, never ordered
        for clock in self.clocks("guest-uploads")[:3]:
            g.upload(None, "photo", clock, scripted=True)
        # RET-5d an account's upload, never saved
        for clock in self.clocks("unsaved-account-uploads")[:3]:
            p = self.person()
            account_id = g.account(p, clock - 10 * day)
            g.upload(
                account_id, "photo" if clock != g.boundary("unsaved-account-uploads") else "text", clock, scripted=True
            )

        # RET-6 cookie preferences
        for clock in self.clocks("cookie-preferences"):
            g.cookie_preference(None, clock)

        if g.holds_enabled:
            self._holds()
        return self.index

    def _holds(self) -> None:
        """Records that would be overdue, kept by legal holds in force at ``now`` (RET-8); and holds
        that are not in force at ``now`` (lifted, ended, not yet set), whose records stay overdue."""
        g = self.g
        now = g.now
        day = timedelta(days=1)
        reason = "Tvist om levering: bevares etter pålegg fra advokat (syntetisk)"
        set_at = now - 30 * day

        def record(table: str, key: int | None, **kw: Any) -> None:
            if key is not None:
                g.holds.append(
                    HoldSpec("record", reason, kw.pop("set_at", set_at), table_name=table, record_key=str(key), **kw)
                )

        record("shop.visits", g.visit(now - timedelta(hours=30)))
        p = self.person()
        order_id, _ = g.order(p, None, p.email, now - 900 * day)
        record("shop.orders", order_id)
        record("shop.cookie_preferences", g.cookie_preference(None, now - 500 * day))
        record("shop.uploads", g.upload(None, "photo", now - 200 * day, scripted=True))
        p = self.person()
        record("shop.contact_messages", g.message(p, p.email, "inbound", now - 1000 * day))

        # a person by account: a deleted account and everything hanging on it
        p = self.person()
        created, deleted = now - 1900 * day, now - 1000 * day
        account_id = g.account(p, created, deleted)
        g.calendar_event(account_id, created + 5 * day)
        saved_id = g.saved_product(account_id, created + 6 * day)
        g.link_saved(saved_id, g.upload(account_id, "photo", created + 6 * day, scripted=True))
        g.order(p, account_id, p.email, created + 7 * day)
        g.upload(account_id, "photo", created + 8 * day, scripted=True)
        g.subscription(p, p.email, account_id, created + 1 * day, created + 1 * day)
        g.cookie_preference(account_id, deleted - 400 * day)
        g.holds.append(HoldSpec("person", reason, set_at, account_id=account_id))

        # a person by e-mail pseudonym: a guest's orders (typed differently), messages and newsletter
        p = self.person()
        g.order(p, None, g.email_variant(p.email, g._rng), now - 1300 * day)
        g.order(p, None, p.email, now - 1000 * day)
        g.message(p, p.email, "inbound", now - 1000 * day)
        g.subscription(p, f" {p.email.upper()}", None, now - 1250 * day, now - 1250 * day)
        g.holds.append(
            HoldSpec(
                "person", "Bokføringsloven: revisjon pågår (syntetisk)", set_at, email=g.email_variant(p.email, g._rng)
            )
        )

        # holds not in force at now: their records are overdue
        record(
            "shop.cookie_preferences",
            g.cookie_preference(None, now - 600 * day),
            set_at=now - 90 * day,
            lifted_at=now - 10 * day,
        )
        record(
            "shop.cookie_preferences", g.cookie_preference(None, now - 601 * day), set_at=now - 90 * day, lifted_at=now
        )  # lifted exactly at now: no longer in force
        record(
            "shop.cookie_preferences", g.cookie_preference(None, now - 602 * day), set_at=now - 90 * day, ends_at=now
        )  # ended exactly at now
        # set after now (and over by the day after): in force neither at now nor when a sweep of
        # now executes, which also honours holds in force at that moment (RET-8)
        record(
            "shop.cookie_preferences",
            g.cookie_preference(None, now - 603 * day),
            set_at=now + day,
            ends_at=now + 2 * day,
        )


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _shop_tables(cur: Any) -> list[str]:
    cur.execute("""
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'shop' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
        ORDER BY c.relname""")
    return [name for (name,) in cur.fetchall()]


def _copy(cur: Any, table: str, lines: list[str]) -> None:
    if not lines:
        return
    schema, name = table.split(".")
    data = io.BytesIO(("\n".join(lines) + "\n").encode("utf-8"))
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(schema, name), sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS[table])
    )
    cur.copy_expert(statement.as_string(cur), data, size=1 << 20)


def _empty_prefix(s3: Any, bucket: str, prefix: str) -> None:
    from governance.objectstore import iter_keys

    keys = list(iter_keys(s3, bucket, prefix))
    for start in range(0, len(keys), 1000):
        s3.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[start : start + 1000]], "Quiet": True}
        )


def _put(s3: Any, bucket: str, key: str, upload_id: int, kind: str, seed: int) -> None:
    if kind == "photo":
        s3.put_object(Bucket=bucket, Key=key, Body=jpeg_payload(upload_id, seed), ContentType="image/jpeg")
    else:
        s3.put_object(
            Bucket=bucket, Key=key, Body=text_payload(upload_id, seed), ContentType="text/plain; charset=utf-8"
        )


def _produce(gen: Generator, out: queue.Queue, stop: threading.Event) -> None:
    """The producer thread: generate chunks ahead of the COPYs; gives up when the consumer stops."""

    def hand_over(item: Any) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    try:
        for batch in gen.batches():
            if not hand_over(batch):
                return
        hand_over(None)
    except BaseException as exc:  # handed to the consumer, which re-raises it
        hand_over(exc)


def seed(
    conn: Any,
    s3: Any,
    policy: Policy,
    now: datetime,
    *,
    customers: int = 500,
    seed: int = 42,
    objects: bool = True,
    max_objects: int | None = None,
    orphan_objects: int = 0,
    holds: bool = True,
    keep_snapshot: bool | None = None,
) -> SeedReport:
    """Empty the shop (and its legal holds) and load a deterministic synthetic one; see the module doc.

    ``objects=False`` loads no uploads (rows or objects) and does not touch S3. ``keep_snapshot``:
    None keeps the reference snapshot up to ``SNAPSHOT_LIMIT`` customers. The caller's connection
    is committed on success and rolled back on failure.
    """
    started = time.monotonic()
    now = as_utc(now)
    keep = customers <= SNAPSHOT_LIMIT if keep_snapshot is None else keep_snapshot
    store = policy.store("shop.uploads")
    prefix = store.objects.prefix if store.objects else "uploads/"
    bucket = policy.object_store.uploads_bucket
    if objects and s3 is None:
        raise ValueError("seed(objects=True) needs an S3 client; pass objects=False to load without uploads")
    gen = Generator(
        policy,
        now,
        customers=customers,
        seed=seed,
        uploads=objects,
        max_uploads=max_objects,
        keep_snapshot=keep,
        holds=holds,
        bucket=bucket,
        prefix=prefix,
    )
    if objects:
        from governance.objectstore import ensure_bucket

        ensure_bucket(s3, bucket)
        _empty_prefix(s3, bucket, prefix)

    pool = ThreadPoolExecutor(max_workers=PUT_THREADS, thread_name_prefix="seed-put") if objects else None
    futures: list[Any] = []
    written = 0
    batches: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()
    producer = threading.Thread(target=_produce, args=(gen, batches, stop), name="seed-generate", daemon=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SET LOCAL synchronous_commit = off")
            tables = _shop_tables(cur)
            cur.execute(
                sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
                    sql.SQL(", ").join(
                        [sql.Identifier("shop", t) for t in tables] + [sql.Identifier("governance", "legal_holds")]
                    )
                )
            )
            cur.execute(
                "SELECT governance.ensure_hourly_partitions('shop.visits'::regclass, %s, %s)",
                (now - timedelta(days=4), now + timedelta(days=2)),
            )
            # Foreign keys are satisfied by construction; skipping their per-row triggers during the
            # bulk load needs superuser, so it is tried and quietly not done otherwise.
            cur.execute("SAVEPOINT seed_replica")
            try:
                cur.execute("SET LOCAL session_replication_role = replica")
                cur.execute("RELEASE SAVEPOINT seed_replica")
                replica = True
            except psycopg2.errors.InsufficientPrivilege:  # not a superuser: load with the triggers
                cur.execute("ROLLBACK TO SAVEPOINT seed_replica")
                replica = False
            producer.start()
            while True:
                item = batches.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                for table in COLUMNS:
                    _copy(cur, table, item.lines[table])
                if pool is not None:
                    futures += [
                        pool.submit(_put, s3, bucket, key, upload_id, kind, seed)
                        for key, upload_id, kind in item.objects
                    ]
                    written += len(item.objects)
            producer.join()
            if replica:
                cur.execute("SET LOCAL session_replication_role = DEFAULT")
            for table, column in ID_COLUMNS.items():
                schema, name = table.split(".")
                cur.execute(
                    sql.SQL(
                        "SELECT setval(pg_get_serial_sequence(%s, %s), GREATEST(max({c}), 1), "
                        "max({c}) IS NOT NULL) FROM {t}"
                    ).format(c=sql.Identifier(column), t=sql.Identifier(schema, name)),
                    (table, column),
                )
            hold_rows = _insert_holds(cur, gen.holds)
            if pool is not None:
                last_id = gen._next["shop.uploads"]
                for n in range(orphan_objects):
                    # a leftover object whose row is gone: an id no row has
                    futures.append(
                        pool.submit(_put, s3, bucket, f"{prefix}guest/{last_id + n}.jpg", last_id + n, "photo", seed)
                    )
                for future in futures:
                    future.result()
            cur.execute(sql.SQL("ANALYZE {}").format(sql.SQL(", ").join(sql.Identifier("shop", t) for t in tables)))
        conn.commit()
    except BaseException:
        stop.set()
        conn.rollback()
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    rows = dict(gen.counts)
    rows[HOLDS_TABLE] = len(hold_rows)
    report = SeedReport(
        rows=rows,
        objects=written + (orphan_objects if objects else 0),
        seconds=time.monotonic() - started,
        orphan_objects=orphan_objects if objects else 0,
        bucket=bucket,
    )
    if gen.snapshot is not None:
        gen.snapshot.legal_holds = hold_rows
        found = reference.overdue(gen.snapshot, policy, now)
        report.snapshot = gen.snapshot
        report.expected_overdue = {rule: len(records) for rule, records in found.items()}
        report.expected_oldest_overdue_seconds = {
            rule: max(records.values(), default=0) for rule, records in found.items()
        }
    report.seconds = time.monotonic() - started
    return report


def _insert_holds(cur: Any, holds: list[HoldSpec]) -> list[dict[str, Any]]:
    """Insert the holds; the pseudonym is computed by the database, as every other hold's is."""
    rows = []
    for h in holds:
        cur.execute(
            """
            INSERT INTO governance.legal_holds (scope, table_name, record_key, account_id, email_sha256,
                                                reason, set_by, set_at, ends_at, lifted_at, lifted_by)
            VALUES (%s, %s, %s, %s, CASE WHEN %s::text IS NULL THEN NULL ELSE governance.email_pseudonym(%s) END,
                    %s, %s, %s, %s, %s, %s)
            RETURNING hold_id, scope, rule_id, table_name, record_key, account_id, email_sha256, set_at, ends_at,
                      lifted_at""",
            (
                h.scope,
                h.table_name,
                h.record_key,
                h.account_id,
                h.email,
                h.email,
                h.reason,
                SEED_ACTOR,
                h.set_at,
                h.ends_at,
                h.lifted_at,
                SEED_ACTOR if h.lifted_at else None,
            ),
        )
        names = [d[0] for d in cur.description]
        rows.append(dict(zip(names, cur.fetchone(), strict=True)))
    return rows


def personal_values(conn: Any) -> set[str]:
    """Every distinct e-mail, first/last name, street, phone number and IP address now in the shop.

    For leak scans: none of these may appear in logs, XComs, evidence or notifications. Values
    shorter than 4 characters are left out (too common as substrings to scan for); the generator
    uses none.
    """
    query = """
        SELECT v FROM (
            SELECT email AS v FROM shop.accounts
            UNION SELECT first_name FROM shop.accounts UNION SELECT last_name FROM shop.accounts
            UNION SELECT email FROM shop.orders UNION SELECT btrim(email) FROM shop.orders
            UNION SELECT first_name FROM shop.orders UNION SELECT last_name FROM shop.orders
            UNION SELECT phone FROM shop.orders
            UNION SELECT delivery_street FROM shop.orders UNION SELECT billing_street FROM shop.orders
            UNION SELECT email FROM shop.newsletter_subscriptions UNION SELECT btrim(email) FROM shop.newsletter_subscriptions
            UNION SELECT first_name FROM shop.newsletter_subscriptions
            UNION SELECT last_name FROM shop.newsletter_subscriptions
            UNION SELECT email FROM shop.contact_messages UNION SELECT btrim(email) FROM shop.contact_messages
            UNION SELECT name FROM shop.contact_messages
            UNION SELECT host(ip_address) FROM shop.visits
        ) values_ WHERE v IS NOT NULL AND length(btrim(v)) >= 4"""
    with conn.cursor() as cur:
        cur.execute(query)
        return {v for (v,) in cur.fetchall()}
