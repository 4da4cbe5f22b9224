"""Make each duty's role hold exactly its grants (SEC-4): create, grant, revoke, own; idempotent.

The current privileges are read from the catalog (``aclexplode`` of the database, schemas,
relations, columns and functions in this database); what is wanted and missing is granted, what
is granted and no longer wanted is revoked. A second run changes nothing. Identifiers go through
``psycopg2.sql.Identifier``; privilege words come from this package, never from input.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from psycopg2 import sql
from psycopg2.extensions import connection, cursor

from governance.db import ident, transaction
from governance.errors import SettingsError
from governance.policy import Policy
from governance.roles.plan import GOVERNANCE, Grant, desired_grants

ROLES_LOCK_KEY = 0x60FE_0004  # pg_advisory_xact_lock: one roles apply at a time
# Functions no one may call unless granted (PUBLIC may EXECUTE any function by default).
PRIVATE_FUNCTIONS = ("append_evidence", "ensure_hourly_partitions")

_CURRENT = """
SELECT 'database', '', a.privilege_type, '' FROM pg_database d, aclexplode(d.datacl) a
 WHERE d.datname = current_database() AND a.grantee = %(role)s::regrole
UNION ALL
SELECT 'schema', n.nspname, a.privilege_type, '' FROM pg_namespace n, aclexplode(n.nspacl) a
 WHERE a.grantee = %(role)s::regrole AND a.grantee <> n.nspowner
UNION ALL
SELECT CASE WHEN c.relkind = 'S' THEN 'sequence' ELSE 'table' END, c.oid::regclass::text, a.privilege_type, ''
  FROM pg_class c, aclexplode(c.relacl) a WHERE a.grantee = %(role)s::regrole AND a.grantee <> c.relowner
UNION ALL
SELECT 'column', c.oid::regclass::text, a.privilege_type, t.attname
  FROM pg_attribute t JOIN pg_class c ON c.oid = t.attrelid, aclexplode(t.attacl) a
 WHERE a.grantee = %(role)s::regrole AND a.grantee <> c.relowner AND NOT t.attisdropped
UNION ALL
SELECT 'function', n.nspname || '.' || p.proname, a.privilege_type, ''
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace, aclexplode(p.proacl) a
 WHERE a.grantee = %(role)s::regrole AND a.grantee <> p.proowner
"""


@dataclass
class RoleChanges:
    """What one apply did, per role: roles created, grants and revokes, tables given."""

    created: list[str] = field(default_factory=list)
    granted: dict[str, list[str]] = field(default_factory=dict)
    revoked: dict[str, list[str]] = field(default_factory=dict)
    owned: dict[str, list[str]] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.created or any(self.granted.values()) or any(self.revoked.values()) or self.owned)


def current_grants(cur: cursor, role: str) -> set[Grant]:
    cur.execute(_CURRENT, {"role": role})
    return {Grant(kind, target, privilege, column) for kind, target, privilege, column in cur.fetchall()}


def _object(cur: cursor, grant: Grant) -> sql.Composable:
    """The SQL object of a grant: TABLE x, SCHEMA x, DATABASE x, FUNCTION x(args)."""
    if grant.kind == "database":
        cur.execute("SELECT current_database()")
        row = cur.fetchone()
        return sql.SQL("DATABASE {}").format(sql.Identifier(row[0] if row else ""))
    if grant.kind == "schema":
        return sql.SQL("SCHEMA {}").format(sql.Identifier(grant.target))
    schema, name = grant.target.split(".", 1)
    if grant.kind == "function":
        cur.execute(
            "SELECT pg_get_function_identity_arguments(p.oid) FROM pg_proc p JOIN pg_namespace n "
            "ON n.oid = p.pronamespace WHERE n.nspname = %s AND p.proname = %s",
            (schema, name),
        )
        signatures = [row[0] for row in cur.fetchall()]
        if len(signatures) != 1:
            raise SettingsError(f"function {grant.target} is missing or overloaded; run 'governance policy check'")
        return sql.SQL("FUNCTION {}({})").format(sql.Identifier(schema, name), sql.SQL(signatures[0]))
    word = "SEQUENCE" if grant.kind == "sequence" else "TABLE"
    return sql.SQL(word + " {}").format(sql.Identifier(schema, name))


def _statement(cur: cursor, verb: str, grant: Grant, role: str) -> sql.Composable:
    privilege: sql.Composable = sql.SQL(grant.privilege)  # this package's own words (SELECT, USAGE, ...)
    if grant.column:
        privilege = sql.SQL("{} ({})").format(privilege, sql.Identifier(grant.column))
    direction = "TO" if verb == "GRANT" else "FROM"
    return sql.SQL(verb + " {} ON {} " + direction + " {}").format(privilege, _object(cur, grant), sql.Identifier(role))


def _ensure_role(cur: cursor, role: str) -> bool:
    """Create the NOLOGIN group role when missing; True when created. An existing role that can
    log in is refused: a duty's role is a group, its members log in."""
    cur.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (role,))
    row = cur.fetchone()
    if row is None:
        cur.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
        return True
    if row[0]:
        raise SettingsError(
            f"role {role} exists and can log in; a duty's role must be a NOLOGIN group: rename it in the "
            "policy's 'roles:' section or ALTER ROLE it NOLOGIN (docs/runbook.md, 'Roles')"
        )
    return False


def _own(cur: cursor, role: str, tables: set[str]) -> list[str]:
    """Give ``role`` the partitioned tables and their partitions (dropping one needs ownership)."""
    cur.execute(
        "SELECT p.relid::regclass::text FROM unnest(%s::text[]) t, pg_partition_tree(t::regclass) p "
        "JOIN pg_class c ON c.oid = p.relid WHERE c.relowner <> %s::regrole ORDER BY 1",
        (sorted(tables), role),
    )
    names = [name for (name,) in cur.fetchall()]
    for name in names:
        cur.execute(sql.SQL("ALTER TABLE {} OWNER TO {}").format(ident(name), sql.Identifier(role)))
    return names


def apply_roles(conn: connection, policy: Policy) -> RoleChanges:
    """Create the policy's roles and make their privileges exactly what their duties need."""
    changes = RoleChanges()
    with transaction(conn) as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (ROLES_LOCK_KEY,))
        for name in PRIVATE_FUNCTIONS:
            function = _object(cur, Grant("function", f"{GOVERNANCE}.{name}", "EXECUTE"))
            cur.execute(sql.SQL("REVOKE EXECUTE ON {} FROM PUBLIC").format(function))
        names = policy.roles
        for role in (names.sweeper, names.auditor, names.request_worker, names.reviewer):
            if _ensure_role(cur, role):
                changes.created.append(role)
        duties = desired_grants(cur, policy)
        for role, wanted in duties.grants.items():
            owned = duties.owned.get(role, set())  # an owner holds every privilege on its tables already
            wanted = {g for g in wanted if not (g.kind in ("table", "column") and g.target in owned)}
            have = current_grants(cur, role)
            for grant in sorted(wanted - have):
                cur.execute(_statement(cur, "GRANT", grant, role))
            for grant in sorted(have - wanted):
                cur.execute(_statement(cur, "REVOKE", grant, role))
            changes.granted[role] = [g.describe() for g in sorted(wanted - have)]
            changes.revoked[role] = [g.describe() for g in sorted(have - wanted)]
        for role, tables in duties.owned.items():
            given = _own(cur, role, tables)
            if given:
                changes.owned[role] = given
    return changes
