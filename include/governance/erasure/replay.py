"""Replaying the erasure ledger after a restore from a backup (ERA-1): every erasure recorded at or
after ``since`` applied again, set-based across all of them.

The entries (``governance.erasure.ledger``; an altered or unreadable one refuses the whole replay
before anything changes) are deduplicated by request id, the latest winning, and grouped by the
categories their person kept (RET-7). Per group: the subjects into a scratch table
(``replay_work``), then store by store, children first, the erasure's own batches (delete, RET-8
anonymise, purge objects then rows; legal holds in force keep what they keep), taken straight from
the subjects' predicate (the object stores' records recorded first), each one statement committing
with its evidence (kind ``erasure_replayed``); then the erasure's independent check, over all the
group's subjects. Nothing here reads the request ledger's
rows. A second replay finds nothing to do and records nothing.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from psycopg2.extensions import connection

from governance import evidence
from governance.db import transaction
from governance.erasure import replay_work
from governance.erasure.answer import erasure_lock
from governance.erasure.batches import Eraser
from governance.erasure.erase import erase_store
from governance.erasure.ledger import RUNBOOK, LedgerEntry, read_entries
from governance.erasure.plan import erasure_plan
from governance.erasure.replay_check import add_counts, check_replay
from governance.errors import EvidenceBroken, OptionError, SettingsError
from governance.policy import Policy
from governance.sweep.held import Holds
from governance.windows import as_utc, iso

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Records per batch: a replay runs in a maintenance window after a restore, over many people at once;
# each batch is still one statement on one table in its own transaction (of well under a second),
# and 10,000 erasures' records of one store (a few per person) fit in one.
REPLAY_BATCH_SIZE = 50_000
KIND_PLANNED = "erasure_replay_planned"
KIND_BATCH = "erasure_replayed"


@dataclass
class ReplayOutcome:
    """What a replay found and did: entries, per table counts, the check's counts. Ids and counts only."""

    since: str
    entries: int = 0
    request_ids: list[int] = field(default_factory=list)
    found: dict[str, dict[str, int]] = field(default_factory=dict)  # table -> {pending, held}
    tables: dict[str, dict[str, int]] = field(default_factory=dict)  # table -> {deleted, anonymised, ...}
    check: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "entries": self.entries,
            "request_ids": self.request_ids,
            "found": self.found,
            "tables": self.tables,
            "check": self.check,
            "dry_run": self.dry_run,
        }


def check_since(since: datetime, now: datetime) -> datetime:
    """``since`` as UTC, refused when it is after ``now`` (nothing could have been erased then)."""
    since = as_utc(since)
    if since > as_utc(now):
        raise OptionError(f"--since {iso(since)} is in the future (now is {iso(now)}); give the instant of the dump")
    return since


def ledger_entries(
    s3: S3Client, policy: Policy, since: datetime, key: bytes | None, *, allow_unsigned: bool = False
) -> list[LedgerEntry]:
    """The entries at or after ``since``, one per request (the latest); refuses altered ones, and,
    with a key, unsigned ones unless ``allow_unsigned`` (entries written before a key was set)."""
    bucket = policy.object_store.erasure_ledger_bucket
    if not bucket:
        raise SettingsError("the policy names no object_store.erasure_ledger_bucket: there is no ledger to replay")
    latest: dict[int, LedgerEntry] = {}
    bad: list[str] = []
    for object_key, entry in read_entries(s3, bucket, since):
        signed = key is None or (entry is not None and entry.mac_ok(key))
        if entry is None or not (signed or (allow_unsigned and entry.mac is None)):
            bad.append(object_key)  # keys name an instant and a request id only
        elif entry.request_id not in latest or entry.erased_at >= latest[entry.request_id].erased_at:
            latest[entry.request_id] = entry
    if bad:
        raise EvidenceBroken(
            f"erasure ledger bucket {bucket!r}: {len(bad)} object(s) are not entries, carry no MAC or one that "
            f"does not match the evidence key (first: {bad[0]}); nothing was replayed; entries written before the "
            f"key was set: --allow-unsigned; see {RUNBOOK}"
        )
    return sorted(latest.values(), key=lambda e: (e.erased_at, e.request_id))


