"""`make demo`: a small shop, audited and swept by Airflow itself, on embedded defaults.

Steps, each printed with the command it runs:

1. services: PostgreSQL (embedded pgserver unless GOVERNANCE_DB_URL is set), an S3 endpoint (moto
   server unless GOVERNANCE_S3_ENDPOINT_URL is set), an SMTP sink, Airflow home .airflow (SQLite);
2. seed: ``governance seed`` writes a small shop whose data is partly past its windows;
3. audit: ``airflow dags test retention_audit`` fails on purpose (records are overdue) and e-mails
   on-call; the per-rule table is read back from the evidence view ``governance.audit_history``;
4. plan: ``governance plan``, what a sweep would do, changing nothing;
5. sweep: ``airflow dags test retention_sweep`` removes what is overdue, except what a legal hold
   keeps; the per-rule effects are read back from the sweep's evidence;
6. audit again: nothing overdue, held records kept;
7. a data-subject request: ``governance request open`` and ``verify`` an access request for a
   seeded account, ``airflow dags test subject_requests`` answers it; where the export is (bucket,
   key, size, SHA-256) and what it holds (its files and records per table), never the person's data;
8. an erasure (ERA-1): ``governance request open --kind erasure`` and ``verify`` for another seeded
   account, the person's records counted per table before, ``airflow dags test subject_requests``
   erases them (RET-8: order records anonymised, held records kept), the counts after, the
   independent check's result and the evidence entries' kinds and counts, never an address;
9. evidence: the hash chain verifies.

The seed and the first audit stand at one instant, the plan, the sweep and the second audit at
one a minute later, the requests half a minute after that: "now" is fixed per run (RET-10) and each
Airflow run has a run id of its own.
A step whose piece is not part of this build (no sweep DAG yet, say) is skipped with a note; the
demo fails only when a step that exists does not do what it should. Full logs: .local/demo/.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import devservices  # noqa: E402  (a sibling script, not a package)

ROOT = devservices.ROOT
LOG_DIR = devservices.LOCAL / "demo"
CUSTOMERS = int(os.environ.get("DEMO_CUSTOMERS", "200"))
# A DAG run that takes longer is waiting for a retry (minutes of backoff): stop and show the log.
DAG_TIMEOUT = float(os.environ.get("DEMO_DAG_TIMEOUT", "600"))
BOLD, DIM, RESET = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")


class DemoFailed(SystemExit):
    pass


# --- presentation ------------------------------------------------------------------------------


def heading(number: int | str, text: str) -> None:
    print(f"\n{BOLD}{number}. {text}{RESET}", flush=True)


def note(text: str) -> None:
    print(f"   {text}", flush=True)


def table(headers: list[str], rows: list[list[Any]], right: set[int] | None = None) -> None:
    right = right if right is not None else set(range(1, len(headers)))
    cells = [[str(c) for c in headers]] + [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "   " + "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )

    print(line(cells[0]))
    print("   " + "  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print(line(row))
    sys.stdout.flush()


def duration(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    from governance.audit import human_duration

    return human_duration(seconds)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- running things ----------------------------------------------------------------------------


def run(
    name: str, argv: list[str], env: dict[str, str], *, show_output: bool = False, timeout: float | None = None
) -> subprocess.CompletedProcess:
    """Run a command with the services' environment; its output goes to .local/demo/<name>.log as it runs."""
    shown = " ".join(Path(argv[0]).name if i == 0 else a for i, a in enumerate(argv))
    print(f"   {DIM}$ {shown}{RESET}", flush=True)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / f"{name}.log"
    started = time.monotonic()
    with log_path.open("w") as log:
        log.write(f"$ {' '.join(argv)}\n\n")
        log.flush()
        try:
            code = subprocess.run(
                argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=timeout
            ).returncode
        except subprocess.TimeoutExpired:
            raise DemoFailed(
                f"`{shown}` did not finish within {timeout:.0f} s (a task waiting for a retry?); see {log_path}"
            ) from None
    output = log_path.read_text()
    result = subprocess.CompletedProcess(argv, code, stdout=output.split("\n\n", 1)[1], stderr="")
    result.seconds = time.monotonic() - started  # type: ignore[attr-defined]
    result.log = log_path.relative_to(ROOT)  # type: ignore[attr-defined]
    if show_output and result.stdout.strip():
        for text in result.stdout.rstrip().splitlines():
            print(f"   {text}")
    return result


