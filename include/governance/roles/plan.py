"""What each duty's role may do, derived from the policy and the catalog (SEC-4).

- sweeper: SELECT, DELETE, UPDATE on the rules' tables; SELECT on what its hold checks read (the
  data map's stores and the tables whose foreign keys cascade from a rule's table), the clock views
  and holds; EXECUTE the evidence, hold and partition functions. Rules that drop partitions need the
  partitioned table's ownership: ``owned`` lists those tables, which ``apply`` gives to the role.
- auditor: read-only. Column-level SELECT on exactly the columns of the data map's stores the audit
  predicates and the rights checks (``include/sql/audit/rights/``) read (taken from PostgreSQL's own
  dependency records of each, evaluated as a temporary view) and the object-store check joins, SELECT on the other governance tables they read
  (the request ledger); CREATE on the database for its scratch schema; evidence.
- request_worker (#10): SELECT on the data map's stores and the join tables its links go through;
  holds; evidence; SELECT, INSERT, UPDATE on the request ledger, its contacts and its exports (and
  their sequences), never DELETE. #11: UPDATE on exactly the columns a rectification may correct
  (REC-1), SELECT, INSERT, UPDATE on the recipients outbox (TP-5), and the pending corrections
  (DELETE too: they go when applied or when the request closes). #11 RES-1, OBJ-1, CON-1: SELECT,
  INSERT, UPDATE on the processing register, INSERT and UPDATE(lifted_at, lifted_by) on legal holds
  (a restriction's person holds, lifted with it), UPDATE on exactly the columns the purposes'
  ``switch_off`` set. The erasure and the account
  deletion (ERA-1, RET-7), from the erasure's own plan of the data map (``erasure_grants``): DELETE
  on the stores it erases, UPDATE on the masked columns and marker of the store it anonymises
  (RET-8), UPDATE of ``deleted_at`` of the account stores (RET-2's clock), and its work tables.
- reviewer: the evidence, ``governance.audit_history`` and ``verify_evidence()``; no shop table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from psycopg2 import sql
from psycopg2.extensions import cursor

from governance.audit.predicates import audit_parameters, audit_sql_text, render
from governance.audit.rendering import render_markers
from governance.audit.rights import declare_temporaries, load_checks
from governance.erasure.account import DELETED_AT
from governance.erasure.objects import TOMBSTONE
from governance.erasure.plan import erasure_plan
from governance.policy import Policy
from governance.requests.corrections import rectifiable_columns

GOVERNANCE = "governance"
_VIEW = "governance_roles_predicate"
# What a function a check calls reads, which PostgreSQL's dependency records of a view do not show
# (a SQL function's body): its tables are the check's reads too.
FUNCTION_READS = {f"{GOVERNANCE}.processing_off_at": (f"{GOVERNANCE}.processing_register",)}  # RES-1, OBJ-1
_FUNCTIONS = (
    "SELECT DISTINCT d.refobjid::regproc::text FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid "
    "WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_proc'::regclass AND r.ev_class = %s::regclass"
)


@dataclass(frozen=True, order=True)
class Grant:
    """One privilege: ``kind`` is database, schema, table, column or function; ``target`` the
    object (``schema.table``, ``schema.function``); ``column`` for column privileges."""

    kind: str
    target: str
    privilege: str
    column: str = ""

    def describe(self) -> str:
        column = f"({self.column})" if self.column else ""
        return f"{self.privilege}{column} ON {self.kind} {self.target}"


@dataclass
class Duties:
    """Every role's wanted grants, and the tables the sweeper must own (partition drops)."""

    grants: dict[str, set[Grant]] = field(default_factory=dict)
    owned: dict[str, set[str]] = field(default_factory=dict)


def _schemas(grants: set[Grant]) -> set[Grant]:
    """USAGE on every schema the grants reach."""
    names = {g.target.split(".", 1)[0] for g in grants if g.kind in ("table", "column", "function")}
    return {Grant("schema", name, "USAGE") for name in names}


