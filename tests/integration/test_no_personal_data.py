"""No personal data leaves the shop's tables (CONTRIBUTING.md habit 6; RET-9: copies count too).

A small synthetic shop is seeded (governance_dev.loader) and every e-mail address, name, street, phone
number and IP address in it is collected before anything is removed. Then the real DAGs run
through Airflow's own ``dag.test()``: ``retention_audit`` (finds overdue records and fails, so its
failure message and alert are produced), ``retention_sweep``, and ``retention_audit`` again; then
data-subject requests for seeded people are opened and verified with ``governance request``,
``subject_requests`` answers the verified one (its export and the link mailed to the person), and
``request_deadlines`` reports one due within 7 days and one late to on-call and compliance; an
account deletion (RET-7: the account kept and marked deleted, the rest erased) is answered by
``subject_requests`` too, queueing its recipients' notices (TP-5). The CLI commands people use are
run too. None of the collected values may appear in:

- anything printed or logged (captured stdout/stderr at file-descriptor level, the log records,
  and every task log file under ``$AIRFLOW_HOME/logs``);
- the Airflow metadata database: every column of every row of every table (XComs, rendered
  fields, task instances, events, ...) for these DAGs (tests may read it; tasks may not);
- the e-mails sent (a real SMTP server): the notifier's failure alerts, which carry the exception
  messages, the deadline alert, and the subject and text of the download-link mail (whose envelope
  and To header are the only places the person's own address may be);
- the evidence log (``governance.evidence``: counts and details as text) and the legal holds'
  evidence; the recipients outbox (``governance.recipient_outbox``, every column as text) and what
  an erasure keeps for its notices (``governance.erasure_recipient_names``);
- the output of ``governance audit``, ``plan --json``, ``evidence show --json``, ``evidence
  verify``, ``hold list --all`` and ``request open|verify|extend|withdraw|list|show``.

The test's own mail server (aiosmtpd, logger ``mail.log``) would log each envelope it receives,
the person's address included: that is the receiving side, not ours, so its logger is silenced.

The scan is case-insensitive and on trimmed values. A value of 3 characters or fewer (a short
first name such as "Ola") is skipped, to avoid false positives; everything longer is searched for
verbatim. Names (letters only) must stand as a word ("Hans" is found in "Hans Berg", not in
"orphans"); values with a digit or an "@" (e-mail, phone, IP, street and number) are found
anywhere, even inside a longer string.
"""

from __future__ import annotations

import email
import logging
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAGS = ("retention_audit", "retention_sweep", "subject_requests", "request_deadlines")
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RECEIVING_MAIL_SERVER = "mail.log"  # aiosmtpd's logger: the test's mail server, not the platform
SHORTEST_SCANNED = 4  # values of 3 characters or fewer are skipped (see the module docstring)


def _wait_for_dags() -> None:
    missing = [name for name in DAGS if not (ROOT / "dags" / f"{name}.py").is_file()]
    if missing:
        pytest.skip(f"waiting for {', '.join(f'dags/{m}.py' for m in missing)}")


def _ours(text: str) -> str:
    """Captured output without the test's own mail server's lines: Airflow's structured logging
    prints them (``[mail.log]``) even with that logger disabled; they are the receiving side."""
    return "\n".join(line for line in text.splitlines() if f"[{RECEIVING_MAIL_SERVER}]" not in line)


def _needles(values: set[str]) -> set[str]:
    return {v.strip().lower() for v in values if len(v.strip()) >= SHORTEST_SCANNED}


def _load_dags() -> dict:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}, bag.import_errors
    dags = {name: bag.get_dag(name) for name in DAGS}
    for dag_object in dags.values():
        # A failure here should fail fast, not wait out the production retry backoff (minutes).
        for task_object in dag_object.tasks:
            task_object.retries = 0
        # Airflow 3.3.2's dag.test() keeps a DAG's deadline alerts as dicts (the DAG processor turns
        # them into ids when it writes the DAG), so a successful run of a DAG with a DeadlineAlert
        # crashes in DagRun.update_state ("'dict' object has no attribute 'hex'"). The deadline
        # e-mail carries run and DAG ids only; it is not what this test is about.
        dag_object.deadline = None
    return dags


