"""Legal holds (RET-8, policy art. 3.4): records the law obliges the company to keep.

A hold suspends deletion of exactly what it names, for as long as it is in force:

- ``person``: every record of an account (``account_id``) and/or of an e-mail address. The address
  itself is never stored: only ``governance.email_pseudonym(email)`` (SHA-256 of the trimmed,
  lower-cased address), and evidence and output show at most its first 12 hex characters.
- ``record``: one record of a table in the policy's data map, by its key.
- ``rule``: every record a retention rule would remove.

Sweeps and the audit read ``governance.holds_at(now)``; this module adds, lists and lifts holds.
Adding and lifting are evidenced (``hold_added`` / ``hold_lifted``) in the same transaction as the
change itself (CONTRIBUTING.md habit 5), and a mistake in the input is refused with a message that
names what to fix — never echoing an e-mail address back (habit 6).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

from psycopg2 import errors as pg_errors
from psycopg2 import sql
from psycopg2.extensions import connection, cursor

from governance import evidence
from governance.db import ident, transaction
from governance.errors import HoldError as HoldError  # re-exported: callers catch it from here
from governance.policy import Policy
from governance.windows import as_utc, iso

SCOPES = ("person", "record", "rule")
REQUIREMENTS = ["RET-8"]
PSEUDONYM_SHOWN = 12  # hex characters of an e-mail pseudonym that output and evidence may show
_EMAIL_SHAPE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class Hold:
    hold_id: int
    scope: str
    rule_id: str | None
    table_name: str | None
    record_key: str | None
    account_id: int | None
    email_sha256: str | None
    reason: str
    set_by: str
    set_at: datetime
    ends_at: datetime | None
    lifted_at: datetime | None
    lifted_by: str | None

    @property
    def email_pseudonym_prefix(self) -> str | None:
        return self.email_sha256[:PSEUDONYM_SHOWN] if self.email_sha256 else None

    def status(self, now: datetime) -> str:
        """'active', 'lifted', 'ended' or 'pending' (set after ``now``), as governance.holds_at decides."""
        now = as_utc(now)
        if self.lifted_at is not None and self.lifted_at <= now:
            return "lifted"
        if self.ends_at is not None and self.ends_at <= now:
            return "ended"
        if self.set_at > now:
            return "pending"
        return "active"

    def target(self) -> str:
        """What the hold keeps, in words fit for output and evidence (no e-mail address)."""
        if self.scope == "rule":
            return f"rule {self.rule_id}"
        if self.scope == "record":
            return f"{self.table_name} {self.record_key}"
        parts = []
        if self.account_id is not None:
            parts.append(f"account {self.account_id}")
        if self.email_sha256:
            parts.append(f"e-mail pseudonym {self.email_pseudonym_prefix}")
        return "person: " + ", ".join(parts)

    def to_dict(self, now: datetime | None = None) -> dict[str, Any]:
        """JSON-ready; the e-mail pseudonym is shortened to its first 12 hex characters."""
        data = asdict(self)
        data.pop("email_sha256")
        data["email_sha256_prefix"] = self.email_pseudonym_prefix
        for key in ("set_at", "ends_at", "lifted_at"):
            data[key] = None if data[key] is None else iso(data[key])
        if now is not None:
            data["status"] = self.status(now)
        return data


# governance.legal_holds' columns, named and ordered as Hold's fields.
HOLD_COLUMNS = sql.SQL(", ").join(sql.Identifier(field.name) for field in fields(Hold))


def _returned_hold(cur: cursor) -> Hold:
    """The hold a statement ``RETURNING`` the hold's columns returned."""
    row = cur.fetchone()
    if row is None:  # pragma: no cover - INSERT/UPDATE ... RETURNING of a row that exists
        raise RuntimeError("the statement returned no hold")
    return Hold(*row)


def _first(cur: cursor) -> Any:
    """The first column of the one row a scalar query returns."""
    row = cur.fetchone()
    if row is None:  # pragma: no cover - SELECT of an expression always yields a row
        raise RuntimeError("the query returned no row")
    return row[0]


