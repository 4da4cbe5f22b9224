"""
### retention_sweep — remove what has outlived its retention window

Enforces every retention rule of the privacy policy (docs/requirements.md RET-1..RET-10, CAT-5 objects)
every hour: RET-1 keeps visit data 24 hours, so an hourly sweep is at most about an hour late.
"Now" is the run's data interval end (RET-10), so a rerun of a run decides exactly the same way.
A "now" more than a few minutes ahead of the wall clock, or before the policy applies, is refused
(a mistake that would sweep almost everything) unless the run is triggered with conf
`{"allow_now_override": "REASON"}`, which is recorded as evidence (docs/runbook.md, 'A "now" was refused').

- **check_policy**: the policy file validates and every table, column and clock it names exists
  (fails at once; the same task as `retention_audit`'s).
- **plan_stage_N**: cuts each rule of the stage into shards (#14, `governance.sweep.shards`): a
  rule whose table is large is split into N shards (heap page ranges of a table with a column
  clock, classes of the `chunk` column of a windowed clock view, groups of partitions), N the
  `shards` param or, when 0, one per 128 MiB of the table (at most 8); small tables, and rules that
  cannot be cut, are one shard. Returns the shards as ids and counts only.
- **sweep_stage_N**: one mapped task per shard (the map index shows the rule id, and `k/N` for a
  shard of a cut rule), on any worker. A rule in one shard is
  planned, executed and verified by `governance.sweep.sweep_rule`: set-based batches over block
  ranges or a precomputed due set, each batch one short transaction carrying its own evidence;
  whole expired partitions of `shop.visits` are dropped; order records are anonymised (RET-8), and
  the recipients whose `notify.retention_ended` is set are told in the same transaction (TP-5; the
  pseudonym key from the connection `governance_recipient_pseudonym`);
  photos and texts are purged from the object store with every version (CAT-5). Legal holds
  (RET-8) are never touched. Afterwards the same selection must count zero, else the task fails.
  A shard runs the same way over its own part (its own lock, batches whose evidence names the shard,
  its own verification, a `sweep_shard` evidence entry with its totals).
- **finish_stage_N** (one mapped task per rule, after all its shards, whatever their outcome): for a
  rule cut into shards, the whole rule's selection must count zero (what a failed shard left is
  swept here, whole) and the rule's `sweep_rule` summary totals every shard's batches: the same
  entry an unsharded sweep records. Nothing to do for a rule in one shard.
- **settle**: removing records can make other records due within the same run (a deleted account's
  saved products go, so their photos fall to another upload rule; an account goes, so its uploads
  become guest uploads). Rules that finished earlier are planned again and swept again where
  anything is due — normally one query per rule and nothing to do.
- **mark_swept**: when every rule succeeded, updates the `retention_swept` asset, which triggers
  `retention_audit` (the independent check) with this run's "now".
- **anchor_evidence** (teardown, after every run): the evidence chain's head to the Object Lock
  bucket (SEC-1); see docs/runbook.md "Evidence anchors".

**Ordering** (`after` in the policy): a deleted account (`deleted-accounts`) goes after its calendar
events and saved products, so each table's removals are counted under its own rule instead of
vanishing in the account's FK cascade. Mapped tasks cannot be ordered among themselves, so rules
are grouped in stages (stage 2 runs after stage 1). Stage 2 runs even when an unrelated stage-1
rule failed (`all_done`): the account rule itself sweeps its `after` rules first in its own task
(a no-op when stage 1 did them), so a failed upload purge does not hold back account deletion,
and a failed dependency fails the account rule too.

**Concurrency**: `max_active_runs=1`, and each rule takes a PostgreSQL advisory lock for its whole
run (a shard: the rule's lock shared, its own exclusive, so shards run side by side and a whole-rule
sweep waits for them); a task finding its rule locked (a `governance sweep` from the CLI) waits up
to 10 minutes, then fails and is retried. A failed shard is rerun alone by clearing its task (or
`governance sweep --rule R --shards N --shard K` with the same run id), then its rule's finish.

**Params**: `dry_run` (report per rule what would be removed, change nothing, no asset event),
`batch_size` (rows per batch), `partition_counts` (`exact`: a dropped partition's rows are
counted, `count(*)`; `estimated`: taken from `pg_class.reltuples` and recorded as
`rows_estimated`, no read of the partition; see bench/README.md for what it saves), `shards`
(the number of shards of each rule that can be cut; 0 or empty: from the table's size, see
plan_stage_N; 1: every rule whole, as before #14).

**On failure** (an e-mail from the failure notifier; a Deadline Alert when a run is still going
45 minutes after it was queued):
- *policy does not match the database*: apply the schema or fix the policy file; no retry helps.
- *N record(s) are still due after the sweep* (verify): something re-creates them, or the
  selection is wrong: `governance plan --rule RULE --now NOW`, see docs/runbook.md.
- *N object(s) could not be deleted (AccessDenied ...)*: an object lock or legal hold on the
  objects, or permissions; the rows stay 'purging' and the next run finishes them once lifted.
- *batch ... LockNotAvailable/QueryCanceled*: the shop held locks; retried automatically, lower
  `batch_size` if it persists.
The library never puts personal data in messages: rule ids, counts and keys only.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import (
    AsyncCallback,
    CronTriggerTimetable,
    DeadlineAlert,
    DeadlineReference,
    Param,
    dag,
    get_current_context,
    task,
)

import governance_airflow
from governance.sweep.options import DEFAULT_BATCH_SIZE, MAX_SHARDS, PARTITION_COUNTS, Options

# Validate the policy where it is loaded (CONTRIBUTING.md habit 3): a bad file is an import error naming
# the file, the rule and the field. Cheap: one YAML file and the policy model.
POLICY = governance_airflow.load_policy()
LOCK_WAIT_SECONDS = 600  # for a CLI sweep of the same rule to finish
# A sweep usually takes seconds to a few minutes. GOVERNANCE_SWEEP_DEADLINE_MINUTES=0 turns the
# alert off: Airflow 3.3.2's `airflow dags test` (dag.test()) crashes closing a successful run of
# a DAG with a Deadline Alert ("'dict' object has no attribute 'hex'"); the scheduler does not.
DEADLINE = timedelta(minutes=int(os.environ.get("GOVERNANCE_SWEEP_DEADLINE_MINUTES", "45")))


def _stages() -> list[list[str]]:
    from governance.sweep.stages import sweep_stages  # the policy model only; no engine at parse time

    return sweep_stages(POLICY)


STAGES = _stages()


def _deadline_alert() -> DeadlineAlert | None:
    """Alert on-call when a run is still going DEADLINE after it was queued (None when turned off)."""
    if DEADLINE <= timedelta(0):
        return None
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=DEADLINE,
        callback=AsyncCallback(
            "airflow.providers.smtp.notifications.smtp.SmtpNotifier",
            kwargs={
                "to": governance_airflow.ALERT_EMAIL,
                "from_email": "governance@example.invalid",
                "smtp_conn_id": governance_airflow.SMTP_CONN_ID,
                "subject": f"[governance] retention_sweep still running after {DEADLINE}",
                "html_content": (
                    "<p>Run {{ dag_run.run_id }} of <b>{{ dag_run.dag_id }}</b> missed its deadline "
                    "{{ deadline.deadline_time }}: the sweep is much slower than usual or stuck.</p>"
                    "<p>Look at the running sweep_stage tasks and at locks held in the shop database; "
                    f"runbook: {governance_airflow.RUNBOOK_URL}</p>"
                ),
            },
        ),
    )


def sweep_options(params: dict) -> dict:
    """The engine's options from the run's params (the same for the rules and for settling)."""
    return {
        "batch_size": int(params["batch_size"]),
        "lock_wait": LOCK_WAIT_SECONDS,
        "partition_counts": str(params["partition_counts"]),
        # TP-5: recipients told of retention ends (notify.retention_ended) are named by this key
        "notice_key": governance_airflow.recipient_pseudonym_key,
    }


@task
def plan_stage(rule_ids: list[str], **context) -> list[dict]:
    """The shards of each rule of the stage (ids, counts and page bounds only); one per rule in a dry run."""
    from contextlib import closing

    from governance.sweep.shards import plan_shards

    policy = governance_airflow.load_policy()
    params = context["params"]
    count = 1 if params["dry_run"] else int(params.get("shards") or 0) or None
    now = governance_airflow.run_now(context)
    with (
        closing(governance_airflow.db_connection()) as conn,
        governance_airflow.fail_fast_on_policy_and_sweep_errors(),
    ):
        shards = [shard.to_dict() for rule_id in rule_ids for shard in plan_shards(conn, policy, rule_id, now, count)]
    for shard in shards:
        print(f"{shard['rule_id']}: shard {shard['index']} of {shard['count']} ({shard['kind']})")
    return shards


@task(map_index_template="{{ shard_label }}")
def sweep_rule(shard: dict, **context) -> dict:
    """Plan, execute and verify one rule, or one shard of it; returns its counts (never personal data)."""
    from contextlib import closing

    from governance.sweep.sharded import sweep_shard
    from governance.sweep.shards import Shard

    part = Shard.from_dict(shard)
    rule_id = part.rule_id
    # the map index (the template renders the task's context, not this copy of it)
    get_current_context()["shard_label"] = rule_id if part.count == 1 else f"{rule_id} {part.label}"
    policy = governance_airflow.load_policy()
    params = context["params"]
    governance_airflow.lineage.report_sweep(policy, [rule_id], dry_run=bool(params["dry_run"]))  # #14
    with (
        closing(governance_airflow.db_connection()) as conn,
        governance_airflow.fail_fast_on_policy_and_sweep_errors(),
    ):
        result = sweep_shard(
            conn,
            governance_airflow.lazy_s3_client(),
            policy,
            part,
            governance_airflow.run_now(context),
            evidence_run_id(context),
            dry_run=bool(params["dry_run"]),
            **sweep_options(params),
        )
    if result.skipped_locked:
        raise RuntimeError(
            f"rule {rule_id!r} is being swept by another process for over {LOCK_WAIT_SECONDS} s; retrying later"
        )
    print(result.to_dict())
    return {**result.to_dict(), "shard": part.label, "shards": part.count}


@task(map_index_template="{{ rule_id }}", trigger_rule="all_done")
def finish_rule(rule_id: str, shards: list, **context) -> dict:
    """After a rule's shards: the whole rule verified, its summary recorded (see "finish" above)."""
    from contextlib import closing

    from governance.sweep.sharded import finish_rule as finish

    get_current_context()["rule_id"] = rule_id  # shown as the map index
    count = max((int(s["count"]) for s in shards or [] if s["rule_id"] == rule_id), default=1)
    params = context["params"]
    if params["dry_run"] or count == 1:
        return {"rule": rule_id, "shards": count}  # a rule in one shard: sweep_rule verified it
    policy = governance_airflow.load_policy()
    governance_airflow.lineage.report_sweep(policy, [rule_id], dry_run=False)  # #14: it may sweep what is left
    with (
        closing(governance_airflow.db_connection()) as conn,
        governance_airflow.fail_fast_on_policy_and_sweep_errors(),
    ):
        result = finish(
            conn,
            governance_airflow.lazy_s3_client(),
            policy,
            rule_id,
            count,
            governance_airflow.run_now(context),
            evidence_run_id(context),
            **sweep_options(params),
        )
    if result.skipped_locked:
        raise RuntimeError(
            f"rule {rule_id!r} is locked by another sweep for over {LOCK_WAIT_SECONDS} s; retrying later"
        )
    print(result.to_dict())
    return {**result.to_dict(), "shards": count}


