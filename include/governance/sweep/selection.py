"""Which records a rule may remove at "now": the sweep's own selection SQL (never the audit's).

A record is due when every rule on its table that applies to it has expired: each clock
(``record_id, clock``, possibly several rows per record) gives an expiry
``(clock AT TIME ZONE 'UTC' + window) AT TIME ZONE 'UTC'`` (RET-10, calendar arithmetic in UTC),
and the latest one must be ``<= now``. On a table several rules share (the CAT-5 uploads), a
record belongs to the rule whose expiry is the latest (ties: the first rule in policy order), so
the rules' tasks never work the same record. Held records (RET-8) are never selected
(``governance.sweep.held``).

A clock view may expose an optional integer column ``chunk`` (the clock view contract,
include/sql/clocks/README.md): a function of the record's clock group that is part of every
window's PARTITION BY. The due set is then computed in N chunks (``mod(chunk, N)``), each its own
short transaction: PostgreSQL pushes such a qual below the window function (RET-3 at scale).

A selection may be one shard of the rule (``governance.sweep.shards``): a range of the table's heap
pages (``t.ctid`` in the range, in every statement), a residue class of the clock view's ``chunk``
column (``shard_chunk``: the shard's chunks are chunks of the whole) or a group of partitions (the
shard's partitions' oids in ``shard_relations``, set by the shard's sweep).

Identifiers from the policy go through ``psycopg2.sql.Identifier``; values (now, windows, hold
keys) are named parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from psycopg2 import sql

from governance.sweep.held import HeldPredicates, Holds
from governance.sweep.target import CHUNK_COLUMN, Target, clock_source, ident
from governance.windows import Window, as_utc

if TYPE_CHECKING:
    from governance.sweep.shards import Shard

# Adding months or years clamps the day of the month (31 -> 28 at most), so for such windows
# "clock + window <= now" implies "clock <= now - window + 4 days"; the bound lets the planner use
# an index or prune partitions, the exact predicate still decides.
_CLAMP_MARGIN = timedelta(days=4)
# A range of a table's heap pages (alias t; TID range scans): [lo, hi), or from lo to the end. The
# block-range batches and the verification's slices use them with ``page_bounds``.
IN_PAGES = sql.SQL("t.ctid >= %(lo)s::tid AND t.ctid < %(hi)s::tid")
FROM_PAGE = sql.SQL("t.ctid >= %(lo)s::tid")


def page_bounds(lo: int, hi: int | None = None) -> dict[str, str]:
    """Query parameters ``lo`` (and ``hi``): the first tid of heap page ``lo`` (and of ``hi``)."""
    bounds = {"lo": f"({lo},0)"}
    if hi is not None:
        bounds["hi"] = f"({hi},0)"
    return bounds


def index_bound(now: datetime, window: Window) -> datetime:
    """A clock value no due record exceeds: exact for fixed windows, with a margin for months/years."""
    bound = as_utc(now) - window.relativedelta
    if not window.fixed:
        bound += _CLAMP_MARGIN
    return bound


def shard_chunk(shard: int, shards: int, chunk: int, chunks: int) -> tuple[int, int]:
    """Chunk ``chunk`` of the ``chunks`` a shard's due set is computed in, for shard ``shard`` of
    ``shards`` of a chunked clock: the (``chunk``, ``chunks``) parameters of ``chunk_qual``.

    The one place a shard meets the chunk arithmetic. ``chunk_qual`` cuts residue classes
    (mod(c, N) = k), so shard k of S takes residue class k of S and its j-th of M chunks is residue
    class k + S*j of S*M (c = k mod S exactly when c mod S*M is one of k, k+S, ..., k+S*(M-1)): the
    shard's records do not depend on M, and the shards partition every record. Were ``chunk_qual``
    to cut ranges of the column's values instead, this would be chunk k*M + j of S*M."""
    if not (0 <= shard < shards and 0 <= chunk < chunks):
        raise ValueError(f"chunk {chunk} of {chunks} in shard {shard} of {shards}")
    return shard + shards * chunk, shards * chunks


