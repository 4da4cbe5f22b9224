"""Evidence anchors: the chain head kept outside the database, where no database role can reach it.

After every run ``anchor_evidence`` writes one JSON object (head entry id, head hash, number of
entries, time, and an HMAC-SHA256 with the evidence key) to a bucket with S3 Object Lock in
COMPLIANCE mode: nobody can delete or overwrite it during its retention, not even the account's
root. ``verify_with_anchors`` checks the table against every anchor, which exposes what the
hash chain alone cannot: entries removed from the end, a chain rewritten and re-hashed, a wiped
table (SEC-1; docs/runbook.md "Evidence chain broken"). The key never reaches the database, the
anchors or a message; without one, anchors are written and checked but reported unauthenticated.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import botocore.exceptions

from governance.errors import AnchorError, SettingsError
from governance.evidence import Problem, Verification, verify
from governance.objectstore import iter_keys, locked_bucket_mode, put_locked, s3_error_code
from governance.windows import iso

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from psycopg2.extensions import connection

EVIDENCE_KEY_ENV = "GOVERNANCE_EVIDENCE_KEY"
AIRFLOW_EVIDENCE_KEY = "governance_evidence_key"  # an Airflow variable, or a connection's password
MIN_KEY_LENGTH = 32
FORMAT = "governance-evidence-anchor/1"
PREFIX = "evidence-anchors/"
RUNBOOK = "docs/runbook.md 'Evidence anchors'"


def evidence_key(secret: str | None = None) -> bytes | None:
    """The evidence key from ``secret`` or $GOVERNANCE_EVIDENCE_KEY; None when neither is set."""
    text = secret if secret is not None else os.environ.get(EVIDENCE_KEY_ENV, "")
    if not text:
        return None
    if len(text) < MIN_KEY_LENGTH:
        raise SettingsError(
            f"the evidence key ({EVIDENCE_KEY_ENV} or the Airflow variable/connection {AIRFLOW_EVIDENCE_KEY}) "
            f"is shorter than {MIN_KEY_LENGTH} characters; generate one with 'openssl rand -hex 32'"
        )
    return text.encode()


@dataclass(frozen=True)
class Anchor:
    """One anchor: the chain head as the database showed it at ``anchored_at``."""

    database: str
    head_entry_id: int | None
    head_hash: str
    entries: int
    anchored_at: str
    run_id: str = ""
    mac: str | None = None

    def payload(self) -> bytes:
        """The canonical bytes the MAC covers: every field but the MAC."""
        fields = {k: v for k, v in dataclasses.asdict(self).items() if k != "mac"}
        return json.dumps({"format": FORMAT, **fields}, sort_keys=True, separators=(",", ":")).encode()

    def signed(self, key: bytes | None) -> Anchor:
        return dataclasses.replace(self, mac=None if key is None else mac_of(key, self.payload()))

    def mac_ok(self, key: bytes) -> bool:
        return self.mac is not None and hmac.compare_digest(self.mac, mac_of(key, self.payload()))

    def object_key(self) -> str:
        stamp = self.anchored_at.replace("-", "").replace(":", "").replace(".", "")
        return f"{PREFIX}{self.database}/{stamp}-{self.head_entry_id or 0:012d}.json"

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **dataclasses.asdict(self), "mac_algorithm": "HMAC-SHA256" if self.mac else None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Anchor:
        if data.get("format") != FORMAT:
            raise ValueError(f"not an evidence anchor (format {data.get('format')!r})")
        return cls(**{f.name: data.get(f.name, f.default) for f in dataclasses.fields(cls)})


def mac_of(key: bytes, payload: bytes) -> str:
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


def _s3_error(action: str, bucket: str, exc: Exception) -> AnchorError:
    return AnchorError(f"evidence anchor: {action} in bucket {bucket!r} failed ({s3_error_code(exc)}); see {RUNBOOK}")


def ensure_anchor_bucket(s3: S3Client, bucket: str, retention_days: int) -> None:
    """Create the bucket with Object Lock in COMPLIANCE mode, or check that an existing one has it."""
    try:
        mode = locked_bucket_mode(s3, bucket, retention_days)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise _s3_error("checking Object Lock", bucket, exc) from None
    if mode is not None:
        raise SettingsError(
            f"bucket {bucket!r} (object_store.evidence_anchor_bucket) has no Object Lock in COMPLIANCE mode "
            f"(found {mode}): anchors there could be deleted. Name a new bucket and let "
            f"'governance evidence anchor' create it; see {RUNBOOK}"
        )


def current_head(conn: connection) -> Anchor:
    """The chain head, the entry count and the database's name, read in one snapshot."""
    with conn.cursor() as cur:  # one statement: one snapshot
        cur.execute(
            "SELECT current_database(), h.last_entry_id, h.last_hash, (SELECT count(*) FROM governance.evidence) "
            "FROM governance.evidence_head h WHERE h.singleton"
        )
        row = cur.fetchone()
    if row is None:
        raise AnchorError(f"the chain head (governance.evidence_head) is missing; see {RUNBOOK}")
    return Anchor(database=row[0], head_entry_id=row[1], head_hash=row[2], entries=row[3], anchored_at="")