def _tables(names: set[str], *privileges: str) -> set[Grant]:
    return {Grant("table", name, p) for name in names for p in privileges}


def _evidence_writer(cur: cursor) -> set[Grant]:
    """Appending evidence: EXECUTE append_evidence; while that function runs with its caller's
    rights (not SECURITY DEFINER), also INSERT into the log and UPDATE of its head (never UPDATE of
    an entry). SELECT on the log: ``evidence.append`` reads its own run's entries."""
    grants = {
        Grant("function", f"{GOVERNANCE}.append_evidence", "EXECUTE"),
        Grant("table", f"{GOVERNANCE}.evidence", "SELECT"),
    }
    cur.execute("SELECT prosecdef FROM pg_proc WHERE oid = 'governance.append_evidence'::regproc")
    row = cur.fetchone()
    if row is not None and not row[0]:
        grants |= {
            Grant("table", f"{GOVERNANCE}.evidence", "INSERT"),
            Grant("table", f"{GOVERNANCE}.evidence_head", "SELECT"),
            Grant("table", f"{GOVERNANCE}.evidence_head", "UPDATE"),
            Grant("sequence", f"{GOVERNANCE}.evidence_entry_id_seq", "USAGE"),
        }
    return grants


def _hold_reader() -> set[Grant]:
    return {
        Grant("table", f"{GOVERNANCE}.legal_holds", "SELECT"),
        Grant("function", f"{GOVERNANCE}.holds_at", "EXECUTE"),
        Grant("function", f"{GOVERNANCE}.email_pseudonym", "EXECUTE"),
    }


REQUEST_TABLES = {
    f"{GOVERNANCE}.subject_requests",
    f"{GOVERNANCE}.request_contacts",
    f"{GOVERNANCE}.request_exports",
    f"{GOVERNANCE}.recipient_outbox",
}
REQUEST_SEQUENCES = {
    f"{GOVERNANCE}.subject_requests_request_id_seq",
    f"{GOVERNANCE}.request_exports_export_id_seq",
    f"{GOVERNANCE}.recipient_outbox_notice_id_seq",
}


ERASURE_TABLES = {f"{GOVERNANCE}.erasure_work", f"{GOVERNANCE}.erasure_subjects"}
ERASURE_NAMES = f"{GOVERNANCE}.erasure_recipient_names"  # TP-5: deleted once copied into the outbox


def erasure_grants(cur: cursor, policy: Policy) -> set[Grant]:
    """What an erasure of a person (ERA-1) and an account deletion (RET-7) change, from the
    erasure's plan with nothing kept: DELETE on the stores it erases (objects first: the store's
    rows), UPDATE of the RET-8 masking columns and marker of the store it anonymises, UPDATE of the
    account stores' ``deleted_at`` (an account kept, marked deleted); never a store it keeps."""
    grants: set[Grant] = set()
    for plan in erasure_plan(cur, policy):
        if plan.disposition == "erase":
            grants.add(Grant("table", plan.table, "DELETE"))
            if plan.purges_objects:  # the tombstone first, then the objects, then the row
                grants.add(Grant("column", plan.table, "UPDATE", TOMBSTONE))
        elif plan.disposition == "anonymise" and plan.anonymise is not None:
            masked = [*plan.anonymise.columns, plan.anonymise.marker_column]
            grants |= {Grant("column", plan.table, "UPDATE", column) for column in masked}
    grants |= {Grant("column", store.table, "UPDATE", DELETED_AT) for store in policy.account_stores()}
    grants |= _tables(ERASURE_TABLES, "SELECT", "INSERT", "UPDATE")
    return grants | _tables({ERASURE_NAMES}, "SELECT", "INSERT", "UPDATE", "DELETE")