def expiry_sql(column: sql.Composable, window_param: str) -> sql.Composed:
    """RET-10: clock + window in UTC calendar arithmetic, whatever the session's time zone."""
    return sql.SQL("(({col} AT TIME ZONE 'UTC') + {w}::interval) AT TIME ZONE 'UTC'").format(
        col=column, w=sql.Placeholder(window_param)
    )


class Selection:
    """The SQL of one rule's selection at one "now", with its parameters."""

    def __init__(self, target: Target, now: datetime, holds: Holds, shard: Shard | None = None):
        self.target = target
        self.now = as_utc(now)
        self.holds = holds
        self.shard = shard if shard is not None and shard.count > 1 else None
        self.params: dict[str, Any] = {"now": self.now, "rank": target.rank}
        for i, rule in enumerate(target.siblings):
            self.params[f"w{i}"] = target.policy.window(rule).iso
        self.params["index_bound"] = index_bound(self.now, target.window)
        held_ranks = [i for i, r in enumerate(target.siblings) if r.id in holds.rules]
        self.params["held_ranks"] = held_ranks
        # On a table of one rule, a hold on the rule holds every record.
        self.rule_held = not target.shared and target.rule.id in holds.rules
        self.held_predicates = HeldPredicates(target, holds, self.params)
        lo, hi = self.page_range()
        self.params["shard_lo"], self.params["shard_hi"] = f"({lo},0)", None if hi is None else f"({hi},0)"
        self.params["shard_relations"] = []  # a partitions shard's leaf partitions (oids), set by its sweep

    # --- shards ---

    def page_range(self) -> tuple[int, int | None]:
        """The heap pages [lo, hi) of a blocks shard (hi None: to the end); (0, None) otherwise."""
        if self.shard is None or self.shard.kind != "blocks":
            return 0, None
        return self.shard.lo, self.shard.hi

    def chunks_of(self, chunks: int) -> int:
        """How many chunks this selection's due set is computed in when the whole rule's takes
        ``chunks``: a chunks shard takes its share (at least one)."""
        if self.shard is None or self.shard.kind != "chunks":
            return chunks
        return max(1, -(-chunks // self.shard.count))

    def chunked(self, chunks: int) -> bool:
        """Whether statements of this selection computed in ``chunks`` chunks carry ``chunk_qual``."""
        return chunks > 1 or (self.shard is not None and self.shard.kind == "chunks")

    def chunk_params(self, chunk: int, chunks: int) -> dict[str, int]:
        """The parameters of chunk ``chunk`` of ``chunks`` of this selection (``shard_chunk``)."""
        if self.shard is not None and self.shard.kind == "chunks":
            chunk, chunks = shard_chunk(self.shard.index, self.shard.count, chunk, chunks)
        return {"chunk": chunk, "chunks": chunks}

    def shard_condition(self, alias: str = "t") -> sql.Composable | None:
        """The shard's rows among the table's (alias): a heap page range, or the shard's partitions."""
        if self.shard is None:
            return None
        if self.shard.kind == "blocks":
            tid = sql.Identifier(alias, "ctid")
            cond = sql.SQL("{} >= %(shard_lo)s::tid").format(tid)
            if self.shard.hi is not None:
                cond += sql.SQL(" AND {} < %(shard_hi)s::tid").format(tid)
            return cond
        if self.shard.kind == "partitions":
            return sql.SQL("{} = ANY(%(shard_relations)s::oid[])").format(sql.Identifier(alias, "tableoid"))
        return None  # chunks: the chunk qual of the clock view (``chunk_params``)

    # --- per-record clocks (views) ---

    def due_records(self, *, governed_only: bool = False, chunked: bool = False) -> sql.Composed:
        """(record_id, rule_held): records this rule governs that are due (every applicable rule
        expired), or, with ``governed_only``, every record it governs whatever the clock.

        ``chunked`` (only for a chunked target) keeps the records of one chunk: parameters
        ``chunks`` (N) and ``chunk`` (0..N-1). The qual names only the view's ``chunk`` column, so
        PostgreSQL pushes it below the view's window function (it is in every PARTITION BY): the
        chunk's rows are filtered in the scan, before the sort and the window."""
        t = self.target
        if chunked and not t.chunked:
            raise ValueError(f"the clock views of rule {t.rule.id!r} have no integer {CHUNK_COLUMN!r} column")
        where = sql.SQL(" WHERE {}").format(self.chunk_qual("c")) if chunked else sql.SQL("")
        parts = []
        for i, rule in enumerate(t.siblings):
            parts.append(
                sql.SQL("SELECT c.record_id, {i} AS rank, {expiry} AS expires_at FROM {view} c{where}").format(
                    i=sql.Literal(i),
                    expiry=expiry_sql(sql.SQL("c.clock"), f"w{i}"),
                    view=clock_source(rule, t.key),
                    where=where,
                )
            )
        having: list[sql.Composable] = []
        if not governed_only:
            # every applicable rule has expired; a clock that is NULL has not started: not expired
            having.append(sql.SQL("max(e.expires_at) <= %(now)s AND bool_and(e.expires_at IS NOT NULL)"))
        if t.shared:
            having.append(sql.SQL("(array_agg(e.rank ORDER BY e.expires_at DESC NULLS FIRST, e.rank))[1] = %(rank)s"))
            rule_held: sql.Composable = sql.SQL("coalesce(bool_or(e.rank = ANY(%(held_ranks)s::int[])), false)")
        else:
            rule_held = sql.Literal(self.rule_held)
        query = sql.SQL("SELECT e.record_id, {rule_held} AS rule_held FROM ({union}) e GROUP BY e.record_id").format(
            rule_held=rule_held, union=sql.SQL(" UNION ALL ").join(parts)
        )
        if having:
            query += sql.SQL(" HAVING ") + sql.SQL(" AND ").join(having)
        return query

    @staticmethod
    def chunk_qual(alias: str = "c") -> sql.Composed:
        """Rows of chunk %(chunk)s of %(chunks)s: every integer (and NULL, in chunk 0) in exactly one."""
        return sql.SQL("coalesce(abs(mod({col}, %(chunks)s)), 0) = %(chunk)s").format(
            col=sql.Identifier(alias, CHUNK_COLUMN)
        )

    # --- per-row predicates (alias t) ---

    def direct_due(self, alias: str = "t") -> sql.Composed:
        """The due predicate on a row, for a clock that is a column of the table. For a window of
        fixed length (PT24H, RET-1) ``clock <= now - window`` is exact (``index_bound``): the UTC
        calendar arithmetic (two time-zone conversions per row) is only needed for months and
        years, where the bound has a margin and the expiry decides."""
        assert self.target.direct_clock is not None, "only for a column clock"
        col = sql.Identifier(alias, self.target.direct_clock)
        if self.target.window.fixed:
            return sql.SQL("{col} <= %(index_bound)s").format(col=col)
        return sql.SQL("{col} <= %(index_bound)s AND {expiry} <= %(now)s").format(
            col=col, expiry=expiry_sql(col, f"w{self.target.rank}")
        )

    def row_filter(self, alias: str = "t") -> sql.Composable:
        """Rows the action still has to handle: not yet anonymised, not already being purged."""
        t = self.target
        if t.marker:
            return sql.SQL("{} IS NULL").format(sql.Identifier(alias, t.marker))
        if t.purges_objects:
            return sql.SQL("{} = 'stored'").format(sql.Identifier(alias, "state"))
        return sql.SQL("true")

    def held(self, alias: str = "t") -> sql.Composable:
        """True when a record, person or dependent hold keeps the row (rule holds aside)."""
        return self.held_predicates.held(alias)

    def held_clauses(self, alias: str = "t") -> list[sql.Composable]:
        return self.held_predicates.clauses(alias)

    # --- whole statements ---

    def rule_held_sql(self) -> sql.Composable:
        return sql.Literal(self.rule_held) if self.target.direct_clock else sql.SQL("d.rule_held")

    def candidates(
        self,
        columns: Callable[[sql.Composable], sql.Composable],
        *,
        relation: sql.Composable | None = None,
        not_held: bool = False,
        chunked: bool = False,
        extra: sql.Composable | None = None,
    ) -> sql.Composed:
        """SELECT columns FROM the table (alias t) for due rows still to handle; ``columns`` gets
        the rule-hold expression. ``not_held`` leaves held rows out; ``relation`` is a partition;
        ``chunked``: one chunk of the records (``due_records``); ``extra``: one more condition on t."""
        t = self.target
        rel = relation if relation is not None else ident(t.table)
        rule_held = self.rule_held_sql()
        conds = [self.row_filter("t")]
        if extra is not None:
            conds.append(extra)
        in_shard = self.shard_condition("t")
        if in_shard is not None:
            conds.append(in_shard)
        if t.direct_clock:
            query = sql.SQL("SELECT {cols} FROM {rel} t").format(cols=columns(rule_held), rel=rel)
            conds.append(self.direct_due("t"))
        else:
            query = sql.SQL("SELECT {cols} FROM {rel} t JOIN ({due}) d ON d.record_id = t.{key}").format(
                cols=columns(rule_held), rel=rel, due=self.due_records(chunked=chunked), key=sql.Identifier(t.key)
            )
        if not_held:
            conds.append(sql.SQL("NOT ({rh} OR {held})").format(rh=rule_held, held=self.held("t")))
        return query + sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conds)

    def counts(
        self, relation: sql.Composable | None = None, *, chunked: bool = False, pages: sql.Composable | None = None
    ) -> sql.Composed:
        """(due and not held, due but held) among rows still to handle (of one chunk, ``chunked``;
        of a range of heap pages, ``pages``: ``IN_PAGES`` or ``FROM_PAGE``, a verification's slice)."""
        held = self.held("t")
        return self.candidates(
            lambda rh: sql.SQL(
                "count(*) FILTER (WHERE NOT ({rh} OR {held})), count(*) FILTER (WHERE {rh} OR {held})"
            ).format(rh=rh, held=held),
            relation=relation,
            chunked=chunked,
            extra=pages,
        )

    def purging_rows(self, columns: sql.Composable, *, not_held: bool = False) -> sql.Composed:
        """Rows left in state 'purging' (tombstones of an interrupted purge) that this rule finishes:
        those it governs now, and for the first rule of the table those no rule governs any more.
        ``not_held`` leaves out those a hold in force keeps (RET-8): a record, person or dependent
        hold, or a hold on a rule that applies to the record; they stay 'purging', untouched."""
        t = self.target
        query = sql.SQL("SELECT {cols} FROM {rel} t WHERE t.state = 'purging'").format(cols=columns, rel=ident(t.table))
        if not_held:
            query += sql.SQL(" AND NOT {}").format(self.held("t"))
            if self.rule_held:
                query += sql.SQL(" AND false")
        if not t.shared:
            return query
        governed = self.due_records(governed_only=True)
        key = sql.Identifier(t.key)
        if not_held and self.params["held_ranks"]:
            query += sql.SQL(" AND t.{key} NOT IN (SELECT record_id FROM ({due}) r WHERE r.rule_held)").format(
                key=key, due=governed
            )
        if t.rank == 0:
            everyone = sql.SQL(" UNION ALL ").join(
                sql.SQL("SELECT record_id FROM {} c").format(clock_source(r, t.key)) for r in t.siblings
            )
            return query + sql.SQL(
                " AND (t.{key} IN (SELECT record_id FROM ({governed}) g)"
                " OR t.{key} NOT IN (SELECT record_id FROM ({everyone}) e WHERE record_id IS NOT NULL))"
            ).format(key=key, governed=governed, everyone=everyone)
        return query + sql.SQL(" AND t.{key} IN (SELECT record_id FROM ({governed}) g)").format(
            key=key, governed=governed
        )

    def purging_counts(self) -> sql.Composed:
        """(all, not held) of the 'purging' rows this rule finishes (their difference is held)."""
        key = sql.SQL("t.{}").format(sql.Identifier(self.target.key))
        return sql.SQL("SELECT (SELECT count(*) FROM ({}) a), (SELECT count(*) FROM ({}) b)").format(
            self.purging_rows(key), self.purging_rows(key, not_held=True)
        )
