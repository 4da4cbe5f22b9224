"""Every exception the library raises on purpose, under one base the CLI and the DAGs catch.

``GovernanceError`` is what a user can act on: a message that names the setting, file, rule or
record id to fix and, where one exists, the runbook section. Anything else that escapes the
library is a bug and is reported as one (a traceback), never as bad input. ``retryable`` tells a
scheduler whether running the same thing again may help. Messages carry ids and counts only,
never personal data.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from governance.audit.report import AuditReport


class GovernanceError(Exception):
    """Base of every error the library raises on purpose."""

    retryable: bool = False
    # The CLI's exit code for this kind of error (2 is argparse's own for a bad flag).
    exit_code: ClassVar[int] = 1


class SettingsError(GovernanceError):
    """A missing or unusable setting; the message names the flag, variable or connection."""

    exit_code = 2


class InfrastructureError(SettingsError):
    """A service (the database, the object store) that cannot be reached or refused us: the message
    names the component, the cause and the runbook section. A retry may help once it is back."""

    retryable = True
    exit_code = 4


class PolicyError(GovernanceError):
    """A policy file that cannot be enforced. ``problems`` are lines naming file, rule and field."""

    exit_code = 2

    def __init__(self, path: Path | str, problems: list[str]):
        self.path = str(path)
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"policy file {self.path} is invalid ({len(problems)} problem(s)):\n{lines}")


class UnknownRule(GovernanceError):
    """A rule id the policy does not have; the message lists the ones it has."""

    exit_code = 2

    def __init__(self, rule_id: str, policy_name: str, known: list[str]):
        self.rule_id = rule_id
        super().__init__(f"no rule {rule_id!r} in policy {policy_name}; rules: {', '.join(known)}")


class HoldError(GovernanceError):
    """A hold that cannot be added or lifted as asked; the message says what to fix."""

    exit_code = 2


class AuditError(GovernanceError):
    """The audit could not be carried out (a query or the object listing failed); nothing was recorded."""


class AuditInconsistent(AuditError):
    """GX and the cross-check disagree: the data changed during the audit. Run it again."""

    retryable = True


class AuditFailed(GovernanceError):
    """Records or objects are past their window. The message names rules and counts only."""

    def __init__(self, report: AuditReport):
        self.report = report
        super().__init__(report.failure_message())
