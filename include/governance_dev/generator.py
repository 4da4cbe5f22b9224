"""The random shop: customers whose ages are spread over the shop's history, chunk by chunk.

``Generator(policy, now, customers=N, seed=S)`` yields one ``Batch`` per chunk of customers; the
first chunk also holds the scripted boundary cases and the legal holds (``scenarios``). Account
holders, guests and prospects order, upload, subscribe, write and visit at random instants, so that
at ``now`` every rule (RET-1..RET-6) has records on both sides of its window; the scripted requests
give RET-9's. Determinism: every
draw comes from ``Rng`` streams derived from the seed; nothing reads the wall clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from governance.policy import Policy
from governance.windows import as_utc
from governance_dev.requests import RequestRows, exports_location
from governance_dev.rows import Batch
from governance_dev.scenarios import LEAP_DAY_CLOCK, HoldSpec, Scripted
from governance_dev.tables import NULL, ts
from governance_dev.vocabulary import HISTORY, PRODUCT_BAG, PRODUCTS, Person, Rng

__all__ = ["CHUNK_CUSTOMERS", "LEAP_DAY_CLOCK", "MIN_CUSTOMERS", "VISIT_SPAN", "Generator"]

MIN_CUSTOMERS = 100  # the fixed boundary cases use about 70 of them
CHUNK_CUSTOMERS = 10_000
VISIT_SPAN = timedelta(hours=72)
# Expected uploads per customer when uncapped (measured), used to spread a max_objects cap evenly.
_UPLOADS_PER_CUSTOMER = 3.3


class Generator(RequestRows):
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
        upload_rate = 1.0
        if max_uploads is not None:
            expected = _UPLOADS_PER_CUSTOMER * customers
            upload_rate = min(1.0, 1.1 * max_uploads / expected) if expected else 1.0
        exports = exports_location(policy) if uploads else None  # archives need the object store, as uploads do
        super().__init__(
            as_utc(now),
            exports_bucket=exports[0] if exports else None,
            exports_prefix=exports[1] if exports else "",
            seed=seed,
            bucket=bucket or policy.object_store.uploads_bucket,
            prefix=prefix,
            keep_snapshot=keep_snapshot,
            uploads_enabled=uploads and max_uploads != 0,
            max_uploads=max_uploads,
            upload_rate=upload_rate,
        )
        self.policy = policy
        self.customers = customers
        self.holds_enabled = holds
        self.windows = {rule.id: policy.window(rule) for rule in policy.rules}
        self.holds: list[HoldSpec] = []

    # --- the boundary of a rule: clock + window == now (RET-10) ---

    def boundary(self, rule_id: str) -> datetime:
        return self.now - self.windows[rule_id].relativedelta

    # --- driving ---

    def batches(self) -> Iterator[Batch]:
        """Yield one batch per chunk of customers; the first holds the fixed cases and the holds."""
        scripted = Scripted(self)
        for index, start in enumerate(range(0, self.customers, CHUNK_CUSTOMERS)):
            end = min(start + CHUNK_CUSTOMERS, self.customers)
            self.rng = Rng(f"{self.seed}:chunk:{index}")
            self.urng = Rng(f"{self.seed}:uploads:{index}")
            self.crng = Rng(f"{self.seed}:consents:{index}")  # apart: the consents change nothing else
            if index == 0:
                start = scripted.run(start_index=0)
            for i in range(start, end):
                self._random_customer(i)
            for _ in range((end - start) // 2 + (1 if index == 0 else 0)):
                self._random_visit()
            for _ in range(max(1, (end - start) // 100)):
                self._anonymised_order()
            batch, self.batch = self.batch, Batch()
            yield batch

    def _anonymised_order(self) -> None:
        """An order whose RET-3 window ran out before: anonymised by an earlier sweep (RET-8)."""
        rng = self.rng
        order_id = self._take("shop.orders")
        placed_at = self.now - timedelta(days=730 + rng.random() * 1400)
        anonymised_at = min(self.now, placed_at + timedelta(days=731 + rng.random() * 20))
        kind, price, _, _ = PRODUCTS[rng.pick(PRODUCT_BAG)]
        line_id = self._take("shop.order_lines")
        self._emit(
            "shop.order_lines",
            f"{line_id}\t{order_id}\t{kind}\t1\t{price:.2f}",
            {"order_line_id": line_id, "order_id": order_id} if self._keep else None,
        )
        person = "\t".join([NULL] * 7)  # e-mail .. delivery city: set null (RET-8); the country is kept
        billing = "\t".join([NULL] * 3)
        self._emit(
            "shop.orders",
            f"{order_id}\t{NULL}\t{person}\tNO\t{billing}\tanonymised\t{NULL}\t{NULL}\t"
            f"{price + 49:.2f}\tNOK\t{ts(placed_at)}\t{ts(anonymised_at)}",
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

    # --- random customers: ages spread over the shop's history ---

    def _ago(self, earliest: datetime, latest: datetime | None = None, rng: Rng | None = None) -> datetime:
        """A whole second uniformly in [earliest, latest] (upload times draw from the uploads' stream)."""
        latest = latest or self.now
        span = max(0, int((latest - earliest).total_seconds()))
        return earliest + timedelta(seconds=int((rng or self.rng).random() * span))

    def _random_customer(self, index: int) -> None:
        rng = self.rng
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
        urng = self.urng
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

    def _random_account_holder(self, p: Person) -> None:
        rng, urng = self.rng, self.urng
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
        if self.crng.random() < 0.4:  # TP-1, CON-1: consented to advertising audiences; some withdrew
            given = self._ago(created_at, end, self.crng)
            withdrawn = self._ago(given, end, self.crng) if self.crng.random() < 0.1 else None
            self.marketing_consent(account_id, given, withdrawn)

    def _random_guest(self, p: Person) -> None:
        rng, urng = self.rng, self.urng
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

    def _random_prospect(self, p: Person) -> None:
        rng = self.rng
        first = self._ago(self.now - HISTORY)
        if rng.random() < 0.8:
            self._random_subscription(p, p.email, None, first, self.now)
        if rng.random() < 0.4:
            self._random_conversation(p, p.email, first)
        if rng.random() < 0.5:
            self.cookie_preference(None, self._ago(self.now - timedelta(days=900)))

    def _random_subscription(
        self, p: Person, email: str, account_id: int | None, earliest: datetime, end: datetime
    ) -> None:
        rng = self.rng
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

    def _random_conversation(self, p: Person, email: str, earliest: datetime) -> None:
        rng = self.rng
        asked = self._ago(earliest)
        self.message(p, email if rng.random() < 0.8 else self.email_variant(email, rng), "inbound", asked)
        if rng.random() < 0.7:
            self.message(p, email, "outbound", min(self.now, asked + timedelta(hours=2 + rng.random() * 40)))

    def _random_visit(self) -> None:
        self.visit(self.now - timedelta(seconds=int(self.rng.random() * VISIT_SPAN.total_seconds())))