# --- validation -------------------------------------------------------------------------------


def _text(value: str | None, flag: str, what: str) -> str:
    if value is None or not value.strip():
        raise HoldError(f"missing {what}: give {flag} TEXT")
    return value.strip()


def _valid_rule(policy: Policy, rule_id: str | None) -> str:
    valid = ", ".join(r.id for r in policy.rules)
    if not rule_id:
        raise HoldError(f"--scope rule needs --rule R; rules of policy {policy.policy.name}: {valid}")
    if rule_id not in {r.id for r in policy.rules}:
        raise HoldError(f"unknown rule {rule_id!r}; rules of policy {policy.policy.name}: {valid}")
    return rule_id


def _data_map_tables(policy: Policy) -> list[str]:
    return [store.table for category in policy.categories for store in category.stores]


def _existing_record_key(cur: cursor, policy: Policy, table: str | None, key: str | int | None) -> tuple[str, str]:
    """The table and the record's key as the database spells it (what holds_at compares with)."""
    if not table or key is None or not str(key).strip():
        raise HoldError("--scope record needs --table SCHEMA.TABLE and --key KEY (the record's primary key)")
    tables = _data_map_tables(policy)
    if table not in tables:
        raise HoldError(
            f"table {table!r} is not in the data map of policy {policy.policy.name}; tables: {', '.join(tables)}"
        )
    store = policy.store(table)
    if store.person is None and store.links and table not in policy.rules_by_table:
        # A linked record (an order line) goes with the record it links to, and the audit's predicates
        # see holds on that one only: holding it here would keep its parent from the sweep unexplained.
        # A linked store with rules of its own (an export archive, RET-9) is held like any other.
        targets = ", ".join(dict.fromkeys(link.to for link in store.links))
        raise HoldError(f"records of {table} are kept with the record they link to; hold that record in {targets}")
    query = sql.SQL("SELECT {key}::text FROM {table} WHERE {key} = %s LIMIT 1").format(
        key=sql.Identifier(store.key), table=ident(table)
    )
    text = str(key).strip()
    cur.execute("SAVEPOINT hold_key_check")
    try:
        cur.execute(query, (text,))
    except (pg_errors.InvalidTextRepresentation, pg_errors.NumericValueOutOfRange):
        cur.execute("ROLLBACK TO SAVEPOINT hold_key_check")
        raise HoldError(f"{text!r} is not a valid {store.key} for {table}") from None
    row = cur.fetchone()
    cur.execute("RELEASE SAVEPOINT hold_key_check")
    if row is None:
        raise HoldError(
            f"no record with {store.key} {text} in {table}; check the key (a removed record cannot be held)"
        )
    return table, str(row[0])


def _person_tables(policy: Policy, column: str) -> list[tuple[str, str]]:
    """(table, column) of every store in the data map that names its person by ``column``."""
    found = []
    for category in policy.categories:
        for store in category.stores:
            if store.person is not None and getattr(store.person, column):
                found.append((store.table, getattr(store.person, column)))
    return found


def _person_exists(cur: cursor, policy: Policy, *, account_id: int | None, email: str | None) -> bool:
    """Whether any record of the data map names this account or this (normalised) address."""
    checks: list[sql.Composed] = []
    params: list[Any] = []
    # How each kind of person identifier matches a column (an e-mail as RET-3 groups guests).
    matches: list[tuple[str, Any, str]] = [
        ("account_id", account_id, "EXISTS (SELECT 1 FROM {t} WHERE {c} = %s)"),
        ("email", email, "EXISTS (SELECT 1 FROM {t} WHERE lower(btrim({c})) = lower(btrim(%s)))"),
    ]
    for kind, value, template in matches:
        if value is None:
            continue
        for table, column in _person_tables(policy, kind):
            checks.append(sql.SQL(template).format(t=ident(table), c=sql.Identifier(column)))
            params.append(value)
    if not checks:
        return False
    cur.execute(sql.SQL("SELECT ") + sql.SQL(" OR ").join(checks), params)
    return bool(_first(cur))