def anchor_evidence(
    conn: connection,
    s3: S3Client,
    key: bytes | None,
    bucket: str,
    *,
    run_id: str = "",
    retention_days: int = 3650,
    now: datetime | None = None,
) -> Anchor:
    """Write the chain head as a new, locked object; never overwrites one (SEC-1)."""
    moment = now or datetime.now(UTC)
    anchor = dataclasses.replace(current_head(conn), anchored_at=iso(moment), run_id=run_id).signed(key)
    ensure_anchor_bucket(s3, bucket, retention_days)
    try:
        body = json.dumps(anchor.to_dict(), sort_keys=True).encode()
        put_locked(s3, bucket, anchor.object_key(), body, moment + timedelta(days=retention_days))
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise _s3_error(f"writing {anchor.object_key()}", bucket, exc) from None
    return anchor


def read_anchors(s3: S3Client, bucket: str, database: str) -> list[tuple[str, Anchor | None]]:
    """Every anchor of ``database`` in the bucket, oldest first; None for an object that is not one."""
    found: list[tuple[str, Anchor | None]] = []
    try:
        for object_key in sorted(iter_keys(s3, bucket, f"{PREFIX}{database}/")):
            body = s3.get_object(Bucket=bucket, Key=object_key)["Body"].read()
            try:
                found.append((object_key, Anchor.from_dict(json.loads(body))))
            except (ValueError, TypeError):
                found.append((object_key, None))
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchBucket":
            return []
        raise _s3_error("reading the anchors", bucket, exc) from None
    except botocore.exceptions.BotoCoreError as exc:
        raise _s3_error("reading the anchors", bucket, exc) from None
    return found


def _table_state(conn: connection, ids: list[int]) -> tuple[int, int, dict[int, tuple[str, int]]]:
    """(entries, last entry id, {anchored id: (its hash, entries up to it)}) in one snapshot."""
    with conn.cursor() as cur:  # anchored entries never change; later appends only add
        cur.execute("SELECT count(*), coalesce(max(entry_id), 0) FROM governance.evidence")
        count, last = cur.fetchone() or (0, 0)
        cur.execute(
            "SELECT e.entry_id, e.entry_hash, (SELECT count(*) FROM governance.evidence x WHERE x.entry_id <= e.entry_id) "
            "FROM governance.evidence e WHERE e.entry_id = ANY(%s)",
            (ids,),
        )
        found = {row[0]: (row[1], row[2]) for row in cur.fetchall()}
    return count, last, found


