"""A plain-Python reference of the reference photo shop's retention rules (the test oracle).

Given the shop's rows as plain dicts (column name -> value), the policy and "now", it says which
records are overdue under which rule, and by how many seconds. It is written from docs/requirements.md
directly, shares no SQL with the sweeps or the audit, and is what the generator's ground truth,
the unit tests and the property tests compare against. Windows come from the policy, so a
deployment's decisions (RET-5d, RET-6) are honoured.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from governance.policy import Policy
from governance.windows import Window, as_utc

Row = dict[str, Any]
UPLOAD_RULES = ("ordered-uploads", "saved-uploads", "guest-uploads", "unsaved-account-uploads")


@dataclass
class Snapshot:
    """The rows the rules look at; every list holds dicts keyed by column name."""

    visits: list[Row] = field(default_factory=list)
    accounts: list[Row] = field(default_factory=list)
    calendar_events: list[Row] = field(default_factory=list)
    saved_products: list[Row] = field(default_factory=list)
    orders: list[Row] = field(default_factory=list)
    order_lines: list[Row] = field(default_factory=list)
    order_line_uploads: list[Row] = field(default_factory=list)
    saved_product_uploads: list[Row] = field(default_factory=list)
    uploads: list[Row] = field(default_factory=list)
    newsletter_subscriptions: list[Row] = field(default_factory=list)
    newsletter_events: list[Row] = field(default_factory=list)
    contact_messages: list[Row] = field(default_factory=list)
    cookie_preferences: list[Row] = field(default_factory=list)
    legal_holds: list[Row] = field(default_factory=list)
    subject_requests: list[Row] = field(default_factory=list)
    request_contacts: list[Row] = field(default_factory=list)
    request_exports: list[Row] = field(default_factory=list)

    @staticmethod
    def table_of(name: str) -> str:
        """The schema-qualified table a field of the snapshot is read from."""
        return f"governance.{name}" if name in GOVERNANCE_TABLES else f"shop.{name}"


# Fields of the snapshot read from the governance schema; the others are the shop's tables.
GOVERNANCE_TABLES = ("legal_holds", "subject_requests", "request_contacts", "request_exports")
# RET-9: a request is closed (its copies' clocks start) in these states (REQ-1).
CLOSED_REQUEST_STATES = ("completed", "refused", "withdrawn")


def normalise_email(email: str) -> str:
    """RET-10: the address trimmed of spaces and lower-cased, exactly as the SQL ``lower(btrim(email))``
    of the clock views, the audit predicates and ``governance.email_pseudonym``: ``btrim`` removes
    spaces only, so a tab or a no-break space stays part of the address on both sides."""
    return email.strip(" ").lower()


def email_pseudonym(email: str) -> str:
    """Same as SQL governance.email_pseudonym: sha256 of the trimmed, lower-cased address."""
    return hashlib.sha256(normalise_email(email).encode("utf-8")).hexdigest()


def active_holds(holds: Iterable[Row], now: datetime) -> list[Row]:
    now = as_utc(now)
    return [
        h
        for h in holds
        if as_utc(h["set_at"]) <= now
        and (h.get("ends_at") is None or as_utc(h["ends_at"]) > now)
        and (h.get("lifted_at") is None or as_utc(h["lifted_at"]) > now)
    ]


def holds_in_force(holds: Iterable[Row], now: datetime, also_at: datetime | None = None) -> list[Row]:
    """Holds in force at the run's "now", or also at ``also_at`` (when a sweep really executes:
    a hold placed after a run's "now" still protects a rerun of that run, RET-8)."""
    holds = list(holds)
    active = active_holds(holds, now)
    if also_at is not None:
        seen = {id(h) for h in active}
        active += [h for h in active_holds(holds, also_at) if id(h) not in seen]
    return active


class _Holds:
    def __init__(self, holds: list[Row], accounts: Iterable[Row] = ()):
        self.rules = {h["rule_id"] for h in holds if h["scope"] == "rule"}
        self.records = {(h["table_name"], str(h["record_key"])) for h in holds if h["scope"] == "record"}
        self.accounts = {h["account_id"] for h in holds if h["scope"] == "person" and h.get("account_id") is not None}
        self.emails = {h["email_sha256"] for h in holds if h["scope"] == "person" and h.get("email_sha256")}
        # RET-8: a person hold covers the whole person: a held account's address, a held address's accounts.
        held_accounts, held_emails = set(self.accounts), set(self.emails)
        for account in accounts:
            if account.get("email") is None:
                continue
            pseudonym = email_pseudonym(account["email"])
            if account["account_id"] in held_accounts or pseudonym in held_emails:
                self.accounts.add(account["account_id"])
                self.emails.add(pseudonym)

    def held(
        self, rules: Iterable[str], table: str, key: Any, account_id: Any = None, email: str | None = None
    ) -> bool:
        if self.rules & set(rules):
            return True
        if (table, str(key)) in self.records:
            return True
        if account_id is not None and account_id in self.accounts:
            return True
        return bool(email is not None and self.emails and email_pseudonym(email) in self.emails)


