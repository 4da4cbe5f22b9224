"""Data-subject requests in the synthetic shop (REQ-1) and the copies they make (RET-9, CAT-7).

``RequestRows`` adds to the shop's rows the request ledger (``governance.subject_requests``), the
answer addresses kept apart (``request_contacts``) and the export archives with their objects
(``request_exports``, ACC-1, POR-1). ``script_requests`` writes the scripted RET-9 cases: for each
of the rules ``request-exports`` (clock: the archive's creation) and ``request-contacts`` (clock:
the request's closing), records exactly at the boundary, a second either side and on the leap day;
open requests, whose address has no clock; and records that legal holds keep (RET-8). No random
draw is made here, so the rest of the shop is the same with or without requests.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from dateutil.relativedelta import relativedelta

from governance.policy import Policy
from governance_dev import reference
from governance_dev.rows import ShopRows
from governance_dev.tables import id_or_null, opt, ts
from governance_dev.vocabulary import Person

if TYPE_CHECKING:
    from governance_dev.scenarios import Scripted

REQUEST_RULES = ("request-exports", "request-contacts")
EXPORTS_TABLE = "governance.request_exports"
STAFF = "kundeservice"  # who opened and verified a request: a desk, never a person's name
VERIFICATION = "id_document"  # how the identity was checked (REQ-1); never the document itself
REFUSED = "Identiteten kunne ikke bekreftes (syntetisk)"
ZIP_TIME = (2020, 1, 1, 0, 0, 0)  # a fixed member time: the same export gives the same bytes
DAY = timedelta(days=1)


def exports_location(policy: Policy) -> tuple[str, str] | None:
    """(bucket, prefix) of the export archives, from the data map's store of them; None without one."""
    try:
        objects = policy.store(EXPORTS_TABLE).objects
    except KeyError:
        return None
    return (objects.buckets[0], objects.prefix) if objects is not None else None


def export_payload(export_id: int, seed: int) -> bytes:
    """A small, valid and deterministic ZIP standing in for an export archive."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        member = zipfile.ZipInfo("README.txt", date_time=ZIP_TIME)
        archive.writestr(member, f"Syntetisk innsynseksport {export_id} (seed {seed})\n")
    return buffer.getvalue()


class RequestRows(ShopRows):
    """The shop's rows plus requests; ``exports_bucket`` None writes no export archive (no S3)."""

    def __init__(self, now: datetime, *, exports_bucket: str | None, exports_prefix: str, **kw: Any):
        super().__init__(now, **kw)
        self.exports_bucket = exports_bucket
        self.exports_prefix = exports_prefix

    def subject_request(
        self, p: Person, account_id: int | None, received_at: datetime, state: str, closed_at: datetime | None
    ) -> int:
        """A request by ``p`` (its pseudonym, never the address) in ``state``; a closed one closed at
        ``closed_at``, verified and started before it as the state machine demands."""
        request_id = self._take("governance.subject_requests")
        kind = "portability" if request_id % 2 else "access"
        verified_at = received_at + timedelta(hours=20) if state in ("verified", "in_progress", "completed") else None
        started_at = received_at + DAY if state in ("in_progress", "completed") else None
        self._emit(
            "governance.subject_requests",
            "\t".join(
                (
                    str(request_id),
                    kind,
                    id_or_null(account_id),
                    reference.email_pseudonym(p.email),
                    "email",
                    STAFF,
                    ts(received_at),
                    ts(received_at + timedelta(minutes=5)),
                    ts(received_at + relativedelta(months=1)),
                    state,
                    "t",
                    opt(STAFF if verified_at else None),
                    ts(verified_at),
                    opt(VERIFICATION if verified_at else None),
                    ts(started_at),
                    ts(closed_at),
                    opt(REFUSED if state == "refused" else None),
                )
            ),
            {"request_id": request_id, "state": state, "closed_at": closed_at} if self._keep else None,
        )
        return request_id

    def request_contact(self, request_id: int, reply_to: str, created_at: datetime) -> int:
        self._emit(
            "governance.request_contacts",
            f"{request_id}\t{reply_to}\t{reply_to.strip(' ').lower()}\t{ts(created_at)}",
            {"request_id": request_id, "reply_to": reply_to} if self._keep else None,
        )
        return request_id

    def request_export(self, request_id: int, created_at: datetime) -> int | None:
        """An export archive and its object (written by the seed), or None without an exports bucket."""
        if self.exports_bucket is None:
            return None
        export_id = self._take("governance.request_exports")
        key = f"{self.exports_prefix}{request_id}/{export_id}.zip"
        body = export_payload(export_id, self.seed)
        link_sent_at = created_at + timedelta(minutes=2)
        self._emit(
            "governance.request_exports",
            "\t".join(
                (
                    str(export_id),
                    str(request_id),
                    self.exports_bucket,
                    key,
                    ts(created_at),
                    str(len(body)),
                    hashlib.sha256(body).hexdigest(),
                    "1",
                    ts(link_sent_at + timedelta(days=7)),
                    ts(link_sent_at),
                    "stored",
                )
            ),
            {"export_id": export_id, "request_id": request_id, "created_at": created_at} if self._keep else None,
        )
        self.batch.exports.append((key, export_id))
        return export_id

    def answered(self, p: Person, closed_at: datetime, *, account_id: int | None = None, reply_to: str = "") -> int:
        """A completed request, its address and, exported shortly before it closed, its archive."""
        received_at = closed_at - 12 * DAY
        request_id = self.subject_request(p, account_id, received_at, "completed", closed_at)
        self.request_contact(request_id, reply_to or p.email, received_at)
        self.request_export(request_id, closed_at - timedelta(minutes=10))
        return request_id