def _anchor_problem(anchor: Anchor, name: str, last: int, found: dict[int, tuple[str, int]]) -> str | None:
    entry = anchor.head_entry_id
    if entry is None or anchor.entries == 0:
        return None
    if entry > last:
        return (
            f"anchor {name} recorded entry {entry}, beyond the table's last entry {last}: "
            "entries were removed from the end (truncation)"
        )
    if entry not in found:
        return f"entry {entry} of anchor {name} is missing: entries were deleted"
    entry_hash, upto = found[entry]
    if entry_hash != anchor.head_hash:
        return f"entry {entry} no longer has the hash anchor {name} recorded: the chain was rewritten"
    if upto != anchor.entries:
        return f"anchor {name} recorded {anchor.entries} entries up to entry {entry}, the table has {upto}: entries deleted"
    return None


def check_anchors(
    conn: connection, anchors: list[tuple[str, Anchor | None]], key: bytes | None
) -> tuple[list[Problem], list[str]]:
    """Problems (bad MAC, truncation, rewriting, a wiped table) and notes (what was checked)."""
    problems: list[Problem] = []
    trusted: list[tuple[str, Anchor]] = []
    unsigned = 0
    for name, anchor in anchors:
        if anchor is None:
            problems.append(Problem(None, f"object {name} in the anchor bucket is not an evidence anchor"))
        elif key is not None and anchor.mac is not None and not anchor.mac_ok(key):
            problems.append(
                Problem(anchor.head_entry_id, f"anchor {name}: MAC does not match (altered, forged, or another key)")
            )
        else:
            unsigned += anchor.mac is None
            trusted.append((name, anchor))
    ids = [a.head_entry_id for _, a in trusted if a.head_entry_id is not None]
    count, last, found = _table_state(conn, ids)
    claimed = [(name, a) for name, a in trusted if a.entries]
    if count == 0 and claimed:  # a wiped table: reported once, against the latest anchor
        name, anchor = claimed[-1]
        problems.append(
            Problem(
                anchor.head_entry_id,
                f"the table is empty, but anchor {name} recorded {anchor.entries} entries up to entry "
                f"{anchor.head_entry_id}: wiped",
            )
        )
        claimed = []
    for name, anchor in claimed:
        problem = _anchor_problem(anchor, name, last, found)
        if problem:
            problems.append(Problem(anchor.head_entry_id, problem))
    return problems, _notes(trusted, unsigned, key)


def _notes(trusted: list[tuple[str, Anchor]], unsigned: int, key: bytes | None) -> list[str]:
    if not trusted:
        return ["not anchored: no anchor of this database yet; run 'governance evidence anchor'"]
    latest = trusted[-1][1]
    notes = [f"anchors: {len(trusted)} checked, the latest at entry {latest.head_entry_id} ({latest.anchored_at})"]
    if key is None:
        notes.append(
            f"UNAUTHENTICATED: no evidence key configured ({EVIDENCE_KEY_ENV}, or the Airflow variable "
            f"{AIRFLOW_EVIDENCE_KEY}); the anchors' MACs were not checked"
        )
    elif unsigned:
        notes.append(f"UNAUTHENTICATED: {unsigned} anchor(s) carry no MAC (written without a key)")
    else:
        notes.append("authenticated: every anchor's HMAC-SHA256 matches the evidence key")
    return notes


def verify_with_anchors(conn: connection, s3: S3Client | None, bucket: str | None, key: bytes | None) -> Verification:
    """The hash chain (``evidence.verify``) and, with a bucket, the table against every anchor."""
    chain = verify(conn)
    if s3 is None or not bucket:
        return dataclasses.replace(
            chain, notes=["not anchored: the policy names no object_store.evidence_anchor_bucket"]
        )
    anchors = read_anchors(s3, bucket, current_head(conn).database)
    problems, notes = check_anchors(conn, anchors, key)
    return dataclasses.replace(chain, problems=[*chain.problems, *problems], notes=notes)