def overdue(
    snapshot: Snapshot, policy: Policy, now: datetime, *, holds_also_at: datetime | None = None
) -> dict[str, dict[int, int]]:
    """rule id -> {record id: whole seconds overdue} for every record past its window, not held.

    ``holds_also_at``: also honour holds in force at that instant (what a sweep does: the moment
    it executes), besides those in force at ``now`` (what the audit does)."""
    found = _Overdue(snapshot, policy, as_utc(now), holds_also_at)
    found.visits()
    found.deleted_accounts()
    found.orders()
    found.communication()
    found.uploads()
    found.cookie_preferences()
    found.request_copies()
    return found.result


class _Overdue:
    """One evaluation of every rule over a snapshot at ``now``; ``result`` is what ``overdue`` returns."""

    def __init__(self, snapshot: Snapshot, policy: Policy, now: datetime, holds_also_at: datetime | None):
        self.s = snapshot
        self.now = now
        self.w: dict[str, Window] = {rule.id: policy.window(rule) for rule in policy.rules}
        self.holds = _Holds(holds_in_force(snapshot.legal_holds, now, holds_also_at), snapshot.accounts)
        self.result: dict[str, dict[int, int]] = {rule.id: {} for rule in policy.rules}

    def record(self, rule_id: str, key: int, expires_at: datetime) -> None:
        self.result[rule_id][key] = int((self.now - expires_at).total_seconds() // 1)

    def visits(self) -> None:
        """RET-1: visits, 24 h after the last activity."""
        for v in self.s.visits:
            expires = self.w["visit-data"].expires_at(v["last_activity_at"])
            if expires <= self.now and not self.holds.held(["visit-data"], "shop.visits", v["visit_id"]):
                self.record("visit-data", v["visit_id"], expires)

    def deleted_accounts(self) -> None:
        """RET-2: a deleted account and what hangs on it, 2 years after the deletion."""
        accounts = {a["account_id"]: a for a in self.s.accounts}
        for rule_id, table, rows, key in (
            ("deleted-accounts", "shop.accounts", self.s.accounts, "account_id"),
            ("deleted-account-calendar-events", "shop.calendar_events", self.s.calendar_events, "event_id"),
            ("deleted-account-saved-products", "shop.saved_products", self.s.saved_products, "saved_product_id"),
        ):
            for row in rows:
                account = accounts[row["account_id"]]
                if account.get("deleted_at") is None:
                    continue
                expires = self.w[rule_id].expires_at(account["deleted_at"])
                # RET-8: the account row names its address; what hangs on it names only the account id
                # (as the sweep's and the audit's hold predicates read those stores).
                email = account["email"] if table == "shop.accounts" else None
                if expires <= self.now and not self.holds.held(
                    [rule_id], table, row[key], account["account_id"], email
                ):
                    self.record(rule_id, row[key], expires)

    def orders(self) -> None:
        """RET-3: per customer (account, or trimmed lower-case e-mail without account): the last order."""

        def customer(order: Row) -> tuple[str, Any]:
            if order.get("account_id") is not None:
                return ("account", order["account_id"])
            return ("email", normalise_email(order["email"]))

        live_orders = [o for o in self.s.orders if o.get("anonymised_at") is None]
        last_order: dict[tuple[str, Any], datetime] = {}
        for o in live_orders:
            c = customer(o)
            last_order[c] = max(last_order.get(c, as_utc(o["placed_at"])), as_utc(o["placed_at"]))
        for o in live_orders:
            expires = self.w["order-records"].expires_at(last_order[customer(o)])
            if expires <= self.now and not self.holds.held(
                ["order-records"], "shop.orders", o["order_id"], o.get("account_id"), o.get("email")
            ):
                self.record("order-records", o["order_id"], expires)

    def communication(self) -> None:
        """RET-4: per person (e-mail), the last communication; bulk sends do not count."""
        last_touch: dict[str, datetime] = {}

        def touch(email: str, at: datetime | None) -> None:
            if at is not None:
                person = normalise_email(email)
                last_touch[person] = max(last_touch.get(person, as_utc(at)), as_utc(at))

        subscriptions = {s["subscription_id"]: s for s in self.s.newsletter_subscriptions}
        for m in self.s.contact_messages:
            touch(m["email"], m["sent_at"])
        for s in self.s.newsletter_subscriptions:
            touch(s["email"], s["subscribed_at"])
            touch(s["email"], s.get("confirmed_at"))
        for e in self.s.newsletter_events:
            if e["kind"] in ("open", "click"):
                touch(subscriptions[e["subscription_id"]]["email"], e["occurred_at"])
        for m in self.s.contact_messages:
            expires = self.w["contact-messages"].expires_at(last_touch[normalise_email(m["email"])])
            if expires <= self.now and not self.holds.held(
                ["contact-messages"], "shop.contact_messages", m["message_id"], None, m["email"]
            ):
                self.record("contact-messages", m["message_id"], expires)
        for s in self.s.newsletter_subscriptions:
            expires = self.w["newsletter-subscriptions"].expires_at(last_touch[normalise_email(s["email"])])
            if expires <= self.now and not self.holds.held(
                ["newsletter-subscriptions"],
                "shop.newsletter_subscriptions",
                s["subscription_id"],
                s.get("account_id"),
                s["email"],
            ):
                self.record("newsletter-subscriptions", s["subscription_id"], expires)

    def _upload_expiries(self) -> dict[int, list[tuple[datetime, int, str]]]:
        """upload id -> (expiry, tie-break rank, rule) under every RET-5 rule that applies to it."""
        orders_by_id = {o["order_id"]: o for o in self.s.orders}
        line_order = {line["order_line_id"]: line["order_id"] for line in self.s.order_lines}
        account_last_order: dict[Any, datetime] = {}
        for o in self.s.orders:
            if o.get("account_id") is not None:
                a = o["account_id"]
                account_last_order[a] = max(account_last_order.get(a, as_utc(o["placed_at"])), as_utc(o["placed_at"]))
        saved = {p["saved_product_id"]: p for p in self.s.saved_products}
        expiries: dict[int, list[tuple[datetime, int, str]]] = defaultdict(list)
        for link in self.s.order_line_uploads:
            placed = orders_by_id[line_order[link["order_line_id"]]]["placed_at"]
            expiries[link["upload_id"]].append((self.w["ordered-uploads"].expires_at(placed), -1, "ordered-uploads"))
        saved_uploads = set()
        for link in self.s.saved_product_uploads:
            product = saved[link["saved_product_id"]]
            clock = as_utc(product["saved_at"])
            last = account_last_order.get(product["account_id"])
            if last is not None and last > clock:
                clock = last
            expiries[link["upload_id"]].append((self.w["saved-uploads"].expires_at(clock), -2, "saved-uploads"))
            saved_uploads.add(link["upload_id"])
        for u in self.s.uploads:
            if u.get("account_id") is None:
                expiries[u["upload_id"]].append(
                    (self.w["guest-uploads"].expires_at(u["uploaded_at"]), -3, "guest-uploads")
                )
            elif u["upload_id"] not in saved_uploads:
                expiries[u["upload_id"]].append(
                    (self.w["unsaved-account-uploads"].expires_at(u["uploaded_at"]), -4, "unsaved-account-uploads")
                )
        return expiries

    def uploads(self) -> None:
        """RET-5a..d: every rule that applies must have expired; the latest expiry governs."""
        expiries = self._upload_expiries()
        for u in self.s.uploads:
            applicable = expiries[u["upload_id"]]
            expires, _, governing = max(applicable)  # latest expiry; ties go to the first rule
            if expires <= self.now and not self.holds.held(
                {r for _, _, r in applicable}, "shop.uploads", u["upload_id"], u.get("account_id")
            ):
                self.record(governing, u["upload_id"], expires)

    def cookie_preferences(self) -> None:
        """RET-6: cookie preferences, the decision's window from when they were given."""
        for c in self.s.cookie_preferences:
            expires = self.w["cookie-preferences"].expires_at(c["given_at"])
            if expires <= self.now and not self.holds.held(
                ["cookie-preferences"], "shop.cookie_preferences", c["preference_id"], c.get("account_id")
            ):
                self.record("cookie-preferences", c["preference_id"], expires)

    def request_copies(self) -> None:
        """RET-9: a request's export archive, a window after it was written; its answer address, a
        window after the request closed (an open request's address never expires)."""
        for x in self.s.request_exports:
            expires = self.w["request-exports"].expires_at(x["created_at"])
            if expires <= self.now and not self.holds.held(
                ["request-exports"], "governance.request_exports", x["export_id"]
            ):
                self.record("request-exports", x["export_id"], expires)
        closed = {
            r["request_id"]: r["closed_at"] for r in self.s.subject_requests if r["state"] in CLOSED_REQUEST_STATES
        }
        for c in self.s.request_contacts:
            if c["request_id"] not in closed:
                continue
            expires = self.w["request-contacts"].expires_at(closed[c["request_id"]])
            if expires <= self.now and not self.holds.held(
                ["request-contacts"], "governance.request_contacts", c["request_id"], None, c["reply_to"]
            ):
                self.record("request-contacts", c["request_id"], expires)
