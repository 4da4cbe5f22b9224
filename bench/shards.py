"""Sharded sweeps (#14): a rule cut into N shards run side by side, each on its own connection (as
mapped tasks on N Airflow workers), against the same rule swept unsharded, on identical copies.

Two rules, each in a database of its own built once and copied (``CREATE DATABASE ... TEMPLATE``,
the files as they are) so both contenders start from the same bytes:

- **order-records** (RET-3/RET-8, chunks shards): ``rows`` orders (default 1,000,000) as in the
  ``orders`` measurement (bench/builders.py), half of them due, swept by the windowed clock of the
  RET-3 view (the policy without ``clock.kept``, as a shop without the kept clock has it). The
  shop's own policy keeps the clock per customer (ADR 0011), which makes the rule one ``whole``
  shard: its due set already costs time in proportion to the customers due;
- **cookie-preferences** (RET-6, blocks shards): ``rows`` cookie preferences (default 2,000,000)
  given evenly over two years, half of them past the 12 months;
- **visit-data** (RET-1, partitions shards): ``rows`` visits (default 4,000,000) in hourly
  partitions over 48 hours, half expired, as in the ``visits`` measurement: whole partitions
  dropped, the one the cut-off falls into batch-deleted.

Timed: the unsharded ``sweep_rule`` against the whole sharded sweep (plan, the N shards in N
threads with a connection each, then the finish's whole-rule verification and summary), wall
clock. N is the number of cores (the shards a machine can run at once); the N the DAG would
derive from the table's size is noted. Target: no slower in total (ratio <= 1.0; the partitions
kind is reported, see ``run``). Both copies must end with the same rows changed and the same rule
summary, and the plan must have cut the rule into N shards of the kind named (a rule planned as one
``whole`` shard is not a sharded sweep). Not in the default run: ``python bench/run.py --only shards``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, NamedTuple

import services
from builders import build_orders, build_visits, settle_tables
from harness import Check, Context, analyze_all, at_most, checkpoint, ratio
from orders import without_retention_notices

TARGET = 1.0


class Case(NamedTuple):
    """One rule measured: its data, the policy it is swept under, the kind its shards must be, whether
    "no slower" is its target (else reported), and what a sweep left in its table (rows, rows changed)."""

    rule: str
    name: str
    build: Callable[..., None]
    policy: Any
    kind: str
    targeted: bool
    left_sql: str


COOKIES_SQL = """
INSERT INTO shop.cookie_preferences (preference_id, visitor_key, account_id, analytics, marketing, given_at)
SELECT g, md5(g::text)::uuid, NULL, g %% 2 = 0, g %% 3 = 0,
       %(now)s::timestamptz - make_interval(secs => (g %% 1000 * 63072 + g / 1000 %% 63) * 1.0)
FROM generate_series(1, %(rows)s::bigint) AS g
"""


def _build(ctx: Context, name: str, build) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """A database with the schema and the rule's data, settled and checkpointed, then a file copy
    of it: (template url, template name); the copies are made by ``_copy``."""
    from governance.db import apply_schema, connect

    admin = services.admin(ctx.admin_url)
    db = f"{ctx.db_name}_shards_{name}"
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{db}"')
    admin.close()
    url = services.with_database(ctx.admin_url, db)
    conn = connect(url)
    apply_schema(conn, ctx.policy)
    local = replace(ctx, db_url=url, db_name=db)
    build(local, conn)
    analyze_all(conn)
    checkpoint(conn)
    conn.close()
    return url, db


def windowed_policy(policy):  # type: ignore[no-untyped-def]
    """``policy`` with the RET-3 clock read from its view alone (``clock.kept`` dropped): the rule's
    due set is then the view's chunks, which shard by chunk class."""
    rules = [
        r.model_copy(update={"clock": r.clock.model_copy(update={"kept": None})}) if r.id == "order-records" else r
        for r in policy.rules
    ]
    return policy.model_copy(update={"rules": rules})


def _orders(ctx: Context, conn) -> None:  # type: ignore[no-untyped-def]
    with ctx.setup_phase("shards: orders"):
        build_orders(ctx, conn, ctx.size(1_000_000, 8_000))


def _visits(ctx: Context, conn) -> None:  # type: ignore[no-untyped-def]
    with ctx.setup_phase("shards: visits"):
        build_visits(ctx, conn, ctx.size(4_000_000, 20_000))


def _cookies(ctx: Context, conn) -> None:  # type: ignore[no-untyped-def]
    with ctx.setup_phase("shards: cookie preferences"):
        with conn.cursor() as cur:
            cur.execute(COOKIES_SQL, {"now": ctx.now, "rows": ctx.size(2_000_000, 20_000)})
            cur.execute(
                "SELECT setval('shop.cookie_preferences_preference_id_seq', (SELECT max(preference_id) FROM shop.cookie_preferences))"
            )
        conn.commit()
        settle_tables(ctx, ["shop.cookie_preferences"])


def _whole(ctx: Context, url: str, rule: str, run: str) -> float:
    from governance.db import connect
    from governance.sweep import sweep_rule

    conn = connect(url, application_name="governance-bench-whole")
    try:
        start = time.perf_counter()
        sweep_rule(conn, None, ctx.policy, rule, ctx.now, run)
        return time.perf_counter() - start
    finally:
        conn.close()


