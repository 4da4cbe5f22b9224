"""Names, pools and payloads of the synthetic photo shop: what its rows and objects are made of.

The fixed vocabulary (products, payment methods, regions, Norwegian titles and message bodies),
the name/street/place pools drawn once from Faker's Norwegian locale (Faker has no ``nb_NO``; its
Bokmål data is ``no_NO``), the cheap seeded random stream every draw goes through, and the tiny
photo and text payloads of uploads. Faker is called only to build the pools, never per row.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

FAKER_LOCALE = "no_NO"  # Faker's Norwegian (Bokmål); Faker has no 'nb_NO'
HISTORY = timedelta(days=6 * 365)  # how far back the shop's history goes

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
PRODUCT_BAG = tuple(i for i, w in enumerate(PRODUCT_WEIGHTS) for _ in range(w))
PAYMENT_BAG = tuple(m for m, w in zip(PAYMENT_METHODS, PAYMENT_WEIGHTS, strict=True) for _ in range(w))
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
ASCII_FOLD = str.maketrans({"æ": "ae", "ø": "o", "å": "aa", "é": "e", "ü": "u", "ö": "o", "ä": "a", " ": "", "'": ""})

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


class Rng(random.Random):
    """random.Random with cheap uniform draws (no rejection sampling: a float scaled to an int)."""

    def pick(self, seq: Any) -> Any:
        return seq[int(self.random() * len(seq))]

    def below(self, n: int) -> int:
        return int(self.random() * n)

    def between(self, low: int, high: int) -> int:
        return low + int(self.random() * (high - low + 1))


@dataclass(frozen=True)
class Pools:
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    streets: tuple[str, ...]
    places: tuple[tuple[str, str], ...]  # (postcode, city)


def build_pools(seed: int) -> Pools:
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
    rng = Rng(f"{seed}:pools")
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
    check_copy_safe((*first_names, *last_names, *streets, *(c for _, c in places), *(pc for pc, _ in places)))
    return Pools(first_names, last_names, streets, places)


def check_copy_safe(values: Iterable[str]) -> None:
    """COPY text is never escaped, so no value may hold a COPY control character (tab, newline, backslash)."""
    for value in values:
        if any(ch in value for ch in "\t\n\r\\"):
            raise ValueError(f"{value!r} contains a COPY control character")


check_copy_safe((*CALENDAR_TITLES, *SAVED_TITLES, *CONTACT_SUBJECTS, *INBOUND_BODIES, *OUTBOUND_BODIES, *REGIONS))


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


@dataclass
class Person:
    """A synthetic customer's personal data (all made up; never logged)."""

    first: str
    last: str
    email: str
    phone: str
    street: str
    postcode: str
    city: str


def make_person(p: Pools, index: int, rng: Rng) -> Person:
    """A customer: a name from the pools, a unique e-mail address (the index), phone and address."""
    first = rng.pick(p.first_names)
    last = rng.pick(p.last_names)
    a, b = first.lower().translate(ASCII_FOLD), last.lower().translate(ASCII_FOLD)
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
    return Person(first, last, email, phone, street, postcode, city)


def email_variant(email: str, rng: Rng) -> str:
    """The same address as a person types it another day: case and surrounding spaces (RET-3, RET-4)."""
    r = rng.random()
    if r < 0.35:
        return email.capitalize()
    if r < 0.55:
        return email.upper()
    if r < 0.8:
        return f" {email} "
    return f"{email.title()} "