def script_requests(s: Scripted) -> None:
    """The RET-9 boundary cases, open requests and held copies, for the people ``s`` has made."""
    g = s.g
    if not all(r in g.windows for r in REQUEST_RULES):
        return  # a policy without the request rules: no requests
    people = iter(s.people)
    for clock in s.clocks("request-exports"):  # the archive made at the clock; the request closed just after
        p = next(people)
        request_id = g.subject_request(p, None, clock - 12 * DAY, "completed", clock + timedelta(minutes=10))
        g.request_contact(request_id, p.email, clock - 12 * DAY)
        g.request_export(request_id, clock)
    states = ("completed", "refused", "withdrawn", "completed")
    for n, (state, clock) in enumerate(zip(states, s.clocks("request-contacts"), strict=False)):
        p = next(people)
        if state == "completed":  # the first answer address as the person typed it
            g.answered(p, clock, reply_to=f" {p.email.upper()}" if n == 0 else p.email)
        else:
            request_id = g.subject_request(p, None, clock - 20 * DAY, state, clock)
            g.request_contact(request_id, p.email, clock - 20 * DAY)
    for state in ("received", "in_progress"):  # open: the address has no clock, however old
        p = next(people)
        request_id = g.subject_request(p, None, g.now - 400 * DAY, state, None)
        g.request_contact(request_id, p.email, g.now - 400 * DAY)
    g.subject_request(next(people), None, g.now - 900 * DAY, "withdrawn", g.now - 880 * DAY)  # its copies gone
    if g.holds_enabled:
        _held_requests(s, people)


def _held_requests(s: Scripted, people: Iterator[Person]) -> None:
    """Copies a hold keeps (RET-8): by record, and by person (the address of a held account, and a
    held address typed otherwise)."""
    g, now = s.g, s.g.now
    request_id = g.answered(next(people), now - 60 * DAY)
    s.hold_record("governance.request_contacts", request_id)
    p = next(people)
    request_id = g.subject_request(p, None, now - 40 * DAY, "completed", now - 20 * DAY)
    s.hold_record("governance.request_exports", g.request_export(request_id, now - 20 * DAY))
    for p, account_id, reply_to in s.held_people:
        request_id = g.subject_request(p, account_id, now - 120 * DAY, "completed", now - 100 * DAY)
        g.request_contact(request_id, reply_to, now - 120 * DAY)