def tail(result: subprocess.CompletedProcess, lines: int = 25) -> str:
    text = result.stdout.strip().splitlines()
    return "\n".join("   | " + t for t in text[-lines:])


def governance_cli() -> str:
    return devservices.venv_bin("governance")


def cli_has(command: str, env: dict[str, str]) -> bool:
    """Is ``governance <command>`` part of this build?"""
    result = subprocess.run([governance_cli(), command, "--help"], env=env, capture_output=True, text=True)
    return result.returncode == 0


def json_list(output: str) -> list[Any] | None:
    """The JSON list an Airflow CLI command printed (``-o json``), among its log lines."""
    for line in reversed(output.splitlines()):
        if line.startswith("["):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, list):
                return value
    return None


def airflow_dags(env: dict[str, str]) -> tuple[set[str], dict[str, str]]:
    """The DAG ids parsed from dags/ now (not the metadata database's copy), and import errors."""
    airflow = devservices.venv_bin("airflow")
    listed = run("airflow-dags-list", [airflow, "dags", "list", "--local", "-o", "json"], env)
    dag_ids = {d.get("dag_id") for d in json_list(listed.stdout) or [] if isinstance(d, dict)}
    problems = subprocess.run(
        [airflow, "dags", "list-import-errors", "--local", "-o", "json"], env=env, capture_output=True, text=True
    )
    errors = {}
    for item in json_list(problems.stdout) or []:
        if isinstance(item, dict):
            lines = str(item.get("error", "")).strip().splitlines()
            errors[str(item.get("filepath", "?"))] = lines[-1] if lines else "?"
    return dag_ids - {None}, errors


# --- what the database says ----------------------------------------------------------------------


class Shop:
    """Read-only queries the demo prints: evidence entries after a watermark, holds in force."""

    def __init__(self, db_url: str):
        from governance.db import connect

        self.conn = connect(db_url, application_name="governance-demo")
        self.conn.autocommit = True

    def query(self, text: str, params: tuple = ()) -> list[tuple]:
        with self.conn.cursor() as cur:
            cur.execute(text, params)
            return cur.fetchall() if cur.description else []

    def evidence_watermark(self) -> int:
        rows = self.query("SELECT coalesce(max(entry_id), 0) FROM governance.evidence")
        return int(rows[0][0])

    def audit_rows(self, after: int) -> list[tuple]:
        """The newest audit run's per-rule rows among the entries after ``after``."""
        return self.query(
            """
            WITH latest AS (
                SELECT run_id FROM governance.evidence
                WHERE kind = 'audit_rule' AND entry_id > %s ORDER BY entry_id DESC LIMIT 1)
            SELECT e.rule_id, array_to_string(e.requirements, ', '),
                   (e.counts ->> 'overdue')::bigint, (e.counts ->> 'oldest_overdue_seconds')::bigint,
                   (e.counts ->> 'held')::bigint, e.run_id, e.as_of
            FROM governance.evidence e JOIN latest USING (run_id)
            WHERE e.kind = 'audit_rule' ORDER BY e.entry_id
            """,
            (after,),
        )

    def effect_rows(self, after: int) -> list[tuple]:
        """Every non-audit evidence entry after ``after``: (kind, rule_id, step, counts, run_id)."""
        return self.query(
            "SELECT kind, rule_id, step, counts, run_id FROM governance.evidence "
            "WHERE entry_id > %s AND kind NOT IN ('audit_rule', 'audit') ORDER BY entry_id",
            (after,),
        )

    def holds_in_force(self, now: datetime) -> int:
        return int(self.query("SELECT count(*) FROM governance.holds_at(%s)", (now,))[0][0])

    def verify_evidence(self) -> tuple[int, int]:
        entries = int(self.query("SELECT count(*) FROM governance.evidence")[0][0])
        problems = len(self.query("SELECT * FROM governance.verify_evidence()"))
        return entries, problems