def _no_extra(scope: str, **given: Any) -> None:
    flags = {
        "account_id": "--account-id",
        "email": "--email",
        "table_name": "--table",
        "record_key": "--key",
        "rule_id": "--rule",
    }
    allowed = {"person": {"account_id", "email"}, "record": {"table_name", "record_key"}, "rule": {"rule_id"}}[scope]
    extra = [flags[name] for name, value in given.items() if value not in (None, "") and name not in allowed]
    if extra:
        raise HoldError(
            f"{', '.join(extra)} cannot be used with --scope {scope}; "
            f"--scope {scope} takes {' / '.join(flags[a] for a in sorted(allowed))}"
        )


def _held_person(cur: cursor, policy: Policy, *, account_id: int | None, email: str | None) -> str | None:
    """Check that a person to hold has records in the data map; their e-mail pseudonym, if given."""
    if account_id is None and not email:
        raise HoldError("--scope person needs --account-id N or --email ADDRESS")
    email_sha256 = None
    if email is not None:
        if not _EMAIL_SHAPE.match(email.strip()):
            raise HoldError("--email is not an e-mail address (expected name@domain.tld)")
        cur.execute("SELECT governance.email_pseudonym(%s)", (email,))
        email_sha256 = str(_first(cur))
    if not _person_exists(cur, policy, account_id=account_id, email=email):
        named = f"account {account_id}" if account_id is not None else "the given e-mail address"
        raise HoldError(
            f"no record in the data map names {named}; check the "
            f"{'--account-id' if account_id is not None else '--email'} "
            "(a person whose data is already gone cannot be held)"
        )
    return email_sha256


# --- adding, lifting, listing --------------------------------------------------------------------


def add_hold(
    conn: connection,
    policy: Policy,
    *,
    scope: str,
    reason: str | None,
    set_by: str | None,
    now: datetime,
    account_id: int | None = None,
    email: str | None = None,
    table_name: str | None = None,
    record_key: str | int | None = None,
    rule_id: str | None = None,
    until: datetime | None = None,
) -> Hold:
    """Validate, insert the hold (set at ``now``) and its ``hold_added`` evidence; commit both together."""
    now = as_utc(now)
    if scope not in SCOPES:
        raise HoldError(f"unknown scope {scope!r}; scopes: {', '.join(SCOPES)}")
    _no_extra(scope, account_id=account_id, email=email, table_name=table_name, record_key=record_key, rule_id=rule_id)
    reason = _text(reason, "--reason", "reason (why the law obliges keeping it, e.g. a court order reference)")
    set_by = _text(set_by, "--set-by", "who sets the hold")
    if until is not None and as_utc(until) <= now:
        raise HoldError(f"--until {iso(until)} is not after now ({iso(now)}); give a future end or none")
    email_sha256 = None
    with transaction(conn) as cur:
        if scope == "rule":
            rule_id = _valid_rule(policy, rule_id)
        elif scope == "record":
            table_name, record_key = _existing_record_key(cur, policy, table_name, record_key)
        else:
            email_sha256 = _held_person(cur, policy, account_id=account_id, email=email)
        cur.execute(
            sql.SQL(
                "INSERT INTO governance.legal_holds (scope, rule_id, table_name, record_key, account_id, "
                "email_sha256, reason, set_by, set_at, ends_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
                "RETURNING {}"
            ).format(HOLD_COLUMNS),
            (scope, rule_id, table_name, record_key, account_id, email_sha256, reason, set_by, now, until),
        )
        hold = _returned_hold(cur)
        record_hold(cur, policy, "hold_added", hold, now, actor=set_by)
    return hold


