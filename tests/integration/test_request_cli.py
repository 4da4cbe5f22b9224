"""``governance request ...`` end to end on a real PostgreSQL (REQ-1): open, verify, extend, refuse,
withdraw, list and show, their exit codes (a refused request 2, argparse's own 2, a missing
database 4), and no address in anything printed, refusals included."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from governance import evidence
from governance.cli import main

pytestmark = [pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # before the wall clock: the CLI's "now" guard lets it through
AT = ["--now", "2026-11-20T12:00:00Z"]
CONSOLE = "import sys; from governance.cli import main; sys.exit(main())"  # what the console script runs


@pytest.fixture
def person(conn):
    """An account with an address, and the address (which must never be printed)."""
    email = f"Kari.Nordmann.{uuid.uuid4().hex[:8]}@Example.no"
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO shop.accounts (email, password_hash, created_at) VALUES (%s, 'x', %s) RETURNING account_id",
            (email, NOW - timedelta(days=500)),
        )
        (account_id,) = cur.fetchone()
    conn.commit()
    return account_id, email


def run(db_url, capsys, *words: str) -> tuple[int, str, str]:
    code = main(["request", *words, "--db-url", db_url, *AT])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def no_address(email: str, *texts: str) -> None:
    for text in texts:
        assert email.lower() not in text.lower() and "nordmann" not in text.lower()
        assert "@" not in text.replace("name@domain.tld", "")  # the one example the refusal gives


def test_open_verify_extend_show_and_list(db_url, capsys, person, conn):
    account_id, email = person
    code, out, err = run(
        db_url, capsys, "open", "--kind", "access", "--account-id", str(account_id), "--email", email,
        "--channel", "email", "--by", "support:anna", "--received-at", "2026-11-18T08:00:00Z",
    )  # fmt: skip
    assert code == 0, err
    rid = int(out.split()[1])
    assert f"request {rid} opened (access, via email), due 2026-12-18T08:00:00Z, 28 day(s) left" in out
    assert "the subject was found in the data map" in out
    code, out2, _ = run(db_url, capsys, "verify", str(rid), "--by", "support:anna", "--method", "id_document")
    assert code == 0 and f"request {rid} (access) verified: verified, due 2026-12-18T08:00:00Z" in out2
    code, out3, _ = run(db_url, capsys, "extend", str(rid), "--months", "2", "--reason", "archive to search")
    assert code == 0 and "extended: verified, due 2027-02-18T08:00:00Z" in out3
    code, shown, _ = run(db_url, capsys, "show", str(rid), "--json")
    data = json.loads(shown)
    assert (data["request_id"], data["state"], data["extension_months"], data["deadline"]) == (
        rid,
        "verified",
        2,
        "2027-02-18T08:00:00Z",
    )
    assert data["email_sha256_prefix"] is not None and len(data["email_sha256_prefix"]) == 12
    assert data["verification_method"] == "id_document" and data["days_left"] == 90
    code, plain, _ = run(db_url, capsys, "show", str(rid))
    assert code == 0 and "verification_method" in plain and "email_sha256_prefix" in plain
    code, listed, _ = run(db_url, capsys, "list", "--state", "open", "--kind", "access")
    assert code == 0 and listed.splitlines()[0].split()[:3] == ["request", "kind", "state"]
    assert any(line.split()[:3] == [str(rid), "access", "verified"] for line in listed.splitlines())
    code, as_json, _ = run(db_url, capsys, "list", "--json", "--state", "closed")
    assert code == 0 and rid not in [r["request_id"] for r in json.loads(as_json)]
    no_address(email, out, out2, out3, shown, plain, listed, as_json)
    assert evidence.verify(conn).ok


def test_no_data_held_refuse_and_withdraw(db_url, capsys):
    email = f"nobody.{uuid.uuid4().hex[:8]}@example.no"
    code, out, _ = run(
        db_url, capsys, "open", "--kind", "erasure", "--email", email, "--channel", "web_form", "--by", "web"
    )
    assert code == 0 and "no data held" in out
    rid = int(out.split()[1])
    code, refused, _ = run(db_url, capsys, "refuse", str(rid), "--reason", "identity not established", "--by", "dpo")
    assert code == 0 and f"request {rid} (erasure) refused: refused, closed 2026-11-20T12:00:00Z" in refused
    code, again, err = run(db_url, capsys, "withdraw", str(rid), "--by", "support")
    assert code == 2 and again == "" and f"error: request {rid} is refused" in err
    code, out2, _ = run(
        db_url, capsys, "open", "--kind", "objection", "--email", email, "--channel", "post", "--by", "s"
    )
    rid2 = int(out2.split()[1])
    code, withdrawn, _ = run(db_url, capsys, "withdraw", str(rid2), "--by", "support")
    assert code == 0 and "withdrawn: withdrawn" in withdrawn
    no_address(email, out, refused, err, out2, withdrawn)


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["open", "--kind", "access", "--email", "kari.nordmann(at)example.no", "--channel", "email", "--by", "s"],
         "--email is not an e-mail address"),
        (["open", "--kind", "access", "--account-id", "987654321", "--channel", "email", "--by", "s"],
         "give --reply-to ADDRESS"),
        (["verify", "99999999", "--by", "s", "--method", "bankid"], "no request 99999999"),
        (["show", "99999999"], "no request 99999999"),
        (["extend", "99999999", "--months", "1", "--reason", "kari@example.no asked"], "looks like it holds personal"),
    ],
)  # fmt: skip
def test_refusals_exit_2_with_what_to_fix_and_no_address(db_url, capsys, words, message):
    code, out, err = run(db_url, capsys, *words)
    assert (code, out) == (2, "")
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    no_address("kari.nordmann", err)


def test_a_duplicate_exits_2_naming_the_open_request(db_url, capsys, person):
    account_id, email = person
    words = ["open", "--kind", "portability", "--account-id", str(account_id), "--channel", "phone", "--by", "s"]
    code, out, _ = run(db_url, capsys, *words)
    rid = int(out.split()[1])
    code, again, err = run(db_url, capsys, *words[:3], "--email", email, *words[5:])
    assert (code, again) == (2, "")
    assert f"a portability request for this person is already open: request {rid} (received" in err
    no_address(email, err)


@pytest.mark.parametrize(
    ("words", "needle"),
    [
        (["open", "--kind", "deletion", "--channel", "email", "--by", "s"], "invalid choice: 'deletion'"),
        (["open", "--kind", "access", "--channel", "fax", "--by", "s"], "invalid choice: 'fax'"),
        (["verify", "1", "--by", "s", "--method", "passport_scan"], "invalid choice: 'passport_scan'"),
        (["extend", "1", "--months", "3", "--reason", "x"], "invalid choice: 3"),
        (["list", "--state", "pending"], "invalid choice: 'pending'"),
    ],
)
def test_argparse_refuses_a_name_outside_the_choices_listing_them(db_url, capsys, words, needle):
    with pytest.raises(SystemExit) as exited:
        main(["request", *words, "--db-url", db_url, *AT])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and needle in err and "choose from" in err
    if "deletion" in needle:
        assert "account_deletion" in err and "consent_withdrawal" in err


def test_the_console_command_exits_4_when_the_database_is_unreachable():
    done = subprocess.run(
        [sys.executable, "-c", CONSOLE, "request", "list", "--db-url", "postgresql://nobody@127.0.0.1:1/x"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT / "include"), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert done.returncode == 4, done.stderr
    assert done.stderr.startswith("error: database: cannot reach") and "Traceback" not in done.stderr
