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
    from governance.sweep.results import RuleResult


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


class UnknownChoice(GovernanceError, ValueError):
    """A name looked up in a registry (a sweep strategy, a sweep action) that it does not have; the
    message lists the names it has."""

    exit_code = 2

    def __init__(self, kind: str, name: str, known: list[str]):
        self.name = name
        super().__init__(f"no {kind} {name!r}; valid: {', '.join(sorted(known))}")


class OptionError(GovernanceError, ValueError):
    """A sweep option outside its choices or range; the message names the option and the choices."""

    exit_code = 2


# --- the retention sweep ------------------------------------------------------------------------


class SweepError(GovernanceError):
    """A sweep that did not complete. ``retryable`` says whether running it again may help.
    Messages name rules, counts and keys only, never personal data."""

    retryable = False


class VerifyFailed(SweepError):
    """Due, unheld records left after every pass of a rule (RET-1..RET-10 not met)."""

    def __init__(self, rule_id: str, remaining: int):
        self.rule_id, self.remaining = rule_id, remaining
        super().__init__(
            f"rule {rule_id!r}: {remaining} record(s) are still due and not held after the sweep. "
            "Something keeps re-creating or changing them (a writer, a trigger) or the selection is wrong; "
            f"run 'governance plan --rule {rule_id}' and see docs/runbook.md before rerunning."
        )


# S3 error codes a retry may cure; an object lock, a legal hold on an object or a denied
# permission are not among them.
TRANSIENT_S3_CODES = {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "RequestTimeTooSkewed"}


class ObjectPurgeFailed(SweepError):
    """CAT-5 objects that could not be deleted; their rows stay 'purging' for the next sweep."""

    def __init__(self, rule_id: str, failed: int, codes: dict[str, int]):
        self.rule_id, self.failed, self.codes = rule_id, failed, codes
        self.retryable = set(codes) <= TRANSIENT_S3_CODES
        reasons = ", ".join(f"{code} x{n}" for code, n in sorted(codes.items()))
        super().__init__(
            f"rule {rule_id!r}: {failed} object(s) could not be deleted ({reasons}); their rows stay in state "
            "'purging' and the next sweep finishes them once the cause (object lock, legal hold on the object, "
            "permissions) is lifted."
        )


class BatchFailed(SweepError):
    """A batch that failed on transient database errors every time the batch retry policy allowed."""

    retryable = True


class BatchOverTime(SweepError):
    """A batch that ran past its time limit (``Options.batch_time_limit``) and was rolled back: the
    strategy that set the limit tries the same rows again in smaller batches. Never leaves a sweep."""


class AuditFailed(GovernanceError):
    """Records or objects are past their window. The message names rules and counts only."""

    def __init__(self, report: AuditReport):
        self.report = report
        super().__init__(report.failure_message())


class DependencyFailed(SweepError):
    """A rule not swept because a rule it comes ``after`` failed."""


class ObjectStoreFailed(SweepError, InfrastructureError):
    """A rule's object-store call failed (unreachable, no credentials, refused): that rule fails,
    the sweep goes on with the others (#9). Names the component, the cause and the runbook section."""

    retryable = True


class DatabaseConnectionLost(InfrastructureError):
    """The sweep's database connection was closed under it (pg_terminate_backend, a restart)."""

    def __init__(self) -> None:
        super().__init__(
            "the database connection was closed (terminated by the server?) during the sweep; what was "
            "committed stays, with its evidence; rerun the same run; see docs/runbook.md, 'Database or S3 unreachable'"
        )


class SweepFailed(SweepError):
    """Some rules of a sweep failed; ``results`` has the others, ``errors`` the failures by rule."""

    def __init__(self, results: list[RuleResult], errors: dict[str, Exception]):
        self.results, self.errors = results, errors
        self.retryable = all(getattr(e, "retryable", True) for e in errors.values())
        lines = [f"{len(errors)} rule(s) failed:"] + [f"  - {rule}: {error}" for rule, error in errors.items()]
        super().__init__("\n".join(lines))


class BreachError(GovernanceError):
    """A breach (SEC-2) that cannot be opened or moved on as asked; the message says what to fix."""

    exit_code = 2


class NoticeDeliveryError(GovernanceError):
    """The mail server could not be reached or dropped the connection while breach notices were
    sent; the notices not yet handed over are queued again. Running again may help."""

    retryable = True


class EvidenceBroken(GovernanceError):
    """``governance evidence verify`` found the chain or its anchors broken (SEC-1): an integrity
    incident, not something to retry. A distinct exit code so scripts can tell it apart."""

    exit_code = 5


class AnchorError(InfrastructureError):
    """The evidence anchor could not be written to or read from the object store (endpoint down,
    credentials, throttling). Nothing was anchored; running it again may help."""

    retryable = True


# --- data-subject requests (#10) ----------------------------------------------------------------


class RequestError(GovernanceError):
    """A data-subject request that cannot be opened or moved on as asked (REQ-1): unknown kind,
    malformed address, a duplicate of an open request, an illegal transition. The message names the
    request id and what to fix, never the person."""

    exit_code = 2


class RequestNotFound(RequestError):
    """No request with that id; see ``governance request list``."""

    def __init__(self, request_id: int):
        self.request_id = request_id
        super().__init__(f"no request {request_id}; see `governance request list`")


class ExportFailed(GovernanceError):
    """An export (ACC-1, POR-1) could not be written or delivered; nothing was marked done, so a
    rerun starts it again. ``retryable`` when the object store or mail server may come back."""

    retryable = True


class ErasureFailed(GovernanceError):
    """An erasure (ERA-1, #11) could not finish (objects that would not go), or its independent
    check found records of the person left: the request is not completed. The message names the
    request id and the tables and counts left, never the person; a rerun finishes it."""

    retryable = True


class AudienceFailed(GovernanceError):
    """An advertising audience export or its notices (TP-1, TP-3) could not be done; nothing half-done
    is recorded, so a rerun starts again. ``retryable`` when the object store or mail server may come back."""

    retryable = True


# --- the compliance report (#13) ------------------------------------------------------------------


class ReportError(GovernanceError):
    """A period report asked for wrongly (a date that does not parse, --from after --to, a period
    too long, an unknown format), or one that does not match its shipped schema. The message names
    the flag or the field to fix."""

    exit_code = 2
