"""What a sweep of a rule would do at "now", with no effect (``plan_rule``), and the result a dry
run reports (``dry_result``). Read-only: the caller's transaction is READ ONLY."""

from __future__ import annotations

from datetime import datetime

from psycopg2 import sql
from psycopg2.extensions import connection, cursor

from governance.policy import AnonymiseAction, Policy
from governance.sweep.counting import count_due, purging_counts
from governance.sweep.held import Holds
from governance.sweep.options import Options
from governance.sweep.partitions import list_partitions
from governance.sweep.results import RulePlan, RuleResult
from governance.sweep.selection import Selection
from governance.sweep.strategies import choose
from governance.sweep.strategies.partitions import PartitionDrops, has_held_rows
from governance.sweep.target import load_target
from governance.windows import iso


def plan_rule(conn: connection, policy: Policy, rule_id: str, now: datetime, holds: Holds, opts: Options) -> RulePlan:
    target = load_target(conn, policy, rule_id)
    sel = Selection(target, now, holds)
    rule = target.rule
    p = RulePlan(
        rule=rule.id,
        requirements=list(rule.requirements),
        action=rule.action.type,
        table=rule.table,
        window=target.window.iso,
        now=iso(now),
    )
    with conn.cursor() as cur:
        if target.drops_partitions:
            p.strategy = PartitionDrops.name
            _plan_partitions(conn, cur, sel, p)
        else:
            p.strategy = choose(cur, sel, opts)
            conn.rollback()
            p.due, p.held = count_due(conn, sel, opts, read_only=True)  # as the sweep verifies
            cur.execute("SET TRANSACTION READ ONLY")
        if target.purges_objects:
            p.purging, held = purging_counts(cur, sel)
            p.held += held
            p.objects = p.due + p.purging
    return p


def _plan_partitions(conn: connection, cur: cursor, sel: Selection, p: RulePlan) -> None:
    """Partitions that would be dropped whole (their rows counted), and the rows due elsewhere."""
    target = sel.target
    for part in list_partitions(conn, target.table, sel.now, target.window):
        if part.none_expired:
            continue
        if part.fully_expired and not has_held_rows(cur, sel, part):
            cur.execute(sql.SQL("SELECT count(*) FROM {}").format(part.ident))
            rows = _count(cur)
            p.partitions_to_drop.append(part.qualified)
            p.partition_rows += rows
            p.due += rows
            continue
        cur.execute(sel.counts(relation=part.ident), sel.params)
        row = cur.fetchone()
        due, held = row if row else (0, 0)
        p.due, p.held = p.due + due, p.held + held


def _count(cur: cursor) -> int:
    row = cur.fetchone()
    return int(row[0]) if row else 0


def dry_result(conn: connection, policy: Policy, rule_id: str, now: datetime, opts: Options) -> RuleResult:
    """What ``sweep_rule(dry_run=True)`` reports: the plan, as a result."""
    try:
        with conn.cursor() as cur:
            cur.execute("SET TRANSACTION READ ONLY")
        p = plan_rule(conn, policy, rule_id, now, Holds.at(conn, now, policy), opts)
    finally:
        conn.rollback()
    rule = policy.rule(rule_id)
    result = RuleResult(
        rule.id,
        list(rule.requirements),
        rule.action.type,
        held=p.held,
        strategy=p.strategy,
        partitions_dropped=len(p.partitions_to_drop),
        dry_run=True,
    )
    if isinstance(rule.action, AnonymiseAction):
        result.anonymised = p.due
    else:
        result.deleted = p.due + p.purging
    result.objects_purged = p.objects
    return result
