"""Notices of a retention end (TP-5 for RET-3/RET-8): when a sweep batch deletes or anonymises
records of a category a recipient receives, and the recipient's ``notify.retention_ended`` says
so, the batch's own transaction queues that recipient's notices (event ``retention_ended``), so
the effect, its evidence and its notices commit together or not at all (CONTRIBUTING.md habit 5).

The sweep's batch runner holds one ``RetentionNotices`` per rule (None when nobody is told:
``Policy.retention_recipients``) and the action calls it around its statement: ``before`` locks
the batch's rows (``FOR UPDATE``) and reads their keys and person columns; ``after`` finds which
of them the statement changed and queues, per recipient, one notice per at most
``notices.retention_records_per_notice`` of them, naming the persons by that recipient's
pseudonyms (``outbox.recipient_name``) and, for a recipient of the orders' category, the order ids
it already knows. The idempotency key is derived from the run, the rule, the recipient, the batch
step and the records named: a retried batch (rolled back) queues once, a rerun finds nothing left
to change and queues nothing. Held records are never selected, so never notified; dry runs have no
batches.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from psycopg2 import sql
from psycopg2.extensions import cursor

from governance.notices.outbox import ORDER_KEY, insert_notice, orders_categories, recipient_name
from governance.notices.pseudonyms import PseudonymKey
from governance.person.subject import Subject
from governance.policy import AnonymiseAction, Policy, Rule
from governance.policy.recipients import Recipient

if TYPE_CHECKING:
    from governance.sweep.actions.base import Batch

log = logging.getLogger(__name__)

EVENT = "retention_ended"
KeySource = Callable[[], PseudonymKey]


@dataclass(frozen=True, repr=False)
class BatchRows:
    """The rows a batch is about to change: key -> (e-mail, account id). Personal data: never logged."""

    rows: dict[Any, tuple[str | None, int | None]]

    def __repr__(self) -> str:
        return f"BatchRows({len(self.rows)})"


class RetentionNotices:
    """The ``retention_ended`` notices of one rule's sweep in one run."""

    def __init__(
        self, policy: Policy, rule: Rule, recipients: list[Recipient], run_id: str, now: datetime, key: KeySource
    ):
        store = policy.store(rule.table)
        assert store.person is not None, "Policy.retention_notified: only stores naming their person"
        self.policy, self.rule, self.recipients, self.run_id, self.now = policy, rule, recipients, run_id, now
        self.key_source = key
        self._key: PseudonymKey | None = None  # read when a batch first has rows to name
        self.key_column, self.email, self.account = store.key, store.person.email, store.person.account_id
        self.order_ids = store.key == ORDER_KEY
        self.knows_orders = orders_categories(policy)
        action = rule.action
        self.columns = {rule.table: sorted(action.columns)} if isinstance(action, AnonymiseAction) else {}

    @classmethod
    def for_rule(
        cls, policy: Policy, rule: Rule, run_id: str, now: datetime, key: KeySource
    ) -> RetentionNotices | None:
        """The rule's notices, or None when no recipient is told of its sweeps."""
        recipients = policy.retention_recipients(rule)
        return cls(policy, rule, recipients, run_id, now, key) if recipients else None

    def _select(self, batch: Batch, extra: sql.Composable) -> sql.Composed:
        person = [sql.Identifier("t", c) if c else sql.SQL("NULL") for c in (self.email, self.account)]
        return sql.SQL("SELECT t.{key}, {email}, {account} FROM {rel} t{using} WHERE ({where}){extra}").format(
            key=sql.Identifier(self.key_column),
            email=person[0],
            account=person[1],
            rel=batch.relation,
            using=batch.joined("CROSS JOIN"),
            where=batch.where,
            extra=extra,
        )

    def before(self, cur: cursor, batch: Batch, params: dict[str, Any]) -> BatchRows:
        """Lock and read the rows the batch's statement is about to change (same selection)."""
        cur.execute(self._select(batch, sql.SQL(" FOR UPDATE OF t")), params)
        rows = {key: (email, account) for key, email, account in cur.fetchall()}
        if rows and self._key is None:
            self._key = self.key_source()  # a missing key fails the batch before its effect
        return BatchRows(rows)

    def after(
        self, cur: cursor, batch: Batch, params: dict[str, Any], before: BatchRows, changed: int
    ) -> tuple[dict[str, int], dict[str, Any]] | None:
        """Queue the notices for the rows of ``before`` the statement changed (``changed`` rows in
        all); the counts and details of their evidence entry, or None when nothing was queued."""
        if not before.rows or not changed:
            return None
        cur.execute(
            self._select(batch, sql.SQL(" AND t.{} = ANY(%(notice_keys)s)").format(sql.Identifier(self.key_column))),
            {**params, "notice_keys": list(before.rows)},
        )
        kept = {row[0] for row in cur.fetchall()}
        done = sorted(key for key in before.rows if key not in kept)
        size = self.policy.notices.retention_records_per_notice
        notice_ids: list[int] = []
        told: set[str] = set()
        for start in range(0, len(done), size):
            part = done[start : start + size]
            for recipient in self.recipients:
                notice_id = self._queue(cur, recipient, batch.step, {k: before.rows[k] for k in part})
                if notice_id is not None:
                    notice_ids.append(notice_id)
                    told.add(recipient.id)
        unnamed = max(0, changed - len(done))
        if unnamed:  # rows that became due between the read and the statement (a race): counted
            log.warning("rule %s, batch %s: %d changed row(s) not named in notices", self.rule.id, batch.step, unnamed)
        if not notice_ids and not unnamed:
            return None
        counts = {"notices": len(notice_ids), "records": len(done), "unnamed": unnamed}
        details = {"event": EVENT, "recipients": sorted(told), "notice_ids": notice_ids}
        return counts, details

    def _queue(
        self, cur: cursor, recipient: Recipient, step: str, rows: dict[Any, tuple[str | None, int | None]]
    ) -> int | None:
        """One notice to ``recipient`` naming ``rows``; its id (None: queued before, or nobody to name)."""
        emails = tuple(sorted({e for e, _ in rows.values() if e}))
        accounts = tuple(sorted({int(a) for _, a in rows.values() if a is not None}))
        pseudonyms, key_id = recipient_name(recipient.id, Subject(accounts, emails, True), self._key)
        if not pseudonyms:
            return None
        knows_orders = self.order_ids and bool(self.knows_orders & set(recipient.categories))
        return insert_notice(
            cur,
            run_id=self.run_id,
            recipient_id=recipient.id,
            event=EVENT,
            categories=[self.rule.category],
            tables=[self.rule.table],
            columns=self.columns,
            counts={self.rule.table: len(rows)},
            pseudonyms=pseudonyms,
            key_id=key_id,
            order_ids=list(rows) if knows_orders else [],
            idempotency_key=retention_key(self.run_id, self.rule.id, recipient.id, step, list(rows)),
            now=self.now,
        )


def retention_key(run_id: str, rule_id: str, recipient_id: str, step: str, keys: list[Any]) -> str:
    """The message id of a sweep's notice: from the run, rule, recipient, batch step and the records
    named (a step recorded again in the run, step#2, names other records: another key)."""
    digest = hashlib.sha256(
        json.dumps([run_id, rule_id, recipient_id, step, [str(k) for k in keys]]).encode("utf-8")
    ).hexdigest()
    return f"retention.{rule_id}.{recipient_id}.{digest[:24]}"
