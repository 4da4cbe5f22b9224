"""A replay's scratch tables and the records it works (ERA-1): the subjects of many ledger entries
at once, and their records still to erase, set-based.

``erasure_replay_subjects`` (temporary, this session's) holds the entries' account ids and e-mail
pseudonyms; the person finder's predicate (``governance.person.records``) names them through
``REPLAY_KEYS`` (an account column in the accounts, an address column's pseudonym in the
pseudonyms), so one statement per store finds every entry's records. What is left to erase: not
kept (a copy an open request needs), not already anonymised (RET-8). A replay's batches take the
records of a store without objects straight from that (``selection``, a legal hold in force
excluding what it keeps, counted by ``held_counts``); the records of a store with objects, and a
dry run's of every store, are recorded first in ``erasure_replay_work`` (temporary, the shape of
``governance.erasure_work``), so that the erasure's purge (``governance.erasure.objects``) tracks
their objects from the tombstone on. Neither table depends on the request ledger's rows: a restored
database may not have them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from psycopg2 import sql
from psycopg2.extensions import cursor
from psycopg2.extras import execute_values

from governance.db import ident
from governance.erasure.check import masked_sql
from governance.erasure.plan import NOT_HELD, StorePlan, held_sql
from governance.erasure.work import disposition_sql, object_columns
from governance.person.records import Keys, person_predicate
from governance.policy import Policy
from governance.requests.model import OPEN_STATES
from governance.sweep.held import Holds

SUBJECTS = "pg_temp.erasure_replay_subjects"
WORK = "pg_temp.erasure_replay_work"
TEMP_BUFFERS = "128MB"
# The predicates' "IN (subjects)" sit under an OR (an account; or no account and an address), so
# PostgreSQL plans them as sub-plans, not joins, and hashes a sub-plan only when it expects the rows
# to fit in work_mem x hash_mem_multiplier; otherwise each row of the shop rescans every subject.
# With the server's default 4 MB, 100,000 erasures did not fit: one DELETE ran for minutes where the
# hash takes seconds (bench/README.md, "Erasure replay"). The session's work_mem is raised to about
# this many bytes per subject (a hashed entry is ~90 bytes: 65 for the pseudonym, the rest overhead),
# never lowered, and reset when the replay ends.
HASH_BYTES_PER_SUBJECT = 256

REPLAY_KEYS = Keys(
    account=lambda c: sql.SQL(
        "{} IN (SELECT s.account_id FROM pg_temp.erasure_replay_subjects s WHERE s.account_id IS NOT NULL)"
    ).format(c),
    email=lambda c: sql.SQL(
        "governance.email_pseudonym({}) IN (SELECT s.email_sha256 FROM pg_temp.erasure_replay_subjects s "
        "WHERE s.email_sha256 IS NOT NULL)"
    ).format(c),
)

_CREATE = (
    "CREATE TEMP TABLE IF NOT EXISTS erasure_replay_subjects (account_id bigint, email_sha256 text); "
    "CREATE TEMP TABLE IF NOT EXISTS erasure_replay_work "
    "(LIKE governance.erasure_work INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES); "
    "TRUNCATE erasure_replay_subjects, erasure_replay_work"
)


def create_scratch(cur: cursor) -> None:
    """The session's scratch tables, empty. Before the session's first temporary table, its local
    buffers are made large enough for 10,000 erasures' records (the default 8 MB spills to disk)."""
    cur.execute("SELECT to_regclass('pg_temp.erasure_replay_work') IS NULL AND pg_my_temp_schema() = 0")
    row = cur.fetchone()
    if row and row[0]:
        cur.execute("SET temp_buffers = %s", (TEMP_BUFFERS,))
    cur.execute(_CREATE)


def load_subjects(cur: cursor, accounts: Iterable[int], pseudonyms: Iterable[str]) -> None:
    """Replace the scratch subjects with these account ids and pseudonyms (then ANALYZE: a temporary
    table is never analysed by autovacuum, and the planner needs its size)."""
    cur.execute("DELETE FROM erasure_replay_subjects")  # not TRUNCATE: a dry run's transaction is read-only
    rows = [(a, None) for a in sorted(set(accounts))] + [(None, e) for e in sorted(set(pseudonyms))]
    execute_values(
        cur, "INSERT INTO erasure_replay_subjects (account_id, email_sha256) VALUES %s", rows, page_size=5000
    )
    cur.execute("ANALYZE erasure_replay_subjects")
    hash_subjects_in_memory(cur, len(rows))


