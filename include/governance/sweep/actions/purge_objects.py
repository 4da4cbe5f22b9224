"""The ``purge_objects`` action (CAT-5, RET-5a..d, RET-9): the batch's rows are marked 'purging'
(the tombstone, committed durably before any object goes), then every version of their objects is
deleted, then the rows whose objects are all gone. A crash leaves neither orphan objects nor rows
pointing at nothing: the next sweep finishes the 'purging' rows first (``resume``)."""

from __future__ import annotations

from typing import Any

from psycopg2 import sql
from psycopg2.extensions import cursor

from governance.errors import SweepError
from governance.policy import ObjectStoreLink
from governance.sweep.actions.base import Action, Batch
from governance.sweep.objects import PurgeOutcome, purge_objects
from governance.sweep.target import ident

Tombstone = tuple[Any, str, str]  # (record key, bucket, object key)


class PurgeObjects(Action):
    name = "purge_objects"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.versioned: dict[str, bool] = {}  # bucket -> versioning on, asked once per sweep

    @property
    def objects(self) -> ObjectStoreLink:
        link = self.runner.target.store.objects
        assert link is not None, "the policy model requires 'objects' for purge_objects"
        return link

    def apply(self, batch: Batch) -> None:
        """Tombstone (commit), delete the objects, then the rows whose objects are all gone."""
        t = self.runner.target
        statement = sql.SQL(
            "UPDATE {rel} t SET state = 'purging'{joined} WHERE {where} RETURNING t.{key}, t.{b}, t.{k}"
        ).format(
            rel=batch.relation,
            joined=batch.joined("FROM"),
            where=batch.where,
            key=sql.Identifier(t.key),
            b=sql.Identifier(self.objects.bucket_column),
            k=sql.Identifier(self.objects.key_column),
        )
        params = {**self.runner.sel.params, **batch.params}
        tombstoned: list[Tombstone] = []

        def mark(cur: cursor) -> dict[str, int]:
            cur.execute(statement, params)
            tombstoned[:] = cur.fetchall()
            return {"tombstoned": len(tombstoned)}

        self.runner.run(f"{batch.step}/tombstone", mark, batch.details, durable=True)  # before any object goes
        if tombstoned:
            self.purge(tombstoned, batch.step, batch.details)
        return None

    def purge(self, rows: list[Tombstone], step: str, details: dict[str, Any]) -> None:
        """Delete the tombstoned rows' objects, then the rows whose objects are all gone."""
        if self.s3 is None:
            raise SweepError(f"rule {self.runner.target.rule.id!r} purges objects: it needs an S3 client")
        objects = self.objects
        allowed, outside = [], {}
        for key, bucket, object_key in rows:
            if bucket in objects.buckets and object_key.startswith(objects.prefix):
                allowed.append((key, bucket, object_key))
            else:  # never delete what the policy does not name; the row stays 'purging' and is reported
                outside[(bucket, object_key)] = "OutsidePolicyBuckets"
        outcome: PurgeOutcome = purge_objects(self.s3, [(b, k) for _, b, k in allowed], versioned_cache=self.versioned)
        outcome.failed.update(outside)
        self.failures.update(outcome.failed)
        done = [key for key, bucket, object_key in allowed if (bucket, object_key) in outcome.gone]
        failed = len(rows) - len(done)
        t = self.runner.target

        def remove(cur: cursor) -> dict[str, int]:
            cur.execute(
                sql.SQL("DELETE FROM {tbl} t WHERE t.{key} = ANY(%(done)s) AND t.state = 'purging'").format(
                    tbl=ident(t.table), key=sql.Identifier(t.key)
                ),
                {"done": done},
            )
            return {"deleted": cur.rowcount, "objects_deleted": outcome.versions_deleted, "object_errors": failed}

        self.runner.run(step, remove, {**details, "object_error_codes": outcome.error_codes} if failed else details)

    def resume(self) -> None:
        """Rows left 'purging' by an interrupted or failed sweep: their objects may be half gone;
        finish them, except those a hold in force keeps (RET-8): checked when the keys are listed
        and again, in the same statement as the rows are read, just before their objects go."""
        t, sel = self.runner.target, self.runner.sel
        key = sql.Identifier(t.key)
        keys = [
            row[0]
            for row in self.runner.read(
                sql.SQL("SELECT k FROM ({}) x ORDER BY k").format(
                    sel.purging_rows(sql.SQL("t.{} AS k").format(key), not_held=True)
                ),
                sel.params,
            )
        ]
        size = max(1, self.runner.opts.batch_size)
        tombstones = sql.SQL("SELECT k, b, o FROM ({}) x WHERE k = ANY(%(chunk)s) ORDER BY 1").format(
            sel.purging_rows(
                sql.SQL("t.{key} AS k, t.{b} AS b, t.{k} AS o").format(
                    key=key,
                    b=sql.Identifier(self.objects.bucket_column),
                    k=sql.Identifier(self.objects.key_column),
                ),
                not_held=True,
            )
        )
        for start in range(0, len(keys), size):
            chunk = keys[start : start + size]
            rows = self.runner.read(tombstones, {**sel.params, "chunk": chunk})
            if rows:
                self.purge(rows, f"resume {chunk[0]}-{chunk[-1]}", {"strategy": "resume"})
