"""Legal holds (RET-8, policy art. 3.4) against a real PostgreSQL: adding, lifting, listing,
validation, evidence in the same transaction, and that a hold keeps records out of the audit's
overdue set (the sweeps read the same governance.holds_at)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from governance.cli import main
from governance.holds import HoldError, add_hold, get_hold, lift_hold, list_holds
from governance.policy import SQL_DIR, load_policy

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
POLICY = load_policy()


def _account(conn, email: str, created_at: datetime = datetime(2020, 1, 1, tzinfo=UTC)) -> int:
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO shop.accounts (email, password_hash, first_name, created_at) "
            "VALUES (%s, 'x', 'Test', %s) RETURNING account_id",
            (email, created_at),
        )
        account_id = cur.fetchone()[0]
    conn.commit()
    return account_id


def _order(conn, email: str, placed_at: datetime, account_id: int | None = None) -> int:
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO shop.orders (account_id, email, first_name, total_amount, placed_at) "
            "VALUES (%s, %s, 'Test', 100, %s) RETURNING order_id",
            (account_id, email, placed_at),
        )
        order_id = cur.fetchone()[0]
    conn.commit()
    return order_id


def _evidence_for(conn, hold_id: int) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT kind, rule_id, requirements, counts, details, as_of FROM governance.evidence "
            "WHERE run_id = %s ORDER BY entry_id",
            (f"hold-{hold_id}",),
        )
        return cur.fetchall()


def _overdue_orders(conn, now: datetime) -> set[int]:
    """The audit's own predicate for order-records (include/sql/audit/order_records.sql)."""
    params = {f"window__{r.id.replace('-', '_')}": POLICY.window(r).iso for r in POLICY.rules}
    params["now"] = now
    with conn.cursor() as cur:
        cur.execute((SQL_DIR / "audit" / "order_records.sql").read_text(), params)
        return {record_id for _rule, record_id, _seconds, held in cur.fetchall() if not held}


def test_person_hold_by_email_stores_only_the_pseudonym_and_is_evidenced(conn):
    email = "Ingrid.Holm@Example.no"
    order_id = _order(conn, email.lower(), datetime(2021, 1, 10, tzinfo=UTC))
    hold = add_hold(
        conn, POLICY, scope="person", email=f"  {email} ", reason="Court order 2026-17", set_by="legal@shop", now=NOW
    )

    with conn.cursor() as cur:
        cur.execute("SELECT governance.email_pseudonym(%s)", (email,))
        pseudonym = cur.fetchone()[0]
        cur.execute("SELECT row_to_json(h)::text FROM governance.legal_holds h WHERE hold_id = %s", (hold.hold_id,))
        stored = cur.fetchone()[0]
    assert hold.email_sha256 == pseudonym
    assert email.lower() not in stored.lower()
    assert hold.set_at == NOW and hold.ends_at is None and hold.status(NOW) == "active"

    [(kind, rule_id, requirements, counts, details, as_of)] = _evidence_for(conn, hold.hold_id)
    assert (kind, rule_id, requirements, as_of) == ("hold_added", "", ["RET-8"], NOW)
    assert counts == {"holds_added": 1}
    assert details["hold_id"] == hold.hold_id and details["scope"] == "person"
    assert details["email_sha256_prefix"] == pseudonym[:12]
    text = json.dumps([counts, details]).lower()
    assert pseudonym not in text, "evidence shows at most 12 hex characters of the pseudonym"
    assert "ingrid" not in text and "holm" not in text and "court order" not in text

    # The hold keeps the person's expired order out of the audit (and so out of the sweep).
    assert order_id not in _overdue_orders(conn, NOW)


