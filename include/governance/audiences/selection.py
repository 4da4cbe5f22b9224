"""Who is in an advertising audience (TP-1, TP-3; MKT-1, OBJ-1, CON-1, RES-1): the reviewed SQL
under include/sql/audiences/ (its README says who is in and why) and the parameters it takes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from governance.policy.audiences import Audience
from governance.policy.base import SQL_DIR

_DIR = SQL_DIR / "audiences"


def _with_eligible(name: str) -> str:
    """A query of the directory with the shared ``eligible`` CTE (eligible.sql) in its place."""
    eligible = (_DIR / "eligible.sql").read_text(encoding="utf-8").strip()
    return (_DIR / name).read_text(encoding="utf-8").replace("{{ eligible }}", eligible)


EXPORT_COPY = _with_eligible("export.sql")
TO_TELL = _with_eligible("to_tell.sql")
REASON_COUNTS = (_DIR / "reasons.sql").read_text(encoding="utf-8")

# Every account once, under the first reason it is left out, or 'included' (the manifest's counts).
REASONS = ("deleted", "never_consented", "withdrawn", "objected", "restricted", "not_yet_told", "included")


def parameters(audience: Audience, purpose: str, now: datetime, **extra: Any) -> dict[str, Any]:
    """The queries' parameters for ``audience`` at ``now`` (TP-3: told ``notice_days`` before)."""
    return {
        "now": now,
        "purpose": purpose,
        "audience": audience.id,
        "told_before": now - timedelta(days=audience.notice_days),
        **extra,
    }