def _metadata_rows(airflow_home: Path) -> list[tuple[str, str]]:
    """(table.column, text) for every non-empty value of every table, these DAGs' rows only where a
    table has a dag_id. Tests may read the metadata DB; tasks never do."""
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{airflow_home / 'airflow.db'}")
    found: list[tuple[str, str]] = []
    try:
        with engine.connect() as db:
            inspector = sa.inspect(db)
            for table in inspector.get_table_names():
                columns = [c["name"] for c in inspector.get_columns(table)]
                query = sa.select(*(sa.column(c) for c in columns)).select_from(sa.table(table))
                if "dag_id" in columns:
                    query = query.where(sa.column("dag_id").in_(DAGS))
                for row in db.execute(query):
                    for column, value in zip(columns, row, strict=True):
                        if value is None:
                            continue
                        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
                        found.append((f"metadata {table}.{column}", text))
    finally:
        engine.dispose()
    return found


def _mail_text(message: email.message.Message) -> str:
    parts = [str(message["Subject"])]
    for part in message.walk():
        if part.get_content_maintype() == "text":
            parts.append(part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8", "replace"))
    return "\n".join(parts)


def _matchers(needles: set[str]) -> list[tuple[str, re.Pattern]]:
    """One pattern per kind of value. Names (letters only) must stand as words: 'Hans' is a name,
    'orphans' is not a leak of it. Anything with a digit or an '@' (e-mail addresses, phone numbers,
    IP addresses, streets with their house number) is searched for as a plain substring."""
    words = sorted((n for n in needles if re.fullmatch(r"[^\W\d_]+(?:[ '.-][^\W\d_]+)*", n)), key=len, reverse=True)
    others = sorted(needles - set(words), key=len, reverse=True)
    patterns = []
    if words:
        patterns.append(("name", re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, words)) + r")(?!\w)")))
    if others:
        patterns.append(("value", re.compile("|".join(map(re.escape, others)))))
    return patterns


def _leaks(sources: list[tuple[str, str]], needles: set[str]) -> list[str]:
    matchers = _matchers(needles)
    leaks = []
    for where, text in sources:
        lowered = text.lower()
        for kind, pattern in matchers:
            for hit in pattern.finditer(lowered):
                start, end = hit.span()
                leaks.append(f"{where}: {kind} {hit.group(0)!r} in ...{text[max(0, start - 60) : end + 20]!r}...")
    return leaks