def test_hold_is_decided_at_the_runs_now_and_lifting_is_evidenced(conn):
    order_id = _order(conn, "guest.lift@example.no", datetime(2021, 2, 1, tzinfo=UTC))
    assert order_id in _overdue_orders(conn, NOW)
    hold = add_hold(
        conn,
        POLICY,
        scope="record",
        table_name="shop.orders",
        record_key=f" {order_id} ",
        reason="bookkeeping audit",
        set_by="finance",
        now=NOW,
    )
    assert hold.record_key == str(order_id)
    assert order_id not in _overdue_orders(conn, NOW)
    assert hold.hold_id in {h.hold_id for h in list_holds(conn, NOW)}

    lifted_at = NOW + timedelta(days=3)
    lifted = lift_hold(conn, POLICY, hold.hold_id, lifted_by="finance", now=lifted_at)
    assert lifted.lifted_at == lifted_at and lifted.lifted_by == "finance"
    # RET-10: a rerun of a run whose "now" was before the lift still respects the hold.
    assert order_id not in _overdue_orders(conn, NOW + timedelta(days=1))
    assert order_id in _overdue_orders(conn, lifted_at)
    assert hold.hold_id not in {h.hold_id for h in list_holds(conn, lifted_at)}
    assert get_hold(conn, hold.hold_id).status(lifted_at) == "lifted"

    kinds = [row[0] for row in _evidence_for(conn, hold.hold_id)]
    assert kinds == ["hold_added", "hold_lifted"]
    lifted_details = _evidence_for(conn, hold.hold_id)[1][4]
    assert lifted_details["table_name"] == "shop.orders" and lifted_details["record_key"] == str(order_id)
    assert lifted_details["by"] == "finance"

    with pytest.raises(HoldError, match=rf"hold {hold.hold_id} was already lifted at .* by finance"):
        lift_hold(conn, POLICY, hold.hold_id, lifted_by="finance", now=lifted_at + timedelta(hours=1))
    assert [row[0] for row in _evidence_for(conn, hold.hold_id)] == ["hold_added", "hold_lifted"]


def test_rule_hold_with_until_ends_by_itself(conn):
    # A time of its own: a rule hold would keep every other test's orders too.
    start = datetime(2027, 6, 1, tzinfo=UTC)
    until = start + timedelta(days=30)
    hold = add_hold(
        conn,
        POLICY,
        scope="rule",
        rule_id="order-records",
        reason="tax inspection",
        set_by="legal",
        now=start,
        until=until,
    )
    order_id = _order(conn, "rule.hold@example.no", datetime(2021, 3, 1, tzinfo=UTC))
    assert order_id in _overdue_orders(conn, start - timedelta(seconds=1))
    assert order_id not in _overdue_orders(conn, start)
    assert order_id not in _overdue_orders(conn, until - timedelta(seconds=1))
    assert order_id in _overdue_orders(conn, until)  # ends_at is exclusive, like a window's boundary
    assert hold.status(until) == "ended"
    assert hold.hold_id not in {h.hold_id for h in list_holds(conn, until)}
    assert hold.hold_id in {h.hold_id for h in list_holds(conn, until, include_all=True)}
    [(kind, rule_id, *_rest)] = _evidence_for(conn, hold.hold_id)
    assert (kind, rule_id) == ("hold_added", "order-records")
    lift_hold(conn, POLICY, hold.hold_id, lifted_by="legal", now=start + timedelta(days=1))


