"""An erasure's objects (ERA-1, CAT-5): tombstone the records, purge every version and delete
marker of their objects (``governance.sweep.objects.purge_objects``, as the sweeps purge), then
delete the rows whose objects are all gone. The tombstone (``state = 'purging'`` on the row and on
its recorded record) commits before any object goes; a rerun after a crash finishes the records
left 'purging' first. Objects outside the buckets and prefix the data map names are never touched:
their rows stay 'purging' and are reported. A replay after a restore (``Eraser.list_first``) lists
the recorded records' objects first (nothing deleted): the rows of those with no version or delete
marker left are deleted at once, without a tombstone, since no object can be orphaned; the others
take the tombstone's path (ADR 0004).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from psycopg2 import sql
from psycopg2.extensions import cursor

from governance.db import ident, transaction
from governance.erasure.batches import Eraser, delete_statement
from governance.erasure.plan import StorePlan, held_sql
from governance.errors import SweepError
from governance.sweep.objects import objects_left, purge_objects

TOMBSTONE = "state"  # an object store's row state column: 'purging' while its objects go (as the sweep's)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def purge_all(eraser: Eraser, plan: StorePlan, s3: S3Client | None) -> dict[str, int]:
    """{tombstoned, held, deleted, object_versions_deleted, object_errors} of the store's recorded records."""
    params = eraser.params(plan, "erase")
    change = sql.SQL(
        "UPDATE {table} t SET {state} = 'purging' FROM b WHERE {match} AND NOT {held} RETURNING t.{key}::text AS record_key"
    ).format(
        table=ident(plan.table),
        state=sql.Identifier(TOMBSTONE),
        match=eraser.match(plan),
        held=held_sql(eraser.policy, plan, eraser.holds, params),
        key=sql.Identifier(plan.key),
    )
    statement = eraser.statement(plan, change, "purging")
    totals: Counter[str] = Counter()
    failed: set[str] = set()  # records whose objects would not go in this run: not tried again in it
    totals.update(purge_recorded(eraser, plan, s3, failed))  # an interrupted run's tombstones first
    if eraser.list_first:
        totals.update(delete_gone(eraser, plan, s3))
    while eraser.left(params, "pending"):
        tombstoned, held = eraser.batch(plan, "tombstone", params, statement)
        totals.update({"tombstoned": tombstoned, "held": held})
        totals.update(purge_recorded(eraser, plan, s3, failed))
    return dict(totals)


def delete_gone(eraser: Eraser, plan: StorePlan, s3: S3Client | None) -> dict[str, int]:
    """Delete, batch by batch, the rows of the pending recorded records whose objects a listing finds
    entirely gone (or that have none); the others stay pending for the tombstone. {deleted, held}."""
    params = eraser.params(plan, "erase")
    statement = delete_statement(eraser, plan, params, sql.SQL("w.record_key = ANY(%(gone)s)"))
    totals: Counter[str] = Counter()
    present: list[str] = []  # records with objects left (or outside the policy's buckets): the tombstone's
    while True:
        with transaction(eraser.conn, read_only=True) as cur:
            cur.execute(
                sql.SQL(
                    "SELECT record_key, bucket, object_key FROM {work} WHERE request_id = %(request)s "
                    "AND table_name = %(table)s AND state = 'pending' AND disposition = 'erase' "
                    "AND NOT record_key = ANY(%(present)s) ORDER BY record_key LIMIT %(batch)s"
                ).format(work=eraser.work),
                {**params, "present": present},
            )
            rows: list[tuple[str, str | None, str | None]] = cur.fetchall()
        if not rows:
            return dict(totals)
        if s3 is None:
            raise SweepError(f"erasure {eraser.run_name}: {plan.table} has objects to purge; it needs an S3 client")
        gone, kept = _listed_gone(s3, plan, rows)
        present.extend(kept)
        if gone:
            deleted, held = eraser.batch(plan, "delete", {**params, "gone": gone}, statement, objects="none left")
            totals.update({"deleted": deleted, "held": held})