def lift_hold(conn: connection, policy: Policy, hold_id: int, *, lifted_by: str | None, now: datetime) -> Hold:
    """Lift a hold at ``now``; its ``hold_lifted`` evidence commits with the change. Twice is refused."""
    now = as_utc(now)
    lifted_by = _text(lifted_by, "--by", "who lifts the hold")
    with transaction(conn) as cur:
        cur.execute(
            sql.SQL("SELECT {} FROM governance.legal_holds WHERE hold_id = %s FOR UPDATE").format(HOLD_COLUMNS),
            (hold_id,),
        )
        row = cur.fetchone()
        if row is None:
            raise HoldError(f"no hold {hold_id}; see `governance hold list --all`")
        hold = Hold(*row)
        if hold.lifted_at is not None:
            raise HoldError(
                f"hold {hold_id} was already lifted at {iso(hold.lifted_at)} by {hold.lifted_by}; nothing to do"
            )
        if now < hold.set_at:
            raise HoldError(
                f"hold {hold_id} was set at {iso(hold.set_at)}, after --now {iso(now)}; "
                "a hold cannot be lifted before it was set"
            )
        cur.execute(
            sql.SQL(
                "UPDATE governance.legal_holds SET lifted_at = %s, lifted_by = %s WHERE hold_id = %s RETURNING {}"
            ).format(HOLD_COLUMNS),
            (now, lifted_by, hold_id),
        )
        hold = _returned_hold(cur)
        record_hold(cur, policy, "hold_lifted", hold, now, actor=lifted_by)
    return hold


def list_holds(conn: connection, now: datetime, *, include_all: bool = False) -> list[Hold]:
    """Holds in force at ``now`` (what a sweep at ``now`` respects), or every hold ever set."""
    with conn.cursor() as cur:
        if include_all:
            cur.execute(sql.SQL("SELECT {} FROM governance.legal_holds ORDER BY hold_id").format(HOLD_COLUMNS))
        else:
            cur.execute(
                sql.SQL("SELECT {} FROM governance.holds_at(%s) ORDER BY hold_id").format(HOLD_COLUMNS), (as_utc(now),)
            )
        return [Hold(*row) for row in cur.fetchall()]


def get_hold(conn: connection, hold_id: int) -> Hold | None:
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL("SELECT {} FROM governance.legal_holds WHERE hold_id = %s").format(HOLD_COLUMNS), (hold_id,)
        )
        row = cur.fetchone()
    return None if row is None else Hold(*row)


def record_hold(cur: cursor, policy: Policy, kind: str, hold: Hold, now: datetime, *, actor: str) -> None:
    """The hold's evidence entry (RET-8). The reason is free text that may name people, and evidence
    can never be erased, so only its SHA-256 goes in (it proves the reason in the table was not edited)."""
    details = {
        "hold_id": hold.hold_id,
        "scope": hold.scope,
        "rule_id": hold.rule_id,
        "table_name": hold.table_name,
        "record_key": hold.record_key,
        "account_id": hold.account_id,
        "email_sha256_prefix": hold.email_pseudonym_prefix,
        "set_at": iso(hold.set_at),
        "ends_at": None if hold.ends_at is None else iso(hold.ends_at),
        "lifted_at": None if hold.lifted_at is None else iso(hold.lifted_at),
        "by": actor,
        "reason_sha256": hashlib.sha256(hold.reason.encode("utf-8")).hexdigest(),
    }
    evidence.append(
        cur,
        kind=kind,
        run_id=f"hold-{hold.hold_id}",
        rule_id=hold.rule_id or "",
        requirements=REQUIREMENTS,
        as_of=now,
        policy_version=policy.version,
        counts={"holds_added" if kind == "hold_added" else "holds_lifted": 1},
        details={k: v for k, v in details.items() if v is not None},
    )


def format_holds(holds: list[Hold], now: datetime) -> str:
    """A plain table for people; no e-mail address, pseudonyms shortened."""
    if not holds:
        return "no holds"
    header = ("hold", "status", "target", "set by", "set at", "until", "reason")
    rows = [
        (
            str(h.hold_id),
            h.status(now),
            h.target(),
            h.set_by,
            iso(h.set_at),
            iso(h.ends_at) if h.ends_at else "-",
            h.reason if len(h.reason) <= 60 else h.reason[:57] + "...",
        )
        for h in holds
    ]
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)