def test_person_hold_by_account(conn):
    account_id = _account(conn, "acct.hold@example.no")
    order_id = _order(conn, "acct.hold@example.no", datetime(2021, 4, 1, tzinfo=UTC), account_id)
    assert order_id in _overdue_orders(conn, NOW)
    hold = add_hold(conn, POLICY, scope="person", account_id=account_id, reason="dispute", set_by="legal", now=NOW)
    assert order_id not in _overdue_orders(conn, NOW)
    assert hold.target() == f"person: account {account_id}"
    assert _evidence_for(conn, hold.hold_id)[0][4]["account_id"] == account_id


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scope": "rule", "rule_id": "no-such-rule"}, r"unknown rule 'no-such-rule'; rules of policy .*visit-data"),
        ({"scope": "rule"}, r"--scope rule needs --rule R; rules of policy .*order-records"),
        (
            {"scope": "record", "table_name": "shop.order_line_uploads", "record_key": "1"},
            r"table 'shop.order_line_uploads' is not in the data map .*; tables: shop.visits",
        ),
        (
            {"scope": "record", "table_name": "shop.order_lines", "record_key": "1"},
            r"records of shop.order_lines are kept with the record they link to; hold that record in shop.orders$",
        ),
        (
            {"scope": "record", "table_name": "shop.orders", "record_key": "987654321"},
            r"no record with order_id 987654321 in shop.orders",
        ),
        ({"scope": "record", "table_name": "shop.orders", "record_key": "abc"}, r"'abc' is not a valid order_id"),
        ({"scope": "record", "table_name": "shop.orders"}, r"needs --table SCHEMA.TABLE and --key KEY"),
        ({"scope": "person"}, r"--scope person needs --account-id N or --email ADDRESS"),
        ({"scope": "person", "account_id": 987654321}, r"no record in the data map names account 987654321"),
        (
            {"scope": "person", "email": "unknown.person@example.no"},
            r"no record in the data map names the given e-mail address; check the --email",
        ),
        ({"scope": "person", "email": "not-an-address"}, r"--email is not an e-mail address"),
        ({"scope": "rule", "rule_id": "visit-data", "reason": "  "}, r"missing reason .*give --reason TEXT"),
        ({"scope": "rule", "rule_id": "visit-data", "reason": None}, r"missing reason"),
        ({"scope": "rule", "rule_id": "visit-data", "set_by": ""}, r"missing who sets the hold: give --set-by"),
        (
            {"scope": "rule", "rule_id": "visit-data", "until": NOW - timedelta(days=1)},
            r"--until 2026-02-28T12:00:00Z is not after now \(2026-03-01T12:00:00Z\)",
        ),
        ({"scope": "rule", "rule_id": "visit-data", "until": NOW}, r"is not after now"),
        ({"scope": "rule", "rule_id": "visit-data", "account_id": 1}, r"--account-id cannot be used with --scope rule"),
        ({"scope": "everything"}, r"unknown scope 'everything'; scopes: person, record, rule"),
    ],
)
def test_invalid_holds_are_refused_with_what_to_fix(conn, kwargs, message):
    args = {"reason": "court order", "set_by": "legal", "now": NOW, **kwargs}
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM governance.legal_holds")
        before = cur.fetchone()[0]
    with pytest.raises(HoldError, match=message) as excinfo:
        add_hold(conn, POLICY, **args)
    if kwargs.get("email"):
        assert kwargs["email"] not in str(excinfo.value)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM governance.legal_holds")
        assert cur.fetchone()[0] == before


def test_lift_errors(conn):
    with pytest.raises(HoldError, match=r"no hold 987654321; see `governance hold list --all`"):
        lift_hold(conn, POLICY, 987654321, lifted_by="legal", now=NOW)
    hold = add_hold(conn, POLICY, scope="rule", rule_id="visit-data", reason="incident", set_by="legal", now=NOW)
    with pytest.raises(HoldError, match=r"missing who lifts the hold: give --by"):
        lift_hold(conn, POLICY, hold.hold_id, lifted_by=" ", now=NOW)
    with pytest.raises(HoldError, match=r"cannot be lifted before it was set"):
        lift_hold(conn, POLICY, hold.hold_id, lifted_by="legal", now=NOW - timedelta(hours=1))
    assert get_hold(conn, hold.hold_id).lifted_at is None
    lift_hold(conn, POLICY, hold.hold_id, lifted_by="legal", now=NOW)


def test_hold_and_its_evidence_commit_together(conn):
    """CONTRIBUTING.md habit 5: if the evidence cannot be written, the hold is not added either."""
    with conn.cursor() as cur:
        cur.execute("""
            CREATE OR REPLACE FUNCTION public.refuse_evidence() RETURNS trigger LANGUAGE plpgsql AS
            $$ BEGIN RAISE EXCEPTION 'evidence refused by test'; END $$;
            CREATE TRIGGER refuse_evidence BEFORE INSERT ON governance.evidence
                FOR EACH ROW EXECUTE FUNCTION public.refuse_evidence();
        """)
        cur.execute("SELECT count(*) FROM governance.legal_holds")
        before = cur.fetchone()[0]
    conn.commit()
    try:
        with pytest.raises(Exception, match="evidence refused by test"):
            add_hold(conn, POLICY, scope="rule", rule_id="visit-data", reason="incident", set_by="legal", now=NOW)
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM governance.legal_holds")
            assert cur.fetchone()[0] == before
    finally:
        with conn.cursor() as cur:
            cur.execute("DROP TRIGGER refuse_evidence ON governance.evidence; DROP FUNCTION public.refuse_evidence()")
        conn.commit()