def request_worker_grants(cur: cursor, policy: Policy) -> set[Grant]:
    """Read the person's records (through the links' join tables too, ``governance.person``); open,
    move on and complete requests and their exports (REQ-1)."""
    readable = _store_tables(policy) | set(policy.join_tables())
    grants = _tables(readable, "SELECT") | _hold_reader() | _evidence_writer(cur)
    grants |= _tables(REQUEST_TABLES, "SELECT", "INSERT", "UPDATE")
    grants |= _tables({f"{GOVERNANCE}.request_corrections"}, "SELECT", "INSERT", "UPDATE", "DELETE")
    grants |= {
        Grant("column", store.table, "UPDATE", column)
        for category in policy.categories
        for store in category.stores
        for column in rectifiable_columns(policy, store)
    }
    grants |= erasure_grants(cur, policy)
    return grants | _processing_writer(policy) | {Grant("sequence", name, "USAGE") for name in REQUEST_SEQUENCES}


def _processing_writer(policy: Policy) -> set[Grant]:
    """#11 RES-1, OBJ-1, CON-1: the register, the restriction's holds, the switched-off columns."""
    grants = _tables({f"{GOVERNANCE}.processing_register"}, "SELECT", "INSERT", "UPDATE")
    grants |= {
        Grant("table", f"{GOVERNANCE}.legal_holds", "INSERT"),
        Grant("column", f"{GOVERNANCE}.legal_holds", "UPDATE", "lifted_at"),
        Grant("column", f"{GOVERNANCE}.legal_holds", "UPDATE", "lifted_by"),
        Grant("sequence", f"{GOVERNANCE}.processing_register_entry_id_seq", "USAGE"),
        Grant("sequence", f"{GOVERNANCE}.legal_holds_hold_id_seq", "USAGE"),
        Grant("function", f"{GOVERNANCE}.processing_off_at", "EXECUTE"),
    }
    return grants | {
        Grant("column", switch.table, "UPDATE", column)
        for purpose in policy.purposes
        for switch in purpose.switch_off
        for column in switch.set
    }


def _store_tables(policy: Policy) -> set[str]:
    return {store.table for category in policy.categories for store in category.stores}


def _children(cur: cursor, tables: set[str]) -> set[str]:
    """Tables with a foreign key to one of ``tables`` (a removal cascades into, or is held by, them)."""
    cur.execute(
        "SELECT DISTINCT c.conrelid::regclass::text FROM pg_constraint c "
        "WHERE c.contype = 'f' AND c.confrelid::regclass::text = ANY(%s)",
        (sorted(tables),),
    )
    return {name for (name,) in cur.fetchall()}


def _partitioned(cur: cursor, tables: set[str]) -> set[str]:
    cur.execute(
        "SELECT c.oid::regclass::text FROM pg_class c WHERE c.relkind = 'p' AND c.oid::regclass::text = ANY(%s)",
        (sorted(tables),),
    )
    return {name for (name,) in cur.fetchall()}


def sweeper_grants(cur: cursor, policy: Policy) -> tuple[set[Grant], set[str]]:
    rule_tables = {rule.table for rule in policy.rules}
    readable = _store_tables(policy) | _children(cur, rule_tables)
    views = {rule.clock.view for rule in policy.rules if rule.clock.view}
    # a clock kept per group (RET-3, ADR 0011): read by the sweep, written by SECURITY DEFINER triggers
    views |= {rule.clock.kept.table for rule in policy.rules if rule.clock.kept}
    grants = _tables(rule_tables, "SELECT", "DELETE", "UPDATE") | _tables(readable | views, "SELECT")
    grants |= _evidence_writer(cur) | _hold_reader()
    owned = _partitioned(cur, rule_tables)
    if owned:  # new hourly partitions: CREATE TABLE ... PARTITION OF in the table's schema
        grants.add(Grant("function", f"{GOVERNANCE}.ensure_hourly_partitions", "EXECUTE"))
        grants |= {Grant("schema", name.split(".", 1)[0], "CREATE") for name in owned}
    return grants, owned