def print_audit(rows: list[tuple]) -> int:
    table(
        ["rule", "requirements", "overdue", "oldest overdue by", "held"],
        [[r[0], r[1], r[2], duration(r[3]) if r[2] else "-", r[4]] for r in rows],
        right={2, 3, 4},
    )
    total = sum(r[2] or 0 for r in rows)
    held = sum(r[4] or 0 for r in rows)
    note(f"total overdue: {total}; past the window but kept by a legal hold: {held}")
    return total


EFFECT_COLUMNS = [
    "deleted",
    "anonymised",
    "tombstoned",
    "objects_deleted",
    "objects_purged",
    "partitions_dropped",
    "held",
]


def print_effects(rows: list[tuple]) -> None:
    """One line per rule: its summary entry when the sweep wrote one, else the sum of its batches."""
    batches: dict[str, dict[str, int]] = {}
    summaries: dict[str, dict[str, int]] = {}
    for _kind, rule_id, step, counts, _run in rows:
        if not rule_id:
            continue
        numbers = {
            key: int(value)
            for key, value in (counts or {}).items()
            if isinstance(value, int | float) and not isinstance(value, bool) and "seconds" not in key
        }
        if step == "summary":
            summaries[rule_id] = numbers
        else:
            sums = batches.setdefault(rule_id, {})
            for key, value in numbers.items():
                sums[key] = sums.get(key, 0) + value
    per_rule = {rule: summaries.get(rule, batches.get(rule, {})) for rule in [*summaries, *batches]}
    if not per_rule:
        note("the sweep recorded no per-rule evidence")
        return
    from governance.policy import load_policy

    order = {rule.id: i for i, rule in enumerate(load_policy(os.environ.get("GOVERNANCE_POLICY") or None).rules)}
    seen = {key for sums in per_rule.values() for key in sums}
    columns = [c for c in EFFECT_COLUMNS if c in seen] + sorted(seen - set(EFFECT_COLUMNS))
    table(
        ["rule", *columns],
        [
            [rule, *(per_rule[rule].get(c, 0) for c in columns)]
            for rule in sorted(per_rule, key=lambda r: order.get(r, 99))
        ],
    )


def mails() -> list[Path]:
    new = devservices.MAIL_DIR / "new"
    return sorted(new.iterdir()) if new.exists() else []


def mail_subject(path: Path) -> str:
    import email

    with path.open("rb") as handle:
        return str(email.message_from_binary_file(handle).get("Subject", "")).replace("\n", " ")


# --- the steps -----------------------------------------------------------------------------------