def hash_subjects_in_memory(cur: cursor, subjects: int) -> None:
    """Raise the session's ``work_mem`` so that ``subjects`` rows hash (HASH_BYTES_PER_SUBJECT); a
    plain SET, for the replay's later transactions too (``apply_entries`` resets it)."""
    wanted_kb = -(-subjects * HASH_BYTES_PER_SUBJECT // 1024)
    cur.execute("SELECT pg_size_bytes(current_setting('work_mem')) / 1024")
    row = cur.fetchone()
    if row and wanted_kb > int(row[0]):
        cur.execute("SELECT set_config('work_mem', %s, false)", (f"{wanted_kb}kB",))


def record(cur: cursor, policy: Policy, plans: list[StorePlan], holds: Holds, group: int) -> dict[str, dict[str, int]]:
    """Record the subjects' records left to erase, one INSERT ... SELECT per store; table ->
    {pending, held} newly recorded (rows of ``group``)."""
    found: dict[str, dict[str, int]] = {}
    for plan in plans:
        if plan.disposition == "keep":
            continue
        params: dict[str, Any] = {"group": group, "open": list(OPEN_STATES)}
        cur.execute(_record_sql(policy, plan, holds, params), params)
        tally = {"pending": 0, "held": 0}
        for state, n in cur.fetchall():
            tally[str(state)] = int(n)
        found[plan.table] = tally
    cur.execute("ANALYZE erasure_replay_work")  # the batches join it by 1,000s: the planner needs its size
    return found


def _record_sql(policy: Policy, plan: StorePlan, holds: Holds, params: dict[str, Any]) -> sql.Composable:
    bucket, object_key = object_columns(plan)
    return sql.SQL(
        "WITH found AS (INSERT INTO {work} (request_id, table_name, record_key, disposition, state, bucket, object_key) "
        "SELECT %(group)s, {name}, t.{key}::text, {disposition}, CASE WHEN {held} THEN 'held' ELSE 'pending' END, "
        "{bucket}, {object_key} FROM {table} t WHERE {to_do} "
        "ON CONFLICT DO NOTHING RETURNING state) SELECT state, count(*) FROM found GROUP BY state"
    ).format(
        work=ident(WORK),
        name=sql.Literal(plan.table),
        key=sql.Identifier(plan.key),
        disposition=disposition_sql(plan),
        held=held_sql(policy, plan, holds, params),
        bucket=bucket,
        object_key=object_key,
        table=ident(plan.table),
        to_do=_to_do(plan, policy, params),
    )


def _to_do(plan: StorePlan, policy: Policy, params: dict[str, Any]) -> sql.Composable:
    """The subjects' rows of the store (alias ``t``) left to erase: not kept (a copy an open request
    needs), and for the RET-8 store not already anonymised."""
    masked, mask_params = masked_sql(plan)
    params.update(mask_params, open=list(OPEN_STATES))
    done = sql.SQL(" AND NOT {}").format(masked) if plan.disposition == "anonymise" else sql.SQL("")
    return sql.SQL("{matches} AND {disposition} <> 'keep'{done}").format(
        matches=person_predicate(policy, plan.store, REPLAY_KEYS), disposition=disposition_sql(plan), done=done
    )


def selection(policy: Policy, holds: Holds) -> Callable[[StorePlan, dict[str, Any]], sql.Composable]:
    """The condition a replay's batches take their records from (stores without objects): left to
    erase and not held (``batches.Eraser.selection``)."""

    def condition(plan: StorePlan, params: dict[str, Any]) -> sql.Composable:
        return sql.SQL("{} AND NOT {}").format(_to_do(plan, policy, params), held_sql(policy, plan, holds, params))

    return condition


def held_counts(cur: cursor, policy: Policy, plans: list[StorePlan], holds: Holds) -> dict[str, dict[str, int]]:
    """Table -> {held: n}: the subjects' rows a legal hold keeps, for the stores a hold can reach."""
    found: dict[str, dict[str, int]] = {}
    for plan in plans:
        params: dict[str, Any] = {}
        held = held_sql(policy, plan, holds, params)
        if plan.disposition == "keep" or held == NOT_HELD:
            continue
        query = sql.SQL("SELECT count(*) FROM {table} t WHERE {to_do} AND {held}")
        cur.execute(query.format(table=ident(plan.table), to_do=_to_do(plan, policy, params), held=held), params)
        row = cur.fetchone()
        if row and row[0]:
            found[plan.table] = {"pending": 0, "held": int(row[0])}
    return found


def stuck(cur: cursor, group: int) -> dict[str, int]:
    """Table -> records of ``group`` whose objects did not go (still 'purging' or 'pending')."""
    cur.execute(
        "SELECT table_name, count(*) FROM erasure_replay_work WHERE request_id = %s "
        "AND state IN ('pending', 'purging') GROUP BY 1",
        (group,),
    )
    return {str(t): int(n) for t, n in cur.fetchall()}


def clear(cur: cursor) -> None:
    """Empty the scratch tables (they held object keys, which can carry file names)."""
    cur.execute("TRUNCATE erasure_replay_subjects, erasure_replay_work")
