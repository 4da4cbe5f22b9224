"""No personal data leaves the shop's tables (CONTRIBUTING.md habit 6; RET-9: copies count too).

A small synthetic shop is seeded (governance_dev.loader) and every e-mail address, name, street, phone
number and IP address in it is collected before anything is removed. Then the real DAGs run
through Airflow's own ``dag.test()``: ``retention_audit`` (finds overdue records and fails, so its
failure message and alert are produced), ``retention_sweep``, and ``retention_audit`` again; then
data-subject requests for seeded people are opened and verified with ``governance request``,
``subject_requests`` answers the verified one (its export and the link mailed to the person), and
``request_deadlines`` reports one due within 7 days and one late to on-call and compliance; an
account deletion (RET-7: the account kept and marked deleted, the rest erased) is answered by
``subject_requests`` too, queueing its recipients' notices (TP-5); then the seeded account
holders consent to advertising audiences and ``advertising_audience`` tells them (TP-3) and, for
those told long enough ago, writes the audience file (TP-1). The CLI commands people use are run
too. None of the collected values may appear in:

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
  verify``, ``hold list --all``, ``request open|verify|extend|withdraw|list|show|lift`` and
  ``processing list`` (a restriction and an objection are answered by ``subject_requests`` too,
  RES-1, OBJ-1; the restriction then lifted);
- the recipients' outbox (TP-5 notices) and the processing register, every column as text.

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
DAGS = (
    "retention_audit",
    "retention_sweep",
    "subject_requests",
    "request_deadlines",
    "advertising_audience",
    "compliance_report",
)
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RECEIVING_MAIL_SERVER = "mail.log"  # aiosmtpd's logger: the test's mail server, not the platform
SHORTEST_SCANNED = 4  # values of 3 characters or fewer are skipped (see the module docstring)


def _wait_for_dags() -> None:
    missing = [name for name in DAGS if not (ROOT / "dags" / f"{name}.py").is_file()]
    if missing:
        pytest.skip(f"waiting for {', '.join(f'dags/{m}.py' for m in missing)}")


def _ours(output: str) -> str:
    """Captured output without the receiving mail server's lines: Airflow's structured logging
    prints them under ``[mail.log]`` although that logger is disabled (see the module docstring)."""
    return "\n".join(line for line in output.splitlines() if f"[{RECEIVING_MAIL_SERVER}]" not in line)


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


def _metadata_rows(airflow_home: Path, dags: tuple[str, ...] = DAGS) -> list[tuple[str, str]]:
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
                    query = query.where(sa.column("dag_id").in_(dags))
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
    # See the module docstring. A filter, not only ``disabled``: Airflow's logging set-up during
    # dag.test() re-enables existing loggers (dictConfig), a filter survives it.
    receiving = logging.getLogger(RECEIVING_MAIL_SERVER)
    monkeypatch.setattr(receiving, "disabled", True)
    monkeypatch.setattr(receiving, "filters", [lambda record: False])
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
    monkeypatch.setenv("GOVERNANCE_RECIPIENT_PSEUDONYM_KEY", "leak-test-key-0123456789abcdef0123")  # TP-5 notices
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
        text, errors = _ours(out.out), _ours(out.err)
        sources.extend([(f"{label} stdout", text), (f"{label} stderr", errors)])
        return text

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
        ["erasure", "replay", *common, "--since", (NOW - timedelta(days=1)).isoformat(), "--dry-run"],  # ERA-1
        ["erasure", "replay", *common, "--since", (NOW - timedelta(days=1)).isoformat(), "--json"],
    ):
        code = main(command)
        captured(f"governance {' '.join(command[:2])}")
        assert code == 0, f"governance {' '.join(command)} exited {code}"

    answered = _answer_requests(dags, common, db_url, s3, captured)
    audience_size = _advertise(dags, db_url, s3, captured)
    reports = _report(dags, db_url, s3_url, s3, captured)

    conn = connect(db_url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT kind, run_id, rule_id, counts, counts::text, details::text FROM governance.evidence "
                "ORDER BY entry_id"
            )
            evidence = cur.fetchall()
            for table in ("recipient_outbox", "processing_register"):  # TP-5; RES-1, OBJ-1
                cur.execute(f"SELECT row_to_json(t)::text FROM governance.{table} t")
                sources += [(f"{table} row", text) for (text,) in cur.fetchall()]
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
    assert "erased-persons-left" in seen and "completed-requests-notified" in seen  # its rights checks (#11)
    assert "sweep_stage_1" in seen and "anonymised" in seen  # the sweep tasks' logs and results
    assert f"request {answered} answered" in seen and "requests reported" in seen  # the request DAGs' logs
    assert f"'persons': {audience_size}" in seen  # the advertising_audience DAG's logs
    assert "report of" in seen and len(reports) == 4  # the compliance_report DAG's log, its objects, the CLI's
    sources += reports
    kinds = {kind for kind, *_ in evidence}
    assert {"request_export_written", "request_export_delivered", "request_deadline_alert"} <= kinds
    assert {"audience_notified", "audience_exported"} <= kinds
    assert {"account_deleted", "erasure_checked", "notices_queued"} <= kinds  # RET-7, ERA-1, TP-5
    assert any(where.startswith("outbox") for where, _ in sources), "the account deletion must queue notices"
    # TP-5, RET-3: the sweep told the recipients of the orders it anonymised (notify.retention_ended)
    assert any(where.startswith("outbox") and '"retention_ended"' in text for where, text in sources)

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
            # nobody under a person hold (RET-8): the account deletion below must be able to mark its account
            cur.execute(
                "SELECT a.email FROM shop.accounts a WHERE NOT EXISTS (SELECT 1 FROM governance.legal_holds h "
                "WHERE h.scope = 'person' AND h.lifted_at IS NULL AND (h.account_id = a.account_id "
                "OR h.email_sha256 = encode(sha256(convert_to(lower(btrim(a.email)), 'UTF8')), 'hex'))) "
                "ORDER BY (SELECT count(*) FROM shop.uploads u WHERE u.account_id = a.account_id) DESC, a.account_id LIMIT 6"
            )
            people = [row[0] for row in cur.fetchall()]
        conn.rollback()
    finally:
        conn.close()
    assert len(people) == 6, "the swept shop still has account holders"
    deleting = people.pop()
    opened = []
    for person, kind, received in zip(
        people,
        ("access", "portability", "erasure", "restriction", "objection"),
        (NOW, NOW - timedelta(days=25), NOW - timedelta(days=40), NOW, NOW),
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
    restricted, objected = opened[3:]
    for command in (
        ["request", "verify", str(answered), *common, "--by", "support", "--method", "id_document"],
        ["request", "verify", str(restricted), *common, "--by", "support", "--method", "id_document"],
        ["request", "verify", str(objected), *common, "--by", "support", "--method", "signed_in_account"],
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
    for command in (  # RES-1, OBJ-1: what the DAG switched off, and lifting the restriction
        ["request", "show", str(restricted), *common],
        ["request", "show", str(objected), *common, "--json"],
        ["processing", "list", *common],
        ["processing", "list", *common, "--json"],
        ["request", "lift", str(restricted), *common, "--by", "dpo", "--reason", "accuracy verified"],
        ["processing", "list", *common, "--all"],
    ):
        code = main(command)
        out = captured(f"governance {' '.join(command[:2])}")
        assert code == 0, f"governance {' '.join(command)} exited {code}"
        assert "lift" not in command or "restriction lifted" in out
    alerts = dags["request_deadlines"].test(logical_date=NOW)  # the portability one is due in 3 days
    captured("request_deadlines")
    assert alerts.state == "success"
    withdrawn = ["request", "withdraw", str(opened[2]), *common, "--by", "support"]
    assert main(withdrawn) == 0
    captured("governance request withdraw")
    return answered


def _advertise(dags: dict, db_url: str, s3, captured) -> int:
    """Every live account holder consents to advertising audiences; the first run of
    advertising_audience tells them, half of the notices are then backdated past notice_days, and
    the second run exports those. Returns how many persons the file lists."""
    from governance.db import connect
    from governance.objectstore import ensure_bucket
    from governance.policy import load_policy

    audience = load_policy().audiences[0]
    ensure_bucket(s3, audience.drop.bucket)
    conn = connect(db_url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "INSERT INTO shop.marketing_consents (account_id, purpose, given_at) SELECT account_id, %s, %s "
                "FROM shop.accounts WHERE deleted_at IS NULL",
                (audience.purpose, NOW - timedelta(days=30)),
            )
        conn.commit()
        told = dags["advertising_audience"].test(logical_date=NOW)
        captured("advertising_audience, notices")
        assert told.state == "success"
        with conn.cursor() as cur:
            cur.execute(
                "UPDATE governance.audience_notices SET notified_at = notified_at - %s WHERE account_id %% 2 = 0 "
                "RETURNING account_id",
                (timedelta(days=audience.notice_days + 1),),
            )
            backdated = cur.rowcount
        conn.commit()
    finally:
        conn.close()
    exported = dags["advertising_audience"].test(logical_date=NOW + timedelta(hours=1))
    captured("advertising_audience, export")
    assert exported.state == "success" and backdated > 0
    return backdated


def _report(dags: dict, db_url: str, s3_url: str, s3, captured) -> list[tuple[str, str]]:
    """The period report (#13): the compliance_report DAG's objects in the reports bucket and the
    CLI's HTML and JSON of today (when this test's sweeps and audits were recorded)."""
    from governance.cli import main
    from governance.compliance.publish import day_keys
    from governance.objectstore import ensure_bucket
    from governance.policy import load_policy

    bucket = load_policy().object_store.reports_bucket
    ensure_bucket(s3, bucket)
    run = dags["compliance_report"].test(logical_date=NOW)
    captured("compliance_report")
    assert run.state == "success"
    found = [
        (f"report object {key}", s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode())
        for key in day_keys((NOW - timedelta(days=1)).date()).values()
    ]
    today = datetime.now(UTC).date().isoformat()
    for fmt in ("json", "html"):
        code = main(
            ["report", "--db-url", db_url, "--s3-endpoint-url", s3_url, "--from", today, "--to", today, "--format", fmt]
        )
        text = captured(f"governance report --format {fmt}")
        assert code == 0 and "visit-data" in text
        found.append((f"governance report --format {fmt}", text))
    return found


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


def test_recipient_notices_leak_no_personal_data(
    airflow_home, airflow_connections, s3, smtp_inbox, monkeypatch, capfd, caplog, tmp_path
):
    """TP-2, TP-5 (#12): a seeded person's orders rectified (a new street, itself personal data) and
    the notices delivered by the recipient_notices DAG to a webhook (with a JWE to the carrier's
    key), an e-mail recipient and an object-store drop; then the notices and recipients commands.
    No address, name, street or the new value in clear in any payload body (the webhook bodies, the
    e-mail, the dropped object), log, XCom or metadata row, evidence entry or command output."""
    import copy
    import json

    import yaml
    from joserfc.jwk import RSAKey

    from governance import requests
    from governance.cli import main
    from governance.db import connect
    from governance.notices import PSEUDONYM_KEY_ENV
    from governance.policy import DEFAULT_POLICY_PATH, load_policy
    from governance.requests.rectification import rectify
    from governance_dev.loader import personal_values, seed
    from tests.integration.notice_support import Receiver, acks, new_secret

    monkeypatch.setattr(logging.getLogger(RECEIVING_MAIL_SERVER), "disabled", True)
    db_url = airflow_connections["db_url"]
    secret = new_secret()
    receiver = Receiver(acks, expect_secret=secret).start()
    data = copy.deepcopy(yaml.safe_load(DEFAULT_POLICY_PATH.read_text()))
    notify = {
        "delivery-carrier": {
            "webhook": {"url": receiver.url, "signing_secret_conn": "carrier_hook"},
            "encryption_key_conn": "carrier_jwk",
        },
        "voucher-network": {"email": {"to": "privacy@vouchers.example"}},
        "financial-partner": {"drop": {"bucket": "partner-finance-drop", "prefix": "gdpr/"}},
    }
    # the recipients the purposes and audiences name stay as they are (the policy refuses a name not in the registry)
    named = {r for p in data["purposes"] for r in p.get("recipients", [])} | {a["recipient"] for a in data["audiences"]}
    assert not named & set(notify)
    data["recipients"] = [
        {**r, "notify": notify[r["id"]]} if r["id"] in notify else r
        for r in data["recipients"]
        if r["id"] in notify or r["id"] in named
    ]
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    monkeypatch.setenv("GOVERNANCE_POLICY", str(path))
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "leak-test-key-0123456789abcdef0123456789")
    monkeypatch.setenv("AIRFLOW_CONN_CARRIER_HOOK", json.dumps({"conn_type": "generic", "password": secret}))
    public = RSAKey.generate_key(2048).as_dict(private=False)
    monkeypatch.setenv("AIRFLOW_CONN_CARRIER_JWK", json.dumps({"conn_type": "generic", "password": json.dumps(public)}))
    s3.create_bucket(Bucket="partner-finance-drop", CreateBucketConfiguration={"LocationConstraint": "eu-north-1"})
    policy = load_policy(path)
    new_street = "Leakcheckveien 4242"
    conn = connect(db_url)
    try:
        seed(conn, s3, policy, NOW, customers=100, seed=7, objects=False)
        with conn.cursor() as cur:
            cur.execute("SELECT email FROM shop.orders WHERE account_id IS NOT NULL ORDER BY order_id LIMIT 1")
            (person,) = cur.fetchone()
        conn.rollback()
        request = requests.open_request(
            conn, policy, kind="rectification", email=person, channel="email", opened_by="support", now=NOW
        )
        requests.verify(conn, policy, request.request_id, verified_by="support", method="id_document", now=NOW)
        needles = _needles(personal_values(conn) | {new_street})  # before the correction: the old street too
        rectify(conn, policy, request.request_id, corrections={"shop.orders": {"delivery_street": new_street}}, now=NOW)
    finally:
        conn.close()

    sources: list[tuple[str, str]] = []
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(ROOT / "dags")).get_dag("recipient_notices")
    run = dag.test(logical_date=NOW + timedelta(minutes=5))
    assert run.state == "success"
    receiver.stop()
    common = ["--db-url", db_url, "--now", NOW.isoformat()]
    for command in (
        ["notices", "list", *common],
        ["notices", "list", *common, "--json"],
        ["notices", "show", "1", *common, "--json"],
        ["recipients", "list", *common, "--json"],
        ["recipients", "list", *common, "--csv"],
    ):
        assert main(command) == 0, command
    out = capfd.readouterr()
    sources += [("stdout", out.out), ("stderr", out.err)]
    assert "notices delivered" in out.out + out.err

    bodies = [r.body.decode() for r in receiver.received]
    assert bodies and all(r.verified for r in receiver.received)
    assert any("corrected_values_jwe" in b for b in bodies), "the carrier's rectification notice carries a JWE"
    sources += [("webhook body", b) for b in bodies]
    listed = s3.list_objects_v2(Bucket="partner-finance-drop").get("Contents", [])
    assert listed, "the drop recipient's notices are in its bucket"
    sources += [(f"drop {o['Key']}", s3.get_object(Bucket="partner-finance-drop", Key=o["Key"])["Body"].read().decode())
                for o in listed]  # fmt: skip
    assert smtp_inbox, "the e-mail recipient got its notice"
    sources += [(f"e-mail {m['Subject']}", _mail_text(m)) for m in smtp_inbox]
    conn = connect(db_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT kind, counts::text || details::text FROM governance.evidence ORDER BY entry_id")
            sources += [(f"evidence {k}", t) for k, t in cur.fetchall()]
            cur.execute("SELECT row_to_json(o)::text FROM governance.recipient_outbox o")
            sources += [("outbox row", t) for (t,) in cur.fetchall()]
    finally:
        conn.close()
    sources += [(f"log record {r.name}", r.getMessage()) for r in caplog.records]
    log_files = [p for p in Path(os.environ["AIRFLOW_HOME"], "logs").rglob("*") if p.is_file()]
    sources += [(f"log file {p}", p.read_text(errors="replace")) for p in log_files]
    sources += _metadata_rows(airflow_home, ("recipient_notices",))
    assert any(w.startswith("metadata xcom.") for w, _ in sources), "the run must have pushed XComs"

    leaks = _leaks(sources, needles)
    assert not leaks, f"{len(leaks)} personal value(s) leaked:\n" + "\n".join(leaks[:30])