def _listed_gone(
    s3: S3Client, plan: StorePlan, rows: list[tuple[str, str | None, str | None]]
) -> tuple[list[str], list[str]]:
    """(record keys with no object or none left, record keys whose objects are left or not the policy's)."""
    link = plan.store.objects
    assert link is not None
    allowed = {
        key: (bucket, object_key)
        for key, bucket, object_key in rows
        if bucket in link.buckets and object_key is not None and object_key.startswith(link.prefix)
    }
    left = objects_left(s3, allowed.values())
    gone = [key for key, bucket, object_key in rows if bucket is None or object_key is None]
    gone += [key for key, ref in allowed.items() if ref not in left]
    return gone, sorted(set(key for key, _, _ in rows) - set(gone))


def purge_recorded(eraser: Eraser, plan: StorePlan, s3: S3Client | None, failed: set[str]) -> dict[str, int]:
    """Purge the objects of the store's recorded records in state 'purging' (but ``failed``), then
    delete their rows; adds the records whose objects would not go to ``failed``."""
    params = eraser.params(plan, "erase")
    totals: Counter[str] = Counter()
    while True:
        with transaction(eraser.conn, read_only=True) as cur:
            cur.execute(
                sql.SQL(
                    "SELECT record_key, bucket, object_key FROM {work} WHERE request_id = %(request)s "
                    "AND table_name = %(table)s AND state = 'purging' AND NOT record_key = ANY(%(failed)s) "
                    "ORDER BY record_key LIMIT %(batch)s"
                ).format(work=eraser.work),
                {**params, "failed": sorted(failed)},
            )
            rows: list[tuple[str, str | None, str | None]] = cur.fetchall()
        if not rows:
            return dict(totals)
        if s3 is None:
            raise SweepError(f"erasure {eraser.run_name}: {plan.table} has objects to purge; it needs an S3 client")
        done, result = _purge(s3, plan, rows)
        totals.update(_remove(eraser, plan, params, done, result))
        failed.update(set(key for key, _, _ in rows) - set(done))  # they stay 'purging': reported, a rerun finishes


def _purge(
    s3: S3Client, plan: StorePlan, rows: list[tuple[str, str | None, str | None]]
) -> tuple[list[str], dict[str, Any]]:
    """(record keys whose objects are all gone, {versions, error codes}) for the tombstoned rows."""
    link = plan.store.objects
    assert link is not None
    allowed = [
        (key, bucket, object_key)
        for key, bucket, object_key in rows
        if bucket in link.buckets and object_key is not None and object_key.startswith(link.prefix)
    ]
    no_object = [key for key, bucket, object_key in rows if bucket is None or object_key is None]
    outcome = purge_objects(s3, [(b, k) for _, b, k in allowed if b is not None and k is not None])
    done = no_object + [key for key, bucket, object_key in allowed if (bucket, object_key) in outcome.gone]
    errors = Counter(outcome.failed.values())
    outside = len(rows) - len(allowed) - len(no_object)
    if outside:
        errors["OutsidePolicyBuckets"] += outside  # never delete what the policy does not name
    return done, {"versions": outcome.versions_deleted, "errors": dict(errors), "failed": len(rows) - len(done)}


def _remove(
    eraser: Eraser, plan: StorePlan, params: dict[str, Any], done: list[str], failed: dict[str, Any]
) -> dict[str, int]:
    """Delete the rows whose objects are gone and mark their records done, with the batch's evidence."""

    def work(cur: cursor) -> dict[str, int]:
        cur.execute(
            sql.SQL(
                "WITH gone AS (DELETE FROM {table} t WHERE t.{key} = ANY(CAST(%(done)s AS {type}[])) "
                "AND t.state = 'purging' RETURNING 1) SELECT count(*) FROM gone"
            ).format(table=ident(plan.table), key=sql.Identifier(plan.key), type=sql.SQL(plan.key_type)),
            {**params, "done": done},
        )
        row = cur.fetchone()
        cur.execute(
            sql.SQL(
                "UPDATE {work} SET state = 'done' WHERE request_id = %(request)s "
                "AND table_name = %(table)s AND record_key = ANY(%(done)s) AND state = 'purging'"
            ).format(work=eraser.work),
            {**params, "done": done},
        )
        return {
            "deleted": int(row[0]) if row else 0,
            "object_versions_deleted": int(failed["versions"]),
            "object_errors": int(failed["failed"]),
        }

    extra = {"object_error_codes": failed["errors"]} if failed["failed"] else {}
    return eraser.run(plan, "purge", work, **extra)
