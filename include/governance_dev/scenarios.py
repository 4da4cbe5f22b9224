"""The scripted boundary cases of every rule and the legal holds the seed sets (RET-8, RET-10).

For every rule: a record exactly at its boundary (expired), one a second before (kept), one a
second after (overdue by 1 s), one on 29 February 2024; uploads under several rules where the
latest expiry wins; records that holds in force keep, and records whose holds are lifted, ended
or not yet set; then the requests of the people scripted here (RET-9, ``governance_dev.requests``).
They are written into the generator's first chunk, always in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from governance_dev import reference
from governance_dev.requests import script_requests
from governance_dev.vocabulary import HISTORY, Person

if TYPE_CHECKING:
    from governance_dev.generator import Generator

LEAP_DAY_CLOCK = datetime(2024, 2, 29, 12, 0, tzinfo=UTC)  # P2Y -> 2026-02-28, P12M -> 2025-02-28 (RET-10)
DAY = timedelta(days=1)
HOLD_REASON = "Tvist om levering: bevares etter pålegg fra advokat (syntetisk)"


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


class Scripted:
    """Writes the fixed cases through the generator's row methods, person by person."""

    OFFSETS = (("at", 0), ("before", 1), ("after", -1))  # clock shift in seconds from the boundary

    def __init__(self, gen: Generator):
        self.g = gen
        self.index = 0
        self.people: list[Person] = []  # everyone scripted, in order: the requests' subjects
        self.held_people: list[tuple[Person, int | None, str]] = []  # (person, account, an address of theirs)

    def person(self) -> Person:
        p = self.g.person(self.index, self.g.rng)
        self.index += 1
        self.people.append(p)
        return p

    def clocks(self, rule_id: str) -> list[datetime]:
        """The boundary cases of a rule, plus the leap-day clock when it lies in the shop's history."""
        boundary = self.g.boundary(rule_id)
        clocks = [boundary + timedelta(seconds=shift) for _, shift in self.OFFSETS]
        if self.g.now - HISTORY < LEAP_DAY_CLOCK < self.g.now:
            clocks.append(LEAP_DAY_CLOCK)
        return clocks

    def run(self, start_index: int) -> int:
        """Write every case; returns the index of the next customer (the random ones follow)."""
        self.index = start_index
        for clock in self.clocks("visit-data")[:3]:  # RET-1
            self.g.visit(clock)
        self._deleted_accounts()
        self._orders()
        self._contact_messages()
        self._newsletter_subscriptions()
        self._ordered_uploads()
        self._saved_uploads()
        self._unordered_uploads()
        for clock in self.clocks("cookie-preferences"):  # RET-6
            self.g.cookie_preference(None, clock)
        if self.g.holds_enabled:
            self._record_holds()
            self._person_holds()
            self._holds_not_in_force()
        script_requests(self)  # RET-9; draws nothing random, so the rest of the shop stays as it was
        return self.index

    def _deleted_accounts(self) -> None:
        """RET-2: a deleted account with a calendar event and a saved product."""
        g = self.g
        for clock in self.clocks("deleted-accounts"):
            p = self.person()
            created = clock - 900 * DAY
            account_id = g.account(p, created, clock)
            g.calendar_event(account_id, created + 10 * DAY)
            g.saved_product(account_id, created + 20 * DAY)

    def _orders(self) -> None:
        """RET-3: a guest whose earlier order was typed with another case and spaces: per customer;
        and one recent order that keeps all of an account's orders."""
        g = self.g
        for clock in self.clocks("order-records"):
            p = self.person()
            g.order(p, None, g.email_variant(p.email, g.rng), clock - 300 * DAY)
            g.order(p, None, p.email, clock)
        p = self.person()
        account_id = g.account(p, g.now - 2000 * DAY)
        g.order(p, account_id, p.email, g.now - 1500 * DAY)
        g.order(p, account_id, p.email, g.now - 10 * DAY)

    def _contact_messages(self) -> None:
        """RET-4 contact messages: the reply is the last communication; bulk sends do not renew
        it, an open does."""
        g, now = self.g, self.g.now
        for clock in self.clocks("contact-messages"):
            p = self.person()
            g.message(p, p.email, "inbound", clock - 2 * DAY)
            g.message(p, p.email, "outbound", clock)
        p = self.person()
        g.message(p, p.email, "inbound", now - 1100 * DAY)
        sub_id = g.subscription(p, p.email, None, now - 1100 * DAY, now - 1100 * DAY + timedelta(minutes=3))
        for months in (1, 2, 3):
            g.newsletter_event(sub_id, "send", now - 30 * months * DAY)
        p = self.person()
        g.message(p, p.email, "inbound", now - 1100 * DAY)
        sub_id = g.subscription(p, g.email_variant(p.email, g.rng), None, now - 1100 * DAY, None)
        g.newsletter_event(sub_id, "open", now - 365 * DAY)

    def _newsletter_subscriptions(self) -> None:
        """RET-4 newsletter subscriptions: confirmed exactly at the clock, sends after it."""
        g = self.g
        for clock in self.clocks("newsletter-subscriptions"):
            p = self.person()
            sub_id = g.subscription(p, p.email, None, clock - timedelta(minutes=10), clock)
            g.newsletter_event(sub_id, "send", min(g.now, clock + 20 * DAY))

    def _ordered_uploads(self) -> None:
        """RET-5a: a photo uploaded 40 days before the order (the order's 60 days outlast the 90
        days); a tie between RET-5a and RET-5c; an account's unsaved photo that RET-5a governs."""
        g = self.g
        for clock in self.clocks("ordered-uploads")[:3]:
            p = self.person()
            _, lines = g.order(p, None, p.email, clock, products=[0])
            g.link_order_line(lines[0][0], g.upload(None, "photo", clock - 40 * DAY, scripted=True))
        # a guest's photo uploaded 90 days ago and ordered 60 days ago expire at the same instant
        p = self.person()
        tie = g.boundary("guest-uploads")
        _, lines = g.order(p, None, p.email, g.boundary("ordered-uploads"), products=[0])
        g.link_order_line(lines[0][0], g.upload(None, "photo", tie, scripted=True))
        # an account's unsaved photo from 100 days ago, ordered 61 days ago: RET-5a governs, 1 day overdue
        p = self.person()
        account_id = g.account(p, g.now - 400 * DAY)
        _, lines = g.order(p, account_id, p.email, g.now - 61 * DAY, products=[0])
        g.link_order_line(lines[0][0], g.upload(account_id, "photo", g.now - 100 * DAY, scripted=True))

    def _saved_uploads(self) -> None:
        """RET-5b: saved in a product with no later order, and saves that orders renew (or not)."""
        g, now = self.g, self.g.now
        for clock in self.clocks("saved-uploads"):
            p = self.person()
            account_id = g.account(p, clock - 30 * DAY)
            saved_id = g.saved_product(account_id, clock)
            g.link_saved(saved_id, g.upload(account_id, "photo", clock - timedelta(minutes=5), scripted=True))
        # ordered more than 60 days ago but saved less than 2 years ago: the save wins, kept
        p = self.person()
        account_id = g.account(p, now - 500 * DAY)
        saved_id = g.saved_product(account_id, now - 365 * DAY)
        upload_id = g.upload(account_id, "photo", now - 366 * DAY, scripted=True)
        g.link_saved(saved_id, upload_id)
        _, lines = g.order(p, account_id, p.email, now - 200 * DAY, products=[1])
        g.link_order_line(lines[0][0], upload_id)
        # saved 3 years ago, the account ordered half a year ago: renewed (RET-5b), kept
        p = self.person()
        account_id = g.account(p, now - 1200 * DAY)
        saved_id = g.saved_product(account_id, now - 1100 * DAY)
        g.link_saved(saved_id, g.upload(account_id, "photo", now - 1100 * DAY, scripted=True))
        g.order(p, account_id, p.email, now - 180 * DAY, products=[0])
        # saved 4 years ago, renewed by an order 2 years and 10 days ago: still overdue, under RET-5b
        p = self.person()
        account_id = g.account(p, now - 1600 * DAY)
        saved_id = g.saved_product(account_id, now - 1460 * DAY)
        g.link_saved(saved_id, g.upload(account_id, "photo", now - 1460 * DAY, scripted=True))
        g.order(p, account_id, p.email, now - 740 * DAY, products=[0])

    def _unordered_uploads(self) -> None:
        """RET-5c a guest's upload, never ordered; RET-5d an account's upload, never saved."""
        g = self.g
        for clock in self.clocks("guest-uploads")[:3]:
            g.upload(None, "photo", clock, scripted=True)
        for clock in self.clocks("unsaved-account-uploads")[:3]:
            p = self.person()
            account_id = g.account(p, clock - 10 * DAY)
            kind = "photo" if clock != g.boundary("unsaved-account-uploads") else "text"
            g.upload(account_id, kind, clock, scripted=True)

    def hold_record(self, table: str, key: int | None, set_at: datetime | None = None, **kw: Any) -> None:
        if key is not None:
            set_at = set_at or self.g.now - 30 * DAY
            self.g.holds.append(HoldSpec("record", HOLD_REASON, set_at, table_name=table, record_key=str(key), **kw))

    def _record_holds(self) -> None:
        """Records that would be overdue, kept by record holds in force at ``now`` (RET-8)."""
        g, now = self.g, self.g.now
        self.hold_record("shop.visits", g.visit(now - timedelta(hours=30)))
        p = self.person()
        order_id, _ = g.order(p, None, p.email, now - 900 * DAY)
        self.hold_record("shop.orders", order_id)
        self.hold_record("shop.cookie_preferences", g.cookie_preference(None, now - 500 * DAY))
        self.hold_record("shop.uploads", g.upload(None, "photo", now - 200 * DAY, scripted=True))
        p = self.person()
        self.hold_record("shop.contact_messages", g.message(p, p.email, "inbound", now - 1000 * DAY))

    def _person_holds(self) -> None:
        """A person held by account (a deleted account and everything hanging on it) and a person
        held by e-mail pseudonym (a guest's orders typed differently, messages and newsletter)."""
        g, now = self.g, self.g.now
        set_at = now - 30 * DAY
        p = self.person()
        created, deleted = now - 1900 * DAY, now - 1000 * DAY
        account_id = g.account(p, created, deleted)
        g.calendar_event(account_id, created + 5 * DAY)
        saved_id = g.saved_product(account_id, created + 6 * DAY)
        g.link_saved(saved_id, g.upload(account_id, "photo", created + 6 * DAY, scripted=True))
        g.order(p, account_id, p.email, created + 7 * DAY)
        g.upload(account_id, "photo", created + 8 * DAY, scripted=True)
        g.subscription(p, p.email, account_id, created + 1 * DAY, created + 1 * DAY)
        g.cookie_preference(account_id, deleted - 400 * DAY)
        g.holds.append(HoldSpec("person", HOLD_REASON, set_at, account_id=account_id))
        self.held_people.append((p, account_id, p.email))

        p = self.person()
        g.order(p, None, g.email_variant(p.email, g.rng), now - 1300 * DAY)
        g.order(p, None, p.email, now - 1000 * DAY)
        g.message(p, p.email, "inbound", now - 1000 * DAY)
        g.subscription(p, f" {p.email.upper()}", None, now - 1250 * DAY, now - 1250 * DAY)
        reason = "Bokføringsloven: revisjon pågår (syntetisk)"
        g.holds.append(HoldSpec("person", reason, set_at, email=g.email_variant(p.email, g.rng)))
        self.held_people.append((p, None, f" {p.email.upper()}"))

    def _holds_not_in_force(self) -> None:
        """Holds not in force at ``now`` (lifted, ended, not yet set): their records are overdue."""
        g, now = self.g, self.g.now
        table = "shop.cookie_preferences"
        lifted, earlier = now - 10 * DAY, now - 90 * DAY
        self.hold_record(table, g.cookie_preference(None, now - 600 * DAY), set_at=earlier, lifted_at=lifted)
        # lifted exactly at now: no longer in force
        self.hold_record(table, g.cookie_preference(None, now - 601 * DAY), set_at=earlier, lifted_at=now)
        # ended exactly at now
        self.hold_record(table, g.cookie_preference(None, now - 602 * DAY), set_at=earlier, ends_at=now)
        # set after now (and over by the day after): in force neither at now nor when a sweep of
        # now executes, which also honours holds in force at that moment (RET-8)
        self.hold_record(table, g.cookie_preference(None, now - 603 * DAY), set_at=now + DAY, ends_at=now + 2 * DAY)
