"""Retention enforcement (RET-1..RET-10, CAT-5): plan, sweep and verify each rule of the policy.

``plan`` says what a sweep at "now" would remove or anonymise, with no effect; ``sweep_rule``
sweeps one rule (plan -> execute -> verify), ``sweep`` several in an order that respects the
rules' ``after``. The DAG ``retention_sweep``, the CLI (``governance plan``/``governance sweep``),
the tests and the benchmarks all call these; the package does not import Airflow.

Modules: ``engine`` (the public API), ``rule`` (one rule: lock, passes, verification, summary),
``strategies`` (how due rows are cut into batches: blocks, work, partitions), ``actions`` (what a
batch does: delete, anonymise, purge_objects), ``runner`` (the batch transaction, its retries and
evidence), ``target``/``selection``/``held`` (which records are due and not held, as SQL),
``counting`` and ``planning`` (counts and plans), ``partitions`` (listing and creating range
partitions), ``objects`` (deleting CAT-5 objects and all their versions), ``stages`` (rule order),
``shards`` (cutting a large rule into shards) and ``sharded`` (sweeping one shard, finishing the
rule after its shards; #14).
"""

import importlib
from typing import Any

_EXPORTS = {
    "governance.errors": [
        "BatchFailed",
        "DependencyFailed",
        "ObjectPurgeFailed",
        "SweepError",
        "SweepFailed",
        "VerifyFailed",
    ],
    "governance.sweep.options": ["Options"],
    "governance.sweep.results": ["RulePlan", "RuleResult"],
    "governance.sweep.engine": ["check_policy", "plan", "settle_rules", "sweep", "sweep_rule"],
    "governance.sweep.stages": ["sweep_stages"],
}
__all__ = [name for names in _EXPORTS.values() for name in names]


def __getattr__(name: str) -> Any:
    # Lazy (PEP 562): ``governance.sweep.stages`` is importable at DAG parse time without the
    # engine's psycopg2 and boto3.
    for module, names in _EXPORTS.items():
        if name in names:
            return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module 'governance.sweep' has no attribute {name!r}")
