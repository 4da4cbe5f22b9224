"""The advertising audiences (TP-1, TP-3): the policy's ``audiences:``. Each names the recipient
that receives the hashed contact details, the purpose (resting on consent, CON-1) whose consents
and switch-offs decide who is in it, how many days before a person's first inclusion they are told
(TP-3: ``notice_days``), the notice's template under include/templates/, the object-store drop
the file is written to, and how long a file is kept there (``keep_files``: a decision's window,
RET-9; the DAG purges older files). Checked against the registry, the purposes, the decisions and
the templates at load; the drop's bucket is among the policy's buckets (SEC-3 location check).
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from governance.policy.base import INCLUDE_DIR, REQUIREMENT_ID, RuleId, StrictModel
from governance.policy.purposes import Purpose, PurposeId
from governance.policy.recipients import RecipientId
from governance.policy.rules import DecisionRef

TEMPLATES_DIR = INCLUDE_DIR / "templates"
LANGUAGES = ("nb", "en")


class Drop(StrictModel):
    """Where the audience files are written: a bucket, and a prefix ending in '/'."""

    bucket: str = Field(min_length=3)
    prefix: str = Field(pattern=r"^[a-z0-9][a-z0-9/_-]*/$")


class Audience(StrictModel):
    """One audience sent to one recipient for one purpose (TP-1), after a notice (TP-3)."""

    id: RuleId
    recipient: RecipientId
    purpose: PurposeId
    requirements: list[str] = Field(min_length=1)
    notice_days: int = Field(ge=1, le=365)
    notice_template: str = Field(pattern=r"^[a-z0-9_]+$")
    drop: Drop
    keep_files: DecisionRef  # RET-9: a decision with a window


def audience_problems(
    audiences: Sequence[Audience], recipient_ids: set[str], purposes: Sequence[Purpose], windows: set[str]
) -> list[str]:
    """The audiences against the registry, the purposes and the decisions with a window (``windows``)."""
    ids = [a.id for a in audiences]
    problems = [f"audiences: audience id {i!r} is used twice" for i in sorted({i for i in ids if ids.count(i) > 1})]
    by_id = {p.id: p for p in purposes}
    for audience in audiences:
        where = f"audience {audience.id!r}"
        bad = [r for r in audience.requirements if not REQUIREMENT_ID.match(r)]
        if bad:
            problems.append(f"{where}, field 'requirements': {bad} are not requirement IDs such as 'TP-3'")
        if audience.recipient not in recipient_ids:
            problems.append(f"{where}, field 'recipient': {audience.recipient!r} is not in the recipients registry")
        purpose = by_id.get(audience.purpose)
        if purpose is None:
            problems.append(f"{where}, field 'purpose': {audience.purpose!r} is not in 'purposes'")
        elif not purpose.consent:
            problems.append(f"{where}, field 'purpose': {audience.purpose!r} does not rest on consent (consent: true)")
        elif audience.recipient not in purpose.recipients:
            problems.append(
                f"{where}, field 'recipient': purpose {audience.purpose!r} does not name {audience.recipient!r} "
                "among its recipients; add it there (TP-1)"
            )
        if audience.keep_files.decision not in windows:
            problems.append(
                f"{where}, field 'keep_files': decision {audience.keep_files.decision!r} has no window in 'decisions'"
            )
        for language in LANGUAGES:
            if not (TEMPLATES_DIR / f"{audience.notice_template}.{language}.txt").is_file():
                problems.append(
                    f"{where}, field 'notice_template': {audience.notice_template}.{language}.txt not found "
                    f"under {TEMPLATES_DIR}"
                )
    return problems