def test_a_full_run_leaks_no_personal_data(
    airflow_home, airflow_connections, s3, smtp_inbox, monkeypatch, capfd, caplog
):
    _wait_for_dags()
    monkeypatch.setattr(logging.getLogger(RECEIVING_MAIL_SERVER), "disabled", True)  # see the module docstring
    monkeypatch.setenv(  # TP-5: the account deletion's notices name the person by keyed pseudonyms
        "AIRFLOW_CONN_GOVERNANCE_RECIPIENT_PSEUDONYM",
        '{"conn_type": "generic", "password": "leak-test-recipient-pseudonym-key-0123456789"}',
    )
    from governance.cli import main
    from governance.db import connect
    from governance.policy import load_policy
    from governance_dev.loader import personal_values, seed

    db_url, s3_url = airflow_connections["db_url"], airflow_connections["s3_url"]
    monkeypatch.setenv("GOVERNANCE_DB_URL", db_url)
    monkeypatch.setenv("GOVERNANCE_S3_ENDPOINT_URL", s3_url)
    policy = load_policy()
    conn = connect(db_url)
    try:
        report = seed(conn, s3, policy, NOW, customers=100, seed=42)
        needles = _needles(personal_values(conn))  # before anything is swept
    finally:
        conn.close()
    assert sum(report.expected_overdue.values()) > 0, "the seeded shop must have something to sweep"
    kinds = {
        "e-mail": any("@" in n for n in needles),
        "phone": any(n.startswith("+47") for n in needles),
        "ip": any(n.count(".") == 3 and n.replace(".", "").isdigit() for n in needles),
    }
    assert all(kinds.values()) and len(needles) > 200, kinds

    sources: list[tuple[str, str]] = []

    def captured(label: str) -> str:
        out = capfd.readouterr()
        sources.extend([(f"{label} stdout", _ours(out.out)), (f"{label} stderr", _ours(out.err))])
        return out.out

    dags = _load_dags()
    captured("loading the DAGs")

    before = dags["retention_audit"].test(logical_date=NOW)
    captured("retention_audit before the sweep")
    assert before.state == "failed", "the seeded shop has overdue records: the audit must fail"

    swept = dags["retention_sweep"].test(logical_date=NOW)
    captured("retention_sweep")
    assert swept.state == "success"

    after = dags["retention_audit"].test(logical_date=NOW)
    captured("retention_audit after the sweep")
    assert after.state == "success", "after the sweep nothing may be overdue"

    common = ["--db-url", db_url, "--s3-endpoint-url", s3_url, "--now", NOW.isoformat()]
    for command in (
        ["audit", *common],
        ["audit", *common, "--json"],
        ["plan", *common, "--json"],
        ["plan", *common],
        ["evidence", "show", *common, "--json"],
        ["evidence", "show", *common],
        ["evidence", "verify", *common],
        ["hold", "list", *common, "--all"],
        ["hold", "list", *common, "--json"],
    ):
        code = main(command)
        captured(f"governance {' '.join(command[:2])}")
        assert code == 0, f"governance {' '.join(command)} exited {code}"

    answered = _answer_requests(dags, common, db_url, s3, captured)

    conn = connect(db_url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT kind, run_id, rule_id, counts, counts::text, details::text FROM governance.evidence "
                "ORDER BY entry_id"
            )
            evidence = cur.fetchall()
    finally:
        conn.close()
    # The runs really happened: every rule swept, and the audit after the sweep found nothing.
    swept_rules = {rule for kind, run, rule, *_ in evidence if kind == "sweep_rule" and run.endswith(swept.run_id)}
    assert swept_rules == {rule.id for rule in policy.rules}
    audited_after = {
        rule: counts["overdue"]
        for kind, run, rule, counts, *_ in evidence
        if kind == "audit_rule" and run.endswith(after.run_id)
    }
    assert {rule.id for rule in policy.rules} <= set(audited_after)
    assert audited_after and not any(audited_after.values()), audited_after
    sources += [
        (f"evidence {kind} {run} {rule}", f"{counts_text} {details}")
        for kind, run, rule, _, counts_text, details in evidence
    ]
    sources += _notice_rows(db_url)

    sources += [(f"log record {r.name}", r.getMessage()) for r in caplog.records]
    sources += [(f"log record {r.name} exception", str(r.exc_info[1])) for r in caplog.records if r.exc_info]
    log_files = [p for p in Path(os.environ["AIRFLOW_HOME"], "logs").rglob("*") if p.is_file()]
    sources += [(f"log file {p}", p.read_text(errors="replace")) for p in log_files]
    metadata = _metadata_rows(airflow_home)
    assert any(where.startswith("metadata xcom.") for where, _ in metadata), "the runs must have pushed XComs"
    sources += metadata
    assert smtp_inbox, "the failed audit must have alerted on-call"
    sources += [(f"e-mail {m['Subject']}", _mail_text(m)) for m in smtp_inbox]

    # The scan sees what the tasks printed and logged, not just what the test itself did.
    seen = "\n".join(text for where, text in sources if not where.startswith(("metadata", "evidence", "e-mail")))
    assert f"retention audit retention_audit/{after.run_id} as of" in seen  # the audit task's table
    assert "sweep_stage_1" in seen and "anonymised" in seen  # the sweep tasks' logs and results
    assert f"request {answered} answered" in seen and "requests reported" in seen  # the request DAGs' logs
    kinds = {kind for kind, *_ in evidence}
    assert {"request_export_written", "request_export_delivered", "request_deadline_alert"} <= kinds
    assert {"account_deleted", "erasure_checked", "notices_queued"} <= kinds  # RET-7, ERA-1, TP-5
    assert any(where.startswith("outbox") for where, _ in sources), "the account deletion must queue notices"

    leaks = _leaks(sources, needles)
    assert not leaks, f"{len(leaks)} personal value(s) leaked:\n" + "\n".join(leaks[:30])