@task(trigger_rule="all_done")
def settle(**context) -> list:
    """Sweep again what became due because of the other rules' removals (see "settle" above)."""
    from contextlib import closing

    from governance.sweep import settle_rules

    params = context["params"]
    if params["dry_run"]:
        return []
    policy = governance_airflow.load_policy()
    governance_airflow.lineage.report_sweep(policy, [rule.id for rule in policy.rules], dry_run=False)  # #14
    with (
        closing(governance_airflow.db_connection()) as conn,
        governance_airflow.fail_fast_on_policy_and_sweep_errors(),
    ):
        results = settle_rules(
            conn,
            governance_airflow.lazy_s3_client(),
            policy,
            governance_airflow.run_now(context),
            evidence_run_id(context),
            [rule.id for rule in policy.rules],
            **sweep_options(params),
        )
    for result in results:
        print(result.to_dict())
    return [result.to_dict() for result in results]


@task(outlets=[governance_airflow.retention_swept_asset()])
def mark_swept(results: list, finished: list, settled: list, **context) -> dict:
    """Every rule succeeded: tell retention_audit (through the asset) which "now" to check."""
    from airflow.sdk.exceptions import AirflowSkipException

    from governance.windows import iso

    totals = {
        key: sum(int(r.get(key, 0)) for r in [*results, *finished, *settled])
        for key in ("deleted", "anonymised", "objects_purged", "partitions_dropped")
    }
    # held: a whole rule's own verification, or a cut rule's finish (its shards' add up to the same)
    totals["held"] = sum(int(r.get("held", 0)) for r in results if int(r.get("shards", 1)) == 1) + sum(
        int(r.get("held", 0)) for r in finished
    )
    if context["params"]["dry_run"]:
        print(f"dry run, nothing changed; would have: {totals}")
        raise AirflowSkipException("dry run: nothing was swept, so retention_audit is not triggered")
    context["outlet_events"][governance_airflow.retention_swept_asset()].extra = {
        "now": iso(governance_airflow.run_now(context)),
        "run_id": evidence_run_id(context),
        **totals,
    }
    print(f"swept: {totals}")
    return totals


