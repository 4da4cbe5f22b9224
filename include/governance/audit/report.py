"""The audit's result: one ``RuleAudit`` per rule, one ``RightsAudit`` per rights check, and the
``AuditReport`` of a run.

Counts, ages and rule ids only, never a record's content. This module owns how a result reads to
people (the table, on-call's failure message) and to scripts (the JSON an XCom carries).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from governance.errors import AuditFailed, UnknownRule
from governance.policy.rules import AUDIT_CHECK_IDS, AUDIT_CHECK_SUFFIX
from governance.windows import iso, parse_instant

OBJECT_STORE_RULE = "uploads-object-store"  # the photo shop's uploads; every store with objects has one
OBJECT_STORE_SUFFIX = AUDIT_CHECK_SUFFIX  # '<table>-object-store'
# what the uploads' object-store check enforces (derived per store: governance.audit.objects)
OBJECT_STORE_REQUIREMENTS = ["CAT-5", "RET-5a", "RET-5b", "RET-5c", "RET-5d", "RET-9"]
GX_CHECK = "gx_unexpected_rows"
OBJECT_STORE_CHECK = "object_store"
LOCATION_RULE = AUDIT_CHECK_IDS[0]  # 'data-location', SEC-3: governance.audit.location
LOCATION_REQUIREMENTS = ["SEC-3"]
LOCATION_CHECK = "location"
RUNBOOK = "docs/runbook.md"


def check_of(rule_id: str) -> str:
    """Which check a result's rule id comes from: the location check, a store's object-store check
    (``<table>-object-store``; the policy model refuses a rule id ending so), or GX."""
    if rule_id == LOCATION_RULE:
        return LOCATION_CHECK
    return OBJECT_STORE_CHECK if rule_id.endswith(OBJECT_STORE_SUFFIX) else GX_CHECK


@dataclass(frozen=True)
class RuleAudit:
    """One rule's result: counts only, never a record's content."""

    rule: str
    requirements: list[str]
    overdue: int
    oldest_overdue_seconds: int | None  # None when nothing is overdue
    held: int | None = None  # past the window but kept by a legal hold (RET-8); None if unknown
    check: str = GX_CHECK
    gx_success: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)  # extra counts, e.g. objects listed

    def to_json(self) -> dict[str, Any]:
        data = {
            "rule": self.rule,
            "requirements": list(self.requirements),
            "overdue": self.overdue,
            "oldest_overdue_seconds": self.oldest_overdue_seconds,
            "held": self.held,
        }
        if self.check == LOCATION_CHECK:
            data["outside"] = list(self.details.get("outside", []))
        return data

    def headline(self) -> str:
        if self.check == LOCATION_CHECK:
            places = "; ".join(self.details.get("outside", []))
            return f"{self.rule} ({', '.join(self.requirements)}): {self.overdue} outside the EEA: {places}"
        noun = "object" if self.check == OBJECT_STORE_CHECK else "record"
        plural = "" if self.overdue == 1 else "s"
        oldest = human_duration(self.oldest_overdue_seconds or 0)
        return (
            f"{self.rule} ({', '.join(self.requirements)}): {self.overdue} {noun}{plural} overdue, oldest by {oldest}"
        )


RIGHTS_RUNBOOK = f"{RUNBOOK}, 'A rights check failed'"


@dataclass(frozen=True)
class RightsAudit:
    """One rights check's result (``include/sql/audit/rights/``): how many offending rows, ids only."""

    check: str
    requirements: list[str]
    findings: int
    on_failure: str = ""  # on-call's next step, from the check's header
    gx_success: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "requirements": list(self.requirements),
            "findings": self.findings,
            "on_failure": self.on_failure,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RightsAudit:
        return cls(
            check=data["check"],
            requirements=list(data["requirements"]),
            findings=int(data["findings"]),
            on_failure=data.get("on_failure", ""),
        )

    def headline(self) -> str:
        plural = "" if self.findings == 1 else "s"
        return f"rights check {self.check} ({', '.join(self.requirements)}): {self.findings} finding{plural}"