def task_states(dag_id: str, logical_date: datetime, env: dict[str, str]) -> list[str]:
    """The states of the task instances of the newest run of ``dag_id`` at ``logical_date``."""
    airflow = devservices.venv_bin("airflow")
    runs = subprocess.run([airflow, "dags", "list-runs", dag_id, "-o", "json"], env=env, capture_output=True, text=True)
    wanted = logical_date.astimezone(UTC)
    run_ids = [
        r["run_id"]
        for r in json_list(runs.stdout) or []
        if r.get("logical_date") and datetime.fromisoformat(r["logical_date"]) == wanted
    ]
    if not run_ids:
        return []
    states = subprocess.run(
        [airflow, "tasks", "states-for-dag-run", dag_id, max(run_ids), "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
    )
    return [str(t.get("state")) for t in json_list(states.stdout) or []]


def run_dag(name: str, dag_id: str, logical_date: datetime, env: dict[str, str]) -> subprocess.CompletedProcess:
    result = run(
        name, [devservices.venv_bin("airflow"), "dags", "test", dag_id, iso(logical_date)], env, timeout=DAG_TIMEOUT
    )
    state = "succeeded" if result.returncode == 0 else f"failed (exit code {result.returncode})"
    note(f"DAG run {state} in {result.seconds:.0f} s; log: {result.log}")  # type: ignore[attr-defined]
    return result


def audit_step(
    number: int, title: str, *, now: datetime, env: dict[str, str], shop: Shop, dags: set[str], expect_overdue: bool
) -> int | None:
    heading(number, title)
    mark = shop.evidence_watermark()
    mails_before = len(mails())
    if "retention_audit" in dags:
        result = run_dag(f"{number}-audit", "retention_audit", now, env)
        failed_as_expected = result.returncode != 0 and expect_overdue
        if result.returncode != 0 and not expect_overdue:
            print(tail(result))
            raise DemoFailed(f"retention_audit failed after the sweep; see {result.log}")  # type: ignore[attr-defined]
        if failed_as_expected:
            note("the DAG fails on purpose: records are past their windows (AirflowFailException)")
    elif cli_has("audit", env):
        note("no DAG retention_audit in dags/ yet: running the same audit from the CLI")
        result = run(f"{number}-audit", [governance_cli(), "audit", "--now", iso(now)], env)
    else:
        note("skipped: neither the DAG retention_audit nor `governance audit` is part of this build")
        return None
    rows = shop.audit_rows(mark)
    if not rows:
        print(tail(result))
        raise DemoFailed(f"the audit recorded no evidence; see {result.log}")  # type: ignore[attr-defined]
    note(f"audit run {rows[0][5]} as of {iso(rows[0][6])} (from governance.audit_history):")
    print()
    total = print_audit(rows)
    new_mail = mails()[mails_before:]
    if new_mail:
        note(f'on-call alert e-mailed to the SMTP sink: "{mail_subject(new_mail[-1])}" ({new_mail[-1].parent})')
    if expect_overdue and total == 0:
        raise DemoFailed("the freshly seeded shop should have overdue records, the audit found none")
    if not expect_overdue and total != 0:
        raise DemoFailed(f"{total} records are still overdue after the sweep")
    return total


def sweep_step(number: int, *, now: datetime, env: dict[str, str], shop: Shop, dags: set[str]) -> bool:
    heading(number, "Sweep: delete or anonymise what is past its window, keep what a hold keeps")
    mark = shop.evidence_watermark()
    if "retention_sweep" in dags:
        # Airflow 3.3.2's `airflow dags test` cannot close a run of a DAG with a Deadline Alert
        # ('dict' object has no attribute 'hex'); the scheduler can. Off for this test run only.
        note("the sweep's Deadline Alert is off for `airflow dags test` (GOVERNANCE_SWEEP_DEADLINE_MINUTES=0)")
        result = run_dag(f"{number}-sweep", "retention_sweep", now, {**env, "GOVERNANCE_SWEEP_DEADLINE_MINUTES": "0"})
    elif cli_has("sweep", env):
        note("no DAG retention_sweep in dags/ yet: running the same sweep from the CLI")
        result = run(f"{number}-sweep", [governance_cli(), "sweep", "--now", iso(now)], env)
    else:
        note("skipped: neither the DAG retention_sweep nor `governance sweep` is part of this build yet")
        return False
    if result.returncode != 0:
        states = task_states("retention_sweep", now, env) if "retention_sweep" in dags else []
        if not states or any(state != "success" for state in states):
            print(tail(result))
            raise DemoFailed(f"the sweep failed; see {result.log}")  # type: ignore[attr-defined]
        note(f"all {len(states)} task instances succeeded; `airflow dags test` itself failed after the run")
    rows = shop.effect_rows(mark)
    runs = sorted({r[4] for r in rows})
    note(f"what the sweep did, per rule (from its evidence{', run ' + runs[-1] if runs else ''}):")
    print()
    print_effects(rows)
    return True


def plan_step(number: int, *, now: datetime, env: dict[str, str]) -> None:
    heading(number, "Plan: what a sweep would do now (no effect)")
    if not cli_has("plan", env):
        note("skipped: `governance plan` is not part of this build yet")
        return
    result = run(f"{number}-plan", [governance_cli(), "plan", "--now", iso(now)], env, show_output=True)
    if result.returncode != 0:
        print(tail(result))
        raise DemoFailed(f"governance plan failed; see {result.log}")  # type: ignore[attr-defined]


def request_step(number: int, *, now: datetime, env: dict[str, str], shop: Shop, dags: set[str]) -> None:
    """Open, verify and answer one access request (REQ-1, ACC-1) for the seeded account with the most
    photos; print where the export is and what it holds, never the person's data."""
    heading(number, "A data-subject request: open, verify, answer with an export (REQ-1, ACC-1)")
    if "subject_requests" not in dags or not cli_has("request", env):
        note("skipped: the DAG subject_requests or `governance request` is not part of this build")
        return
    rows = shop.query(
        "SELECT a.account_id FROM shop.accounts a ORDER BY (SELECT count(*) FROM shop.uploads u "
        "WHERE u.account_id = a.account_id) DESC, a.account_id LIMIT 1"
    )
    if not rows:
        note("skipped: no account left in the shop")
        return
    at = ["--now", iso(now)]
    opened = run(
        f"{number}-request-open",
        [governance_cli(), "request", "open", "--kind", "access", "--account-id", str(rows[0][0])]
        + ["--channel", "support_tool", "--by", "demo", *at],
        env,
        show_output=True,
    )
    found = re.search(r"request (\d+) opened", opened.stdout)
    if opened.returncode != 0 or not found:
        print(tail(opened))
        raise DemoFailed(f"governance request open failed; see {opened.log}")  # type: ignore[attr-defined]
    request_id = found.group(1)
    verified = run(
        f"{number}-request-verify",
        [governance_cli(), "request", "verify", request_id, "--by", "demo", "--method", "signed_in_account", *at],
        env,
        show_output=True,
    )
    if verified.returncode != 0:
        raise DemoFailed(f"governance request verify failed; see {verified.log}")  # type: ignore[attr-defined]
    ensure_exports_bucket()
    mails_before = len(mails())
    answered = run(
        f"{number}-subject-requests",
        [devservices.venv_bin("airflow"), "dags", "test", "subject_requests", iso(now)]
        + ["-c", json.dumps({"request_id": int(request_id)})],
        env,
        timeout=DAG_TIMEOUT,
    )
    note(f"DAG run {'succeeded' if answered.returncode == 0 else 'failed'} in {answered.seconds:.0f} s")  # type: ignore[attr-defined]
    print_export(shop, int(request_id))
    new_mail = mails()[mails_before:]
    if new_mail:
        note(
            f'the download link (7 days) e-mailed to the person: "{mail_subject(new_mail[-1])}" ({new_mail[-1].parent})'
        )
    if answered.returncode != 0:
        print(tail(answered))
        raise DemoFailed(f"subject_requests failed; see {answered.log}")  # type: ignore[attr-defined]


def ensure_exports_bucket() -> None:
    from governance.objectstore import ensure_bucket, make_client
    from governance.policy import load_policy
    from governance.settings import resolve

    bucket = load_policy(os.environ.get("GOVERNANCE_POLICY") or None).object_store.exports_bucket
    if bucket:
        ensure_bucket(make_client(resolve()), bucket)


def print_export(shop: Shop, request_id: int) -> None:
    """Where the export is and what it holds: the row, its evidence's counts, the manifest's files."""
    state = shop.query("SELECT state FROM governance.subject_requests WHERE request_id = %s", (request_id,))
    rows = shop.query(
        "SELECT bucket, object_key, byte_size, sha256, file_count FROM governance.request_exports WHERE request_id = %s",
        (request_id,),
    )
    if not rows:
        raise DemoFailed(f"request {request_id} has no export (state {state[0][0] if state else '?'})")
    bucket, key, size, sha256, file_count = rows[0]
    note(f"request {request_id}: {state[0][0]}; export s3://{bucket}/{key}")
    note(f"{size} bytes, SHA-256 {sha256}, {file_count} files, server-side encrypted")
    counts = shop.query(
        "SELECT counts FROM governance.evidence WHERE kind = 'request_export_written' AND run_id = %s",
        (f"request-{request_id}",),
    )[0][0]
    print()
    table(["table", "records"], [[t, n] for t, n in sorted(counts.items()) if "." in t])
    note(f"records: {counts['records']}; photos and texts: {counts['objects']} (copied byte for byte)")
    from governance.objectstore import make_client
    from governance.settings import resolve

    body = make_client(resolve()).get_object(Bucket=bucket, Key=key)["Body"].read()
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    files = [f for f in manifest["files"] if not f["path"].startswith("files/")]
    note(f"manifest.json lists {len(manifest['files'])} files with their SHA-256; besides the photos and texts:")
    print()
    table(["file", "bytes", "sha256"], [[f["path"], f["bytes"], f["sha256"][:16] + "..."] for f in files], right={1})


def open_verified(number: int, argv: list[str], env: dict[str, str]) -> int:
    """``governance request open`` with ``argv``, then ``verify``; the request id."""
    opened = run(f"{number}-request-open", [governance_cli(), "request", "open", *argv], env, show_output=True)
    found = re.search(r"request (\d+) opened", opened.stdout)
    if opened.returncode != 0 or not found:
        print(tail(opened))
        raise DemoFailed(f"governance request open failed; see {opened.log}")  # type: ignore[attr-defined]
    at = argv[argv.index("--now") :][:2]
    verified = run(
        f"{number}-request-verify",
        [governance_cli(), "request", "verify", found.group(1), "--by", "demo", "--method", "id_document", *at],
        env,
        show_output=True,
    )
    if verified.returncode != 0:
        raise DemoFailed(f"governance request verify failed; see {verified.log}")  # type: ignore[attr-defined]
    return int(found.group(1))


def person_counts(shop: Shop, subject: Any) -> dict[str, int]:
    """The person's records per table, as the person finder reaches them (counts only)."""
    from governance.person.records import count_records

    with shop.conn.cursor() as cur:  # autocommit: one statement, one snapshot
        return count_records(cur, load_demo_policy(), subject)


def erasure_step(number: int, *, now: datetime, env: dict[str, str], shop: Shop, dags: set[str]) -> None:
    """One erasure end to end (ERA-1): open + verify, before, the DAG, after, the check, the evidence."""
    heading(number, "An erasure: before, the subject_requests DAG, after, the independent check (ERA-1, RET-8)")
    if "subject_requests" not in dags or not cli_has("request", env):
        note("skipped: the DAG subject_requests or `governance request` is not part of this build")
        return
    rows = shop.query(
        "SELECT a.account_id FROM shop.accounts a WHERE a.deleted_at IS NULL ORDER BY (SELECT count(*) FROM shop.orders o "
        "WHERE o.account_id = a.account_id) DESC, a.account_id LIMIT 1 OFFSET 1"
    )
    if not rows:
        note("skipped: no second account in the shop")
        return
    from governance.person.subject import resolve_subject

    with shop.conn.cursor() as cur:  # the address stays in this process: never printed
        subject = resolve_subject(cur, load_demo_policy(), account_id=int(rows[0][0]), email=None)
    argv = ["--kind", "erasure", "--account-id", str(rows[0][0]), "--channel", "support_tool", "--by", "demo"]
    request_id = open_verified(number, [*argv, "--now", iso(now)], env)
    before = person_counts(shop, subject)
    answered = run(
        f"{number}-subject-requests-erasure",
        [devservices.venv_bin("airflow"), "dags", "test", "subject_requests", iso(now)]
        + ["-c", json.dumps({"request_id": request_id})],
        env,
        timeout=DAG_TIMEOUT,
    )
    note(f"DAG run {'succeeded' if answered.returncode == 0 else 'failed'} in {answered.seconds:.0f} s")  # type: ignore[attr-defined]
    after = person_counts(shop, subject)
    table(["table", "before", "after"], [[t, before[t], after[t]] for t in before if before[t] or after[t]], {1, 2})
    print_erasure_evidence(shop, request_id)
    if answered.returncode != 0:
        print(tail(answered))
        raise DemoFailed(f"subject_requests failed on the erasure; see {answered.log}")  # type: ignore[attr-defined]


def load_demo_policy() -> Any:
    from governance.policy import load_policy

    return load_policy(os.environ.get("GOVERNANCE_POLICY") or None)


def print_erasure_evidence(shop: Shop, request_id: int) -> None:
    """The request's state, the independent check's counts and the evidence's kinds (counts only)."""
    state = shop.query("SELECT state FROM governance.subject_requests WHERE request_id = %s", (request_id,))
    checked = shop.query(
        "SELECT kind, counts FROM governance.evidence WHERE run_id = %s AND kind LIKE 'erasure_check%%' "
        "ORDER BY entry_id DESC LIMIT 1",
        (f"request-{request_id}",),
    )
    note(f"request {request_id}: {state[0][0] if state else '?'}")
    if checked:
        kind, counts = checked[0]
        result = "passed" if kind == "erasure_checked" else "FAILED"
        kept = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if not k.startswith("left") and v) or "none"
        note(
            f"the independent check {result}: left {sum(v for k, v in counts.items() if k.startswith('left'))}; {kept}"
        )
    kinds = shop.query(
        "SELECT kind, count(*) FROM governance.evidence WHERE run_id = %s GROUP BY kind ORDER BY min(entry_id)",
        (f"request-{request_id}",),
    )
    note("evidence of the request: " + ", ".join(f"{kind} x{n}" for kind, n in kinds))
    if not checked or checked[0][0] != "erasure_checked" or not state or state[0][0] != "completed":
        raise DemoFailed(f"the erasure of request {request_id} did not complete with a passing check")