def replay(
    conn: connection,
    s3: S3Client,
    policy: Policy,
    since: datetime,
    *,
    now: datetime,
    dry_run: bool = False,
    key: bytes | None = None,
    allow_unsigned: bool = False,
    batch_size: int = REPLAY_BATCH_SIZE,
) -> ReplayOutcome:
    """Apply again every erasure of the ledger at or after ``since``; see the module."""
    now, since = as_utc(now), check_since(since, now)
    entries = ledger_entries(s3, policy, since, key, allow_unsigned=allow_unsigned)
    with erasure_lock(conn, "erasure-replay"):  # a second replay waits, then finds nothing to do
        return apply_entries(conn, s3, policy, entries, since, now=now, dry_run=dry_run, batch_size=batch_size)


def apply_entries(
    conn: connection,
    s3: S3Client,
    policy: Policy,
    entries: list[LedgerEntry],
    since: datetime,
    *,
    now: datetime,
    dry_run: bool = False,
    batch_size: int = REPLAY_BATCH_SIZE,
    check: bool = True,
) -> ReplayOutcome:
    """Apply these entries (read by ``ledger_entries``) to the database and the objects; ``check``:
    run the independent check after each group (the benchmark times it apart)."""
    outcome = ReplayOutcome(iso(since), len(entries), [e.request_id for e in entries], dry_run=dry_run)
    groups: dict[tuple[str, ...], list[LedgerEntry]] = defaultdict(list)
    for entry in entries:
        groups[tuple(sorted(entry.keep_categories))].append(entry)
    with transaction(conn) as cur:
        replay_work.create_scratch(cur)
        # Each batch is one short statement over thousands of rows, planned with estimates far above
        # its real size: JIT would compile every one for longer than it runs. For the session, reset after.
        cur.execute("SET jit = off")
    try:
        for number, (keep, group) in enumerate(sorted(groups.items())):
            _replay_group(conn, s3, policy, outcome, (number, keep), group, now=now, batch_size=batch_size, check=check)
    finally:
        if not conn.closed:
            conn.rollback()
            with transaction(conn) as cur:
                replay_work.clear(cur)
                cur.execute("RESET jit; RESET work_mem")  # work_mem: raised to hash the subjects
    return outcome


def _replay_group(
    conn: connection,
    s3: S3Client,
    policy: Policy,
    outcome: ReplayOutcome,
    kept: tuple[int, tuple[str, ...]],
    group: list[LedgerEntry],
    *,
    now: datetime,
    batch_size: int,
    check: bool,
) -> None:
    """One group of entries (number, the same categories kept): record, erase, check."""
    number, keep = kept
    run_name = f"erasure-replay/{iso(now)}/{number}"
    holds = Holds.at(conn, now, policy)
    with transaction(conn, read_only=outcome.dry_run) as cur:
        plans = erasure_plan(cur, policy, keep_categories=keep)
        replay_work.load_subjects(
            cur, [a for e in group for a in e.account_ids], [p for e in group for p in e.email_sha256s]
        )
        # A dry run counts every store; a replay records the object stores' records only (their
        # objects are tracked from the tombstone to the purge); the others' batches take their
        # records straight from the subjects' predicate.
        recorded = plans if outcome.dry_run else [p for p in plans if p.purges_objects]
        found = replay_work.record(cur, policy, recorded, holds, number)
        if not outcome.dry_run:
            found.update(replay_work.held_counts(cur, policy, [p for p in plans if not p.purges_objects], holds))
        add_counts(outcome.found, found)
        if not outcome.dry_run and any(t["pending"] for t in found.values()):
            evidence.append(
                cur,
                kind=KIND_PLANNED,
                run_id=run_name,
                step="plan",
                requirements=["ERA-1", "RET-8"],
                as_of=now,
                policy_version=policy.version or None,
                counts={f"{table}.{k}": n for table, t in found.items() for k, n in t.items() if n},
                details={
                    "since": outcome.since,
                    "request_ids": [e.request_id for e in group],
                    "keep_categories": list(keep),
                },
            )
    if outcome.dry_run:
        return
    work = Eraser(
        conn, policy, number, holds, now, batch_size, replay_work.WORK, KIND_BATCH, run_name, {"replay": run_name}
    )
    work.list_first = True  # after a restore the objects are mostly gone already: no tombstone for those
    direct = dataclasses.replace(work, selection=replay_work.selection(policy, holds))
    changed = 0
    for plan in plans:
        counts = erase_store(work if plan.purges_objects else direct, plan, s3)
        changed += sum(n for name, n in counts.items() if name != "held")
        add_counts(outcome.tables, {plan.table: counts})
    if check and changed:  # nothing changed (a second replay): no check, no evidence
        check_replay(conn, s3, policy, outcome, plans, group, number, run_name, now=now)
