"""The retention audit: a check, independent of the sweeps, that nothing outlives its window.

Each rule's own predicate (``include/sql/audit/``, written apart from the sweeps' clocks) runs as a
Great Expectations ``UnexpectedRowsExpectation`` pushed down to PostgreSQL and cross-checked; held
records count as compliant (RET-8); every object in the store must belong to a row that is not
overdue (CAT-5, RET-9). Per-rule counts, never personal data, become hash-chained evidence. Why the
numbers can be trusted: ``include/sql/audit/README.md``. No Airflow here: the DAG
``retention_audit``, the CLI ``governance audit`` and the tests run the same code.
"""

from governance.audit.gx import GxOutcome, gx_query, run_gx, sqlalchemy_url
from governance.audit.listing import ListedStore, Listing, copy_objects, iter_objects, listed_stores
from governance.audit.objects import check_object_store, object_store_rule_id
from governance.audit.predicates import (
    AUDIT_COLUMNS,
    PREDICATE_COLUMNS,
    Counted,
    audit_parameters,
    audit_sql_text,
    evaluate,
    evaluate_all,
    parameter_name,
    render,
)
from governance.audit.record import record_evidence
from governance.audit.report import (
    GX_CHECK,
    OBJECT_STORE_CHECK,
    OBJECT_STORE_REQUIREMENTS,
    OBJECT_STORE_RULE,
    RUNBOOK,
    AuditReport,
    RightsAudit,
    RuleAudit,
    human_duration,
)
from governance.audit.rights import RIGHTS_COLUMNS, RIGHTS_DIR, RightsCheck, load_checks
from governance.audit.run import cross_checked, new_run_id, run_audit
from governance.audit.scratch import SCRATCH_LOCK_NAMESPACE, SCRATCH_PREFIX, Scratch, drop_stale_scratch
from governance.errors import AuditError, AuditFailed, AuditInconsistent

__all__ = [
    "AUDIT_COLUMNS",
    "GX_CHECK",
    "OBJECT_STORE_CHECK",
    "OBJECT_STORE_REQUIREMENTS",
    "OBJECT_STORE_RULE",
    "PREDICATE_COLUMNS",
    "RIGHTS_COLUMNS",
    "RIGHTS_DIR",
    "RUNBOOK",
    "SCRATCH_LOCK_NAMESPACE",
    "SCRATCH_PREFIX",
    "AuditError",
    "AuditFailed",
    "AuditInconsistent",
    "AuditReport",
    "Counted",
    "GxOutcome",
    "ListedStore",
    "Listing",
    "RightsAudit",
    "RightsCheck",
    "RuleAudit",
    "Scratch",
    "audit_parameters",
    "audit_sql_text",
    "check_object_store",
    "copy_objects",
    "cross_checked",
    "drop_stale_scratch",
    "evaluate",
    "evaluate_all",
    "gx_query",
    "human_duration",
    "iter_objects",
    "load_checks",
    "listed_stores",
    "new_run_id",
    "object_store_rule_id",
    "parameter_name",
    "record_evidence",
    "render",
    "run_audit",
    "run_gx",
    "sqlalchemy_url",
]
