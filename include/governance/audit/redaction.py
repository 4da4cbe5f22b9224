"""What of a failure the audit may repeat in its own errors: the first line, quoted values blanked.

A database or S3 error can quote a value of the row it failed on, and that value could be personal
data; the audit's messages name files, rules and counts only.
"""

from __future__ import annotations

import re

_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")


def safe_error(message: str | None) -> str:
    """The first line of an error, with quoted values blanked (they could be personal data)."""
    first = (message or "").strip().splitlines()[0] if (message or "").strip() else "unknown error"
    return _QUOTED.sub("'…'", first)[:300]
