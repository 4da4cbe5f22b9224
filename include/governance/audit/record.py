"""The audit's evidence: one ``audit_rule`` entry per rule, one ``audit_rights`` entry per rights
check, and one ``audit`` entry for the run.

Written through ``governance.evidence.append`` in the caller's transaction; counts, rule ids and
phase times only (no personal data), idempotent per run, rule and kind (a rerun of the same run id
records nothing twice). ``governance.audit_history`` shows them to reviewers.
"""

from __future__ import annotations

from typing import Any

from psycopg2.extensions import cursor

from governance import evidence
from governance.audit.report import GX_CHECK, AuditReport, RightsAudit, RuleAudit


def record_evidence(cur: cursor, report: AuditReport) -> None:
    """Append the per-rule and the summary evidence; the summary cites every rule's requirements."""
    requirements: dict[str, None] = {}
    for result in report.rules:
        _record_rule(cur, report, result)
        requirements.update(dict.fromkeys(result.requirements))
    for check in report.rights:
        _record_rights(cur, report, check)
        requirements.update(dict.fromkeys(check.requirements))
    over = report.rules_over
    evidence.append(
        cur,
        kind="audit",
        run_id=report.run_id,
        requirements=list(requirements),
        as_of=report.now,
        policy_version=report.policy_version,
        counts={
            "overdue_total": report.overdue_total,
            "rules_over": len(over),
            "rights_findings_total": report.findings_total,
            "rights_failed": len(report.rights_failed),
        },
        details={
            "rules_over": [r.rule for r in over],
            "rules_checked": len(report.rules),
            "rights_failed": [r.check for r in report.rights_failed],
            "rights_checked": len(report.rights),
            "seconds": report.seconds,
        },
    )


def _record_rights(cur: cursor, report: AuditReport, check: RightsAudit) -> None:
    """One rights check's count (``rule_id`` is the check's id: unique per run and kind)."""
    evidence.append(
        cur,
        kind="audit_rights",
        run_id=report.run_id,
        rule_id=check.check,
        requirements=list(check.requirements),
        as_of=report.now,
        policy_version=report.policy_version,
        counts={"findings": check.findings},
        details={"check": GX_CHECK, "gx_success": check.gx_success},
    )


def _record_rule(cur: cursor, report: AuditReport, result: RuleAudit) -> None:
    counts = {
        "overdue": result.overdue,
        "oldest_overdue_seconds": result.oldest_overdue_seconds,
        "held": result.held,
    }
    details: dict[str, Any] = {"check": result.check}
    if result.check == GX_CHECK:
        details["gx_success"] = result.gx_success
    details.update(result.details)
    evidence.append(
        cur,
        kind="audit_rule",
        run_id=report.run_id,
        rule_id=result.rule,
        requirements=list(result.requirements),
        as_of=report.now,
        policy_version=report.policy_version,
        counts=counts,
        details=details,
    )
