"""Who is in an advertising audience (TP-1, TP-3; MKT-1, OBJ-1, CON-1, RES-1): the reviewed SQL
under include/sql/audiences/ (its README says who is in and why) and the parameters it takes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from governance.policy.audiences import Audience
from governance.policy.base import SQL_DIR

_DIR = SQL_DIR / "audiences"
EXPORT_COPY = (_DIR / "export.sql").read_text(encoding="utf-8")
TO_TELL = (_DIR / "to_tell.sql").read_text(encoding="utf-8")
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