def _sharded(ctx: Context, url: str, rule: str, run: str, count: int) -> tuple[float, list[float], float, list[str]]:
    """(wall seconds, each shard's seconds, the finish's seconds, the shards' kinds): plan, shards in
    threads, finish."""
    from governance.db import connect
    from governance.sweep.sharded import finish_rule, sweep_shard
    from governance.sweep.shards import plan_shards

    def one(shard) -> float:  # type: ignore[no-untyped-def]
        conn = connect(url, application_name=f"governance-bench-shard-{shard.index}")
        try:
            began = time.perf_counter()
            sweep_shard(conn, None, ctx.policy, shard, ctx.now, run)
            return time.perf_counter() - began
        finally:
            conn.close()

    start = time.perf_counter()
    conn = connect(url, application_name="governance-bench-plan")
    try:
        shards = plan_shards(conn, ctx.policy, rule, ctx.now, count)
        with ThreadPoolExecutor(max_workers=len(shards)) as pool:
            each = list(pool.map(one, shards))
        began = time.perf_counter()
        finish_rule(conn, None, ctx.policy, rule, len(shards), ctx.now, run)
        finish = time.perf_counter() - began
        return time.perf_counter() - start, each, finish, [shard.kind for shard in shards]
    finally:
        conn.close()


def _outcome(url: str, case: Case, run: str) -> tuple:
    """What a sweep left: rows per state of the rule's table, and the rule's summary counts."""
    from governance.db import connect

    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(case.left_sql)
            rows = cur.fetchone()
            cur.execute(
                "SELECT counts FROM governance.evidence WHERE run_id = %s AND rule_id = %s AND kind = 'sweep_rule' "
                "ORDER BY entry_id DESC LIMIT 1",
                (run, case.rule),
            )
            summary = cur.fetchone()
        conn.rollback()
        return tuple(rows), summary[0] if summary else None
    finally:
        conn.close()


def _default_shards(ctx: Context, url: str, rule: str) -> int:
    from governance.db import connect
    from governance.sweep.shards import plan_shards

    conn = connect(url)
    try:
        return plan_shards(conn, ctx.policy, rule, ctx.now)[0].count
    finally:
        conn.close()


def run(ctx: Context) -> list[Check]:
    policy = without_retention_notices(ctx.policy)  # as the orders measurement: notices measured apart
    count = max(2, ctx.cores)
    checks = []
    # Shards of partitions are reported: they mostly drop partitions, which take the parent's lock
    # in turn, so the default plans such a rule as one shard (shards.partitions_default).
    cases = (
        Case("order-records", "orders", _orders, windowed_policy(policy), "chunks", True,
             "SELECT count(*), count(anonymised_at) FROM shop.orders"),
        Case("cookie-preferences", "cookies", _cookies, policy, "blocks", True,
             "SELECT count(*), 0 FROM shop.cookie_preferences"),
        Case("visit-data", "visits", _visits, policy, "partitions", False, "SELECT count(*), 0 FROM shop.visits"),
    )  # fmt: skip
    for case in cases:
        rule, name, kind = case.rule, case.name, case.kind
        ctx = replace(ctx, policy=case.policy)
        template_url, template = _build(ctx, name, case.build)
        copies = {}
        try:
            with ctx.setup_phase(f"shards: {name} copies"):
                for contender in ("whole", "sharded"):
                    db = f"{template}_{contender}"
                    services.drop_database(ctx.admin_url, db)
                    copies[contender] = (services.clone_database(ctx.admin_url, template, db), db)
            derived = _default_shards(ctx, copies["whole"][0], rule)
            ctx.log(f"shards: {rule} unsharded")
            whole = _whole(ctx, copies["whole"][0], rule, "bench-shards")
            ctx.log(f"shards: {rule} in {count} shards side by side")
            sharded, each, finish, kinds = _sharded(ctx, copies["sharded"][0], rule, "bench-shards", count)
            rows, summary = _outcome(copies["sharded"][0], case, "bench-shards")
            same = _outcome(copies["whole"][0], case, "bench-shards") == (rows, summary)
        finally:
            for _, db in copies.values():
                services.drop_database(ctx.admin_url, db)
            services.drop_database(ctx.admin_url, template)
        r = ratio(sharded, whole)
        notes = [
            f"unsharded {whole:.2f} s; {count} shards side by side {sharded:.2f} s in total: shards "
            + ", ".join(f"{s:.2f}" for s in each)
            + f" s, then the finish (whole-rule verification, summary) {finish:.2f} s",
            f"the DAG's default for this rule would be {derived} shard(s) (shards.plan_shards without a count)",
            f"the same effect and rule summary on both copies: {same} ({summary})",
        ]
        if not same:
            r = None
            notes.append("SHARDED SWEEP WRONG: the copies differ")
        if kinds != [kind] * count:
            r = None
            notes.append(f"NOT SHARDED: the plan gave {kinds}, {count} {kind} shards expected")
        checks.append(
            Check(
                f"shards.{name}",
                f"{rule}: {count} {kind} shards vs one sweep",
                sharded,
                {"unsharded": whole},
                r,
                "ours/baseline",
                f"<= {TARGET}x unsharded" if case.targeted else "reported (the default plans 1 shard), the same effect",
                r is not None and (not case.targeted or bool(at_most(r, TARGET))),
                {"rows": rows[0], "shards": count, "default_shards": derived},
                notes,
            )
        )
    return checks