@dag(
    dag_id="retention_sweep",
    schedule=CronTriggerTimetable("0 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=governance_airflow.default_args(),
    params={
        "dry_run": Param(False, type="boolean", description="Only report what would be removed; change nothing."),
        "batch_size": Param(
            DEFAULT_BATCH_SIZE,
            type="integer",
            minimum=1,
            maximum=1_000_000,
            description="Rows per batch; each batch is one short transaction.",
        ),
        "shards": Param(
            0,
            type=["integer", "null"],
            minimum=0,
            maximum=MAX_SHARDS,
            description="Shards per rule that can be cut (#14); 0: from the table's size; 1: every rule whole.",
        ),
        "partition_counts": Param(
            Options.partition_counts,
            type="string",
            enum=list(PARTITION_COUNTS),
            description="Rows of a dropped partition: counted (exact) or pg_class.reltuples "
            "(estimated, recorded as rows_estimated).",
        ),
    },
    deadline=_deadline_alert(),
    tags=["governance", "gdpr", "retention", "sweep"],
    doc_md=__doc__,
)
def retention_sweep():
    previous = governance_airflow.check_policy()
    results, finished = [], []
    for number, rule_ids in enumerate(STAGES, start=1):
        shards = plan_stage.override(
            task_id=f"plan_stage_{number}",
            # later stages run after the earlier ones whatever their outcome; see "Ordering" above
            trigger_rule="all_success" if number == 1 else "all_done",
        )(rule_ids)
        previous >> shards
        stage = sweep_rule.override(task_id=f"sweep_stage_{number}").expand(shard=shards)
        done = finish_rule.override(task_id=f"finish_stage_{number}").partial(shards=shards).expand(rule_id=rule_ids)
        stage >> done
        previous = done
        results.append(stage)
        finished.append(done)
    settled = settle()
    previous >> settled
    summary = mark_swept(_flatten(results), _flatten(finished), settled)
    for stage in results:
        stage >> summary
    summary >> governance_airflow.anchor_evidence()


def _flatten(stages: list) -> list:
    """The stages' results as one list argument (XComArgs of mapped tasks concatenate)."""
    combined = stages[0]
    for stage in stages[1:]:
        combined = combined.concat(stage)
    return combined


def evidence_run_id(context) -> str:
    return f"retention_sweep/{context['run_id']}"


retention_sweep()