def test_cli_add_list_lift_never_echoes_the_email(conn, db_url, capsys):
    email = "Solveig.Berg@Example.no"
    _order(conn, email, datetime(2021, 5, 1, tzinfo=UTC))
    base = ["--db-url", db_url, "--now", "2026-03-01T12:00:00Z"]

    assert (
        main(
            [
                "hold",
                "add",
                *base,
                "--scope",
                "person",
                "--email",
                email,
                "--reason",
                "court order 99",
                "--set-by",
                "legal",
            ]
        )
        == 0
    )
    out = capsys.readouterr()
    assert "added: person: e-mail pseudonym " in out.out and "(evidenced)" in out.out
    hold_id = int(out.out.split()[1])

    assert main(["hold", "list", *base, "--json"]) == 0
    listed = {h["hold_id"]: h for h in json.loads(capsys.readouterr().out)}
    assert listed[hold_id]["status"] == "active" and len(listed[hold_id]["email_sha256_prefix"]) == 12
    assert "email_sha256" not in listed[hold_id]

    assert (
        main(
            [
                "hold",
                "add",
                *base,
                "--scope",
                "person",
                "--email",
                "someone.else@example.no",
                "--reason",
                "x",
                "--set-by",
                "legal",
            ]
        )
        == 2
    )
    out = capsys.readouterr()
    assert "no record in the data map names the given e-mail address" in out.err

    assert main(["hold", "add", *base, "--scope", "rule", "--rule", "nope", "--set-by", "legal", "--reason", "x"]) == 2
    assert "unknown rule 'nope'" in capsys.readouterr().err

    assert main(["hold", "add", *base, "--scope", "rule", "--rule", "visit-data", "--set-by", "legal"]) == 2
    assert "missing reason" in capsys.readouterr().err

    assert (
        main(
            [
                "hold",
                "add",
                *base,
                "--scope",
                "rule",
                "--rule",
                "visit-data",
                "--set-by",
                "legal",
                "--reason",
                "x",
                "--until",
                "2026-01-01T00:00:00Z",
            ]
        )
        == 2
    )
    assert "is not after now" in capsys.readouterr().err

    assert main(["hold", "lift", *base, str(hold_id), "--by", "legal"]) == 0
    assert f"hold {hold_id} lifted" in capsys.readouterr().out
    assert main(["hold", "lift", *base, str(hold_id), "--by", "legal"]) == 2
    assert "already lifted" in capsys.readouterr().err

    assert main(["hold", "list", *base]) == 0
    assert f"\n{hold_id} " not in capsys.readouterr().out
    assert main(["hold", "list", *base, "--all"]) == 0
    table = capsys.readouterr().out
    assert any(line.startswith(f"{hold_id} ") and " lifted " in line for line in table.splitlines())

    with pytest.raises(SystemExit):
        main(
            [
                "hold",
                "add",
                *base,
                "--scope",
                "person",
                "--email",
                email,
                "--account-id",
                "1",
                "--reason",
                "x",
                "--set-by",
                "legal",
            ]
        )
    err = capsys.readouterr().err
    assert "not allowed with argument" in err

    everything = json.dumps([h for h in listed.values()]) + table + out.out + out.err + err
    assert email.lower() not in everything.lower()
    assert "solveig" not in everything.lower()


@pytest.mark.parametrize(
    "email",
    [
        "  Ingrid.Holm@Example.no ",
        "ØRJAN.ÆRØ@EKSEMPEL.NO",
        "\tkari@example.no",
        "ola@example.no\n",
        "\u00a0per@example.no",
        "  \t mixed@Example.NO \t ",
        "plain@example.no",
    ],
)
def test_the_python_oracle_normalises_addresses_exactly_as_the_sql(conn, email):
    """RET-10: the reference (governance_dev.reference) and the SQL (lower(btrim(..)), email_pseudonym)
    must agree on what one person's address is, whitespace other than spaces included."""
    from governance_dev.reference import email_pseudonym, normalise_email

    with conn.cursor() as cur:
        cur.execute("SELECT lower(btrim(%s)), governance.email_pseudonym(%s)", (email, email))
        normalised, pseudonym = cur.fetchone()
    conn.rollback()
    assert normalise_email(email) == normalised
    assert email_pseudonym(email) == pseudonym