@dataclass
class AuditReport:
    run_id: str
    now: datetime
    policy_version: str
    rules: list[RuleAudit]
    seconds: dict[str, float] = field(default_factory=dict)  # time per phase (setup, predicates, gx, ...)
    rights: list[RightsAudit] = field(default_factory=list)

    @property
    def overdue_total(self) -> int:
        return sum(r.overdue for r in self.rules)

    @property
    def findings_total(self) -> int:
        """Offending rows of the rights checks, all together."""
        return sum(r.findings for r in self.rights)

    @property
    def rights_failed(self) -> list[RightsAudit]:
        return [r for r in self.rights if r.findings > 0]

    @property
    def failed(self) -> bool:
        """Anything past its window, or any rights check with a finding: the run must fail."""
        return self.overdue_total > 0 or self.findings_total > 0

    @property
    def rules_over(self) -> list[RuleAudit]:
        return [r for r in self.rules if r.overdue > 0]

    def rule(self, rule_id: str) -> RuleAudit:
        for result in self.rules:
            if result.rule == rule_id:
                return result
        raise UnknownRule(rule_id, f"of audit {self.run_id}", [r.rule for r in self.rules])

    def to_json(self) -> dict[str, Any]:
        return {
            "overdue_total": self.overdue_total,
            "rules": [r.to_json() for r in self.rules],
            "rights_findings_total": self.findings_total,
            "rights": [r.to_json() for r in self.rights],
            "run_id": self.run_id,
            "now": iso(self.now),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], *, policy_version: str = "") -> AuditReport:
        """Rebuild a report from ``to_json`` (e.g. an XCom), enough to format and enforce it."""
        rules = [
            RuleAudit(
                rule=r["rule"],
                requirements=list(r["requirements"]),
                overdue=int(r["overdue"]),
                oldest_overdue_seconds=r.get("oldest_overdue_seconds"),
                held=r.get("held"),
                check=check_of(r["rule"]),
                details={"outside": list(r["outside"])} if "outside" in r else {},
            )
            for r in data["rules"]
        ]
        return cls(
            run_id=data.get("run_id", ""),
            now=parse_instant(data["now"]),
            policy_version=policy_version,
            rules=rules,
            rights=[RightsAudit.from_json(r) for r in data.get("rights", [])],
        )

    def format_table(self) -> str:
        """A table for people: rule, requirements, overdue, oldest overdue (human), held."""
        header = ("rule", "requirements", "overdue", "oldest overdue", "held")
        rows = [
            (
                r.rule,
                ", ".join(r.requirements),
                str(r.overdue),
                human_duration(r.oldest_overdue_seconds) if r.oldest_overdue_seconds is not None else "-",
                "-" if r.held is None else str(r.held),
            )
            for r in self.rules
        ]
        widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
        right = {2, 4}

        def line(cells: tuple[str, ...]) -> str:
            return "  ".join(
                c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(cells)
            ).rstrip()

        out = [
            f"retention audit {self.run_id} as of {iso(self.now)}",
            line(header),
            line(tuple("-" * w for w in widths)),
        ]
        out += [line(row) for row in rows]
        over = self.rules_over
        if over:
            out.append(f"OVERDUE: {self.overdue_total} in {len(over)} rule(s)")
        else:
            out.append("nothing is past its window")
        out += self._rights_table()
        return "\n".join(out)

    def _rights_table(self) -> list[str]:
        if not self.rights:
            return []
        width = max(len("rights check"), *(len(r.check) for r in self.rights))
        out = ["", f"{'rights check'.ljust(width)}  requirements  findings"]
        out += [f"{r.check.ljust(width)}  {', '.join(r.requirements)}  {r.findings}" for r in self.rights]
        failed = self.rights_failed
        out.append(
            f"RIGHTS: {self.findings_total} finding(s) in {len(failed)} check(s)"
            if failed
            else "every rights check holds"
        )
        return out

    def failure_message(self) -> str:
        over = self.rules_over
        if not over:
            if self.rights_failed:
                return "\n".join(self._rights_failure())
            return f"retention audit {self.run_id} as of {iso(self.now)}: nothing is past its window"
        lines = [
            f"retention audit {self.run_id} as of {iso(self.now)}: {self.overdue_total} overdue in {len(over)} rule(s):"
        ]
        lines += [f"  - {r.headline()}" for r in over]
        if any(r.check == LOCATION_CHECK for r in over):
            lines.append(
                "SEC-3: personal data is outside the EEA: move the bucket (or correct the policy's declared "
                f"database location) before anything else; see {RUNBOOK}, 'Data outside the EEA'."
            )
        lines.append(
            "What to do: run the retention sweep for these rules (DAG retention_sweep, or "
            f"'governance sweep --rule RULE --now {iso(self.now)}'), then audit again; objects without a "
            f"record are removed by the sweep's object purge. If the sweep ran and they remain, see {RUNBOOK}."
        )
        if self.rights_failed:
            lines += self._rights_failure()
        return "\n".join(lines)

    def _rights_failure(self) -> list[str]:
        """Each failed rights check with its count and on-call's next step (ids and counts only)."""
        failed = self.rights_failed
        lines = [
            f"retention audit {self.run_id} as of {iso(self.now)}: {self.findings_total} finding(s) in "
            f"{len(failed)} rights check(s):"
        ]
        for r in failed:
            lines.append(f"  - {r.headline()}")
            lines.append(f"    What to do: {r.on_failure or 'see ' + RIGHTS_RUNBOOK}")
        lines.append(
            "The findings' ids (request, table, record key; no personal data) are in the check's SQL output: run "
            f"the file under include/sql/audit/rights/ as the auditor; see {RIGHTS_RUNBOOK}."
        )
        return lines

    def raise_if_overdue(self) -> None:
        """Raise ``AuditFailed`` when anything is overdue or a rights check found something."""
        if self.failed:
            raise AuditFailed(self)


def human_duration(seconds: int | float) -> str:
    """'1d 23h', '5h 3m', '42s': the two largest units, for on-call reading (rounded down)."""
    seconds = int(seconds)
    if seconds < 0:
        return "-" + human_duration(-seconds)
    units = (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))
    values = []
    for name, size in units:
        value, seconds = divmod(seconds, size)
        values.append((value, name))
    first = next((i for i, (value, _) in enumerate(values) if value), len(values) - 1)
    return " ".join(f"{value}{name}" for value, name in values[first : first + 2] if value) or "0s"
