"""The records an erasure found, recorded before anything is erased (``governance.erasure_work``).

One INSERT ... SELECT per store from the person finder's predicate (``governance.person``), in one
transaction with its evidence (kind ``erasure_planned``: counts per table); a rerun adds only what
is new (ON CONFLICT DO NOTHING), so a crashed erasure finishes the same set, whatever it already
removed. Also the subject (account ids and e-mail pseudonyms) for the independent check, and how
each recipient names the person (TP-5: per-recipient keyed pseudonyms, no address;
``governance.erasure_recipient_names``) for the notices queued when the erasure completes.
``dry_run`` counts what an erasure would do, changing nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg2 import sql
from psycopg2.extensions import connection, cursor
from psycopg2.extras import execute_values

from governance import evidence
from governance.db import ident, transaction
from governance.erasure.plan import StorePlan, held_sql
from governance.notices.pseudonyms import PseudonymKey
from governance.person.records import person_predicate
from governance.person.subject import Subject
from governance.policy import Policy
from governance.requests.model import OPEN_STATES
from governance.sweep.held import Holds

KIND_PLANNED = "erasure_planned"


def run_id(request_id: int) -> str:
    return f"request-{request_id}"


def disposition_sql(plan: StorePlan) -> sql.Composable:
    """The record's disposition: the store's, but ``keep`` for a copy an open request still needs."""
    if plan.request_column is None:
        return sql.Literal(plan.disposition)
    return sql.SQL(
        "CASE WHEN EXISTS (SELECT 1 FROM governance.subject_requests r WHERE r.request_id = t.{col} "
        "AND r.state = ANY(%(open)s)) THEN 'keep' ELSE {d} END"
    ).format(col=sql.Identifier(plan.request_column), d=sql.Literal(plan.disposition))


def record_names(cur: cursor, policy: Policy, request_id: int, subject: Subject, key: PseudonymKey | None) -> None:
    """Each recipient's pseudonyms of the person (TP-5), added to those an earlier run recorded
    under the same key (a rerun after the account went finds fewer addresses, never loses one)."""
    rows = []
    for recipient in policy.recipients:
        if key is None:
            break
        names = key.pseudonyms(recipient.id, emails=subject.emails, account_ids=subject.account_ids)
        if names:
            rows.append((request_id, recipient.id, names, key.key_id(recipient.id)))
    if rows:
        execute_values(
            cur,
            "INSERT INTO governance.erasure_recipient_names AS n (request_id, recipient_id, subject_pseudonyms, "
            "pseudonym_key_id) VALUES %s ON CONFLICT (request_id, recipient_id) DO UPDATE SET subject_pseudonyms = "
            "ARRAY(SELECT DISTINCT unnest(n.subject_pseudonyms || EXCLUDED.subject_pseudonyms) ORDER BY 1) "
            "WHERE n.pseudonym_key_id = EXCLUDED.pseudonym_key_id",
            rows,
            template="(%s, %s, %s::text[], %s)",
        )


def object_columns(plan: StorePlan, alias: str = "t") -> tuple[sql.Composable, sql.Composable]:
    """The store's bucket and object-key columns (as ``alias``), or NULLs for a store without objects."""
    objects = plan.store.objects
    if objects is None:
        return sql.SQL("NULL"), sql.SQL("NULL")
    a = sql.Identifier(alias)
    return (
        sql.SQL("{}.{}").format(a, sql.Identifier(objects.bucket_column)),
        sql.SQL("{}.{}").format(a, sql.Identifier(objects.key_column)),
    )


def record_work(
    conn: connection,
    policy: Policy,
    plans: list[StorePlan],
    request_id: int,
    subject: Subject,
    *,
    now: datetime,
    key: PseudonymKey | None = None,
) -> dict[str, int]:
    """Record every record (and object) of the person that the data map reaches, and how each
    recipient names the person (with ``key``); table -> newly recorded."""
    params: dict[str, Any] = {**subject.params(), "request": request_id, "open": list(OPEN_STATES)}
    found: dict[str, int] = {}
    with transaction(conn) as cur:
        record_names(cur, policy, request_id, subject, key)
        cur.execute(
            "INSERT INTO governance.erasure_subjects (request_id, account_ids, email_sha256s) "
            "SELECT %(request)s, %(accounts)s::bigint[], "
            "coalesce((SELECT array_agg(governance.email_pseudonym(e)) FROM unnest(%(emails)s::text[]) e), '{}') "
            "ON CONFLICT (request_id) DO UPDATE SET "
            "account_ids = ARRAY(SELECT DISTINCT unnest(erasure_subjects.account_ids || EXCLUDED.account_ids)), "
            "email_sha256s = ARRAY(SELECT DISTINCT unnest(erasure_subjects.email_sha256s || EXCLUDED.email_sha256s))",
            params,
        )
        for plan in plans:
            bucket, object_key = object_columns(plan)
            cur.execute(
                sql.SQL(
                    "INSERT INTO governance.erasure_work (request_id, table_name, record_key, disposition, bucket, object_key) "
                    "SELECT %(request)s, {name}, t.{key}::text, {disposition}, {bucket}, {object_key} "
                    "FROM {table} t WHERE {matches} ON CONFLICT DO NOTHING"
                ).format(
                    name=sql.Literal(plan.table),
                    key=sql.Identifier(plan.key),
                    disposition=disposition_sql(plan),
                    bucket=bucket,
                    object_key=object_key,
                    table=ident(plan.table),
                    matches=person_predicate(policy, plan.store),
                ),
                params,
            )
            found[plan.table] = cur.rowcount
        if any(found.values()):
            evidence.append(
                cur,
                kind=KIND_PLANNED,
                run_id=run_id(request_id),
                step="plan",
                requirements=["ERA-1"],
                as_of=now,
                policy_version=policy.version or None,
                counts={table: n for table, n in found.items() if n},
                details={"request_id": request_id},
                numbered=True,
            )
    return found


def dry_run(
    conn: connection, policy: Policy, plans: list[StorePlan], subject: Subject, holds: Holds
) -> dict[str, dict[str, int]]:
    """Table -> {delete|anonymise|keep|held: count} of the person's records now; nothing changes."""
    counts: dict[str, dict[str, int]] = {}
    with transaction(conn, read_only=True) as cur:
        for plan in plans:
            params: dict[str, Any] = {**subject.params(), "open": list(OPEN_STATES)}
            cur.execute(
                sql.SQL(
                    "SELECT d, h, count(*) FROM (SELECT {disposition} AS d, {held} AS h FROM {table} t "
                    "WHERE {matches}) x GROUP BY d, h"
                ).format(
                    disposition=disposition_sql(plan),
                    held=held_sql(policy, plan, holds, params),
                    table=ident(plan.table),
                    matches=person_predicate(policy, plan.store),
                ),
                params,
            )
            tally = {"delete": 0, "anonymise": 0, "keep": 0, "held": 0}
            for disposition, held, n in cur.fetchall():
                label = (
                    "held" if held and disposition != "keep" else ("delete" if disposition == "erase" else disposition)
                )
                tally[label] += int(n)
            counts[plan.table] = tally
    return counts