def main() -> int:
    started = time.monotonic()
    print(f"{BOLD}Privacy-policy enforcement demo: a photo shop's retention rules, run by Airflow{RESET}")

    heading(1, "Services")
    services = devservices.up(quiet=True)
    env = devservices.run_env(services["env"])
    os.environ.update(env)  # the library calls below read the same settings
    db_url = env[devservices.DB_URL_ENV]
    if services["embedded_db"]:
        devservices.recreate_database(db_url)
    else:
        note("GOVERNANCE_DB_URL is set: seeding into that database (it should be a scratch one)")
    if services["embedded_s3"]:
        devservices.reset_moto(env[devservices.S3_ENDPOINT_ENV])
    devservices.print_summary(services["env"], services["embedded_db"], services["embedded_s3"])
    if LOG_DIR.exists():
        shutil.rmtree(LOG_DIR)
    devservices.migrate_airflow(env, quiet=False)
    dags, import_errors = airflow_dags(env)
    for path, error in import_errors.items():
        note(f"DAG import error in {path}: {error}")
    note(f"DAGs found in dags/: {', '.join(sorted(dags)) or 'none'}")

    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    later = now + timedelta(minutes=1)

    heading(2, f"Seed a small shop as of {iso(now)}")
    if not cli_has("seed", env):
        raise DemoFailed("`governance seed` is not part of this build: nothing to demonstrate")
    seeded = run(
        "2-seed", [governance_cli(), "seed", "--now", iso(now), "--customers", str(CUSTOMERS)], env, show_output=True
    )
    if seeded.returncode != 0:
        print(tail(seeded))
        raise DemoFailed(f"governance seed failed; see {seeded.log}")  # type: ignore[attr-defined]

    shop = Shop(db_url)
    note(f"legal holds in force: {shop.holds_in_force(now)}")
    audit_step(
        3,
        "Audit through Airflow: what is past its window?",
        now=now,
        env=env,
        shop=shop,
        dags=dags,
        expect_overdue=True,
    )
    plan_step(4, now=later, env=env)
    swept = sweep_step(5, now=later, env=env, shop=shop, dags=dags)
    if swept:
        audit_step(
            6,
            "Audit again: nothing overdue, held records kept",
            now=later,
            env=env,
            shop=shop,
            dags=dags,
            expect_overdue=False,
        )
    else:
        heading(6, "Audit again")
        note("skipped: there was no sweep")

    request_step(7, now=later + timedelta(seconds=30), env=env, shop=shop, dags=dags)
    erasure_step(8, now=later + timedelta(seconds=40), env=env, shop=shop, dags=dags)

    heading(9, "Evidence")
    entries, problems = shop.verify_evidence()
    if problems:
        raise DemoFailed(f"the evidence chain does not verify: {problems} problem(s) in {entries} entries")
    note(f"{entries} hash-chained evidence entries; governance.verify_evidence() finds no problem")
    print(
        f"\nDone in {time.monotonic() - started:.0f} s. Logs: {LOG_DIR.relative_to(ROOT)}/. "
        "Services keep running for the next command; `make services-down` stops them."
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DemoFailed as failure:
        print(f"\ndemo failed: {failure}", file=sys.stderr)
        sys.exit(1)