def predicate_columns(cur: cursor, policy: Policy) -> set[tuple[str, str]]:
    """(table, column) of every column the audit predicates and rights checks read, as PostgreSQL
    records it for each made a temporary view (rolled back), and the tables of ``FUNCTION_READS`` a
    view calls; whole-row references give column ''; temporary tables (a preparer's) need no grant."""
    params = audit_parameters(policy, datetime.now(UTC))
    texts = [
        render(cur, audit_sql_text(next(r for r in policy.rules if r.audit == audit_file)), params)
        for audit_file in dict.fromkeys(rule.audit for rule in policy.rules)
    ]
    checks = load_checks()
    texts += [render(cur, render_markers(cur, policy, c.file, c.text), params) for c in checks]
    columns: set[tuple[str, str]] = set()
    for rendered in texts:
        cur.execute("SAVEPOINT governance_roles")
        declare_temporaries(cur, checks)  # what a check's preparer reads first (temporary: no grant)
        cur.execute(sql.SQL("CREATE TEMP VIEW {} AS ").format(sql.Identifier(_VIEW)) + sql.SQL(rendered))
        cur.execute(
            "SELECT DISTINCT d.refobjid::regclass::text, coalesce(a.attname, '') FROM pg_depend d "
            "JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class t ON t.oid = d.refobjid AND t.relpersistence <> 't' "
            "LEFT JOIN pg_attribute a "
            "ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid AND d.refobjsubid > 0 "
            "WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass "
            "AND r.ev_class = %s::regclass AND d.refobjid <> r.ev_class",
            (f"pg_temp.{_VIEW}",),
        )
        columns |= set(cur.fetchall())
        cur.execute(_FUNCTIONS, (f"pg_temp.{_VIEW}",))
        columns |= {(table, "") for (function,) in cur.fetchall() for table in FUNCTION_READS.get(function, ())}
        cur.execute("ROLLBACK TO SAVEPOINT governance_roles")
    return columns


def auditor_grants(cur: cursor, policy: Policy) -> set[Grant]:
    grants = {Grant("database", "", "CREATE")} | _evidence_writer(cur) | _hold_reader()
    stores = _store_tables(policy)  # personal data, also in the governance schema (RET-9): by column
    for table, column in predicate_columns(cur, policy):
        if table.startswith(f"{GOVERNANCE}.") and table not in stores:
            grants.add(Grant("table", table, "SELECT"))
        elif column:
            grants.add(Grant("column", table, "SELECT", column))
        else:
            grants.add(Grant("table", table, "SELECT"))
    for category in policy.categories:  # the object-store check joins the listing to the rows
        for store in category.stores:
            if store.objects is not None:
                for column in (store.key, store.objects.bucket_column, store.objects.key_column):
                    grants.add(Grant("column", store.table, "SELECT", column))
    return grants


def reviewer_grants() -> set[Grant]:
    return {
        Grant("table", f"{GOVERNANCE}.evidence", "SELECT"),
        Grant("table", f"{GOVERNANCE}.evidence_head", "SELECT"),
        Grant("table", f"{GOVERNANCE}.audit_history", "SELECT"),
        Grant("function", f"{GOVERNANCE}.verify_evidence", "EXECUTE"),
        Grant("function", f"{GOVERNANCE}.evidence_payload", "EXECUTE"),
    }


def desired_grants(cur: cursor, policy: Policy) -> Duties:
    """Every role's grants (with USAGE on the schemas they reach) and the sweeper's tables."""
    names = policy.roles
    sweeper, owned = sweeper_grants(cur, policy)
    wanted = {
        names.sweeper: sweeper,
        names.auditor: auditor_grants(cur, policy),
        names.request_worker: request_worker_grants(cur, policy),
        names.reviewer: reviewer_grants(),
    }
    duties = Duties(owned={names.sweeper: owned})
    for role, grants in wanted.items():
        duties.grants[role] = grants | _schemas(grants)
    return duties