def _notice_rows(db_url: str) -> list[tuple[str, str]]:
    """Every outbox row and every recorded recipient name, as text (TP-5)."""
    from governance.db import connect

    conn = connect(db_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT notice_id, row_to_json(o)::text FROM governance.recipient_outbox o ORDER BY 1")
            rows = [(f"outbox {notice_id}", text) for notice_id, text in cur.fetchall()]
            cur.execute("SELECT request_id, row_to_json(n)::text FROM governance.erasure_recipient_names n")
            rows += [(f"erasure_recipient_names {request_id}", text) for request_id, text in cur.fetchall()]
    finally:
        conn.close()
    return rows


def _answer_requests(dags: dict, common: list[str], db_url: str, s3, captured) -> int:
    """Open requests for seeded people with the CLI, verify one and answer it through subject_requests,
    then let request_deadlines report the two left open (one due within 7 days, one late). Returns
    the id of the answered request."""
    from governance.cli import main
    from governance.db import connect
    from governance.objectstore import ensure_bucket
    from governance.policy import load_policy

    ensure_bucket(s3, load_policy().object_store.exports_bucket)
    conn = connect(db_url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT a.email FROM shop.accounts a ORDER BY (SELECT count(*) FROM shop.uploads u "
                "WHERE u.account_id = a.account_id) DESC, a.account_id LIMIT 4"
            )
            people = [row[0] for row in cur.fetchall()]
        conn.rollback()
    finally:
        conn.close()
    assert len(people) == 4, "the swept shop still has account holders"
    deleting = people.pop()
    opened = []
    for person, kind, received in zip(
        people,
        ("access", "portability", "erasure"),
        (NOW, NOW - timedelta(days=25), NOW - timedelta(days=40)),
        strict=True,
    ):
        command = [
            "request",
            "open",
            *common,
            "--kind",
            kind,
            "--email",
            person,
            "--channel",
            "email",
            "--by",
            "support",
        ]
        assert main([*command, "--received-at", received.isoformat()]) == 0
        opened.append(int(re.search(r"request (\d+) opened", captured("governance request open")).group(1)))
    answered, *_ = opened
    for command in (
        ["request", "verify", str(answered), *common, "--by", "support", "--method", "id_document"],
        ["request", "extend", str(answered), *common, "--months", "1", "--reason", "many photo books to collect"],
        ["request", "list", *common],
        ["request", "list", *common, "--json"],
        ["request", "show", str(answered), *common],
        ["request", "show", str(opened[2]), *common, "--json"],
    ):
        code = main(command)
        captured(f"governance {' '.join(command[:2])}")
        assert code == 0, f"governance {' '.join(command)} exited {code}"

    deletion = ["request", "open", *common, "--kind", "account_deletion", "--email", deleting, "--channel", "web_form"]
    deletion += [
        "--by",
        "web",
        "--keep",
        "CAT-2",
        *(w for c in ("CAT-3", "CAT-4", "CAT-5", "CAT-6") for w in ("--delete", c)),
    ]
    assert main(deletion) == 0
    deleted = int(re.search(r"request (\d+) opened", captured("governance request open")).group(1))
    verify = ["request", "verify", str(deleted), *common, "--by", "web", "--method", "signed_in_account"]
    assert main(verify) == 0
    captured("governance request verify")

    run = dags["subject_requests"].test(logical_date=NOW, run_conf={"request_id": None})
    captured("subject_requests")
    assert run.state == "success"
    alerts = dags["request_deadlines"].test(logical_date=NOW)  # the portability one is due in 3 days
    captured("request_deadlines")
    assert alerts.state == "success"
    withdrawn = ["request", "withdraw", str(opened[2]), *common, "--by", "support"]
    assert main(withdrawn) == 0
    captured("governance request withdraw")
    return answered


def test_the_scan_finds_what_it_must_and_only_that():
    needles = _needles(
        {"Hans", "Ola", " Kari.Berg@Example.no ", "+47 412 15 934", "10.20.30.4", "Fjordveien 17", "Anne-Lise Berg"}
    )
    assert "ola" not in needles  # 3 characters or fewer: skipped
    text = "HANS; an e-mail kari.berg@example.no, ip 10.20.30.45, +47 412 15 934, fjordveien 17b, dear anne-lise berg"
    found = {leak.split(": ", 1)[1].split(" in ")[0] for leak in _leaks([("t", text)], needles)}
    assert found == {
        "name 'hans'",
        "value 'kari.berg@example.no'",
        "value '10.20.30.4'",
        "value '+47 412 15 934'",
        "value 'fjordveien 17'",
        "name 'anne-lise berg'",
    }
    assert _leaks([("t", "orphans: 0, hansen, johans, 110.20.30.5")], needles) == []
