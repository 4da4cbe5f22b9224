"""The erasure ledger outside the database (ERA-1): one JSON object per completed erasure, in the
bucket ``object_store.erasure_ledger_bucket`` under S3 Object Lock in COMPLIANCE mode, so that a
restore from a backup, which rolls the database back, cannot roll it back too.

An entry names the person only as the ledger does (account ids and e-mail pseudonyms from
``governance.erasure_subjects``, never an address), with the request id, the erasure's instant,
the categories the person kept (RET-7; empty for a full erasure), the policy version and, with an
evidence key, an HMAC-SHA256 (as the evidence anchors, SEC-1). Keys sort by instant
(``erasures/YYYY/MM/DD/<stamp>-request-<id>.json``), so ``read_entries(since)`` lists from
``since`` on with StartAfter. ``governance.erasure.replay`` applies them again.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import botocore.exceptions
from psycopg2.extensions import connection

from governance.anchors import evidence_key, mac_of
from governance.db import transaction
from governance.errors import ErasureFailed
from governance.objectstore import locked_bucket_mode, put_locked, s3_error_code
from governance.policy import Policy
from governance.windows import as_utc

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

FORMAT = "governance-erasure-ledger/1"
PREFIX = "erasures/"
RUNBOOK = "docs/runbook.md 'Restoring the database from a backup: replay the erasures'"
READERS = 16  # parallel GETs when reading entries


@dataclass(frozen=True)
class LedgerEntry:
    """One completed erasure, as the ledger names its person (pseudonyms, no personal data)."""

    request_id: int
    kind: str
    erased_at: str  # ISO 8601, UTC, microseconds
    account_ids: list[int]
    email_sha256s: list[str]
    keep_categories: list[str]
    policy_version: str | None = None
    mac: str | None = None

    def payload(self) -> bytes:
        """The canonical bytes the MAC covers: every field but the MAC."""
        fields = {k: v for k, v in dataclasses.asdict(self).items() if k != "mac"}
        return json.dumps({"format": FORMAT, **fields}, sort_keys=True, separators=(",", ":")).encode()

    def signed(self, key: bytes | None) -> LedgerEntry:
        return dataclasses.replace(self, mac=None if key is None else mac_of(key, self.payload()))

    def mac_ok(self, key: bytes) -> bool:
        return self.mac is not None and hmac.compare_digest(self.mac, mac_of(key, self.payload()))

    def instant(self) -> datetime:
        return datetime.fromisoformat(self.erased_at.replace("Z", "+00:00"))

    def object_key(self) -> str:
        return f"{key_prefix(self.instant())}-request-{self.request_id:012d}.json"

    def to_bytes(self) -> bytes:
        data = {"format": FORMAT, **dataclasses.asdict(self), "mac_algorithm": "HMAC-SHA256" if self.mac else None}
        return json.dumps(data, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, body: bytes) -> LedgerEntry:
        data = json.loads(body)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError("not an erasure ledger entry")
        return cls(**{f.name: data.get(f.name, f.default) for f in dataclasses.fields(cls)})


def key_prefix(moment: datetime) -> str:
    """``erasures/YYYY/MM/DD/YYYYMMDDTHHMMSSffffffZ``: entries at or after ``moment`` sort after it."""
    utc = as_utc(moment)
    return f"{PREFIX}{utc:%Y/%m/%d}/{utc:%Y%m%dT%H%M%S%f}Z"


def _error(request_id: int, bucket: str, cause: str) -> ErasureFailed:
    return ErasureFailed(
        f"erasure of request {request_id}: its erasure ledger entry could not be written to bucket {bucket!r} "
        f"(object_store.erasure_ledger_bucket: {cause}); the request stays in progress; fix the bucket and run "
        f"`governance request erase {request_id}` again (see {RUNBOOK})"
    )


def entry_of(
    conn: connection, policy: Policy, request_id: int, *, now: datetime, keep_categories: Collection[str] = ()
) -> LedgerEntry:
    """The ledger entry of a request's erasure, from the ledger's and the erasure's pseudonyms."""
    with transaction(conn, read_only=True) as cur:
        cur.execute(
            "SELECT r.kind, ARRAY(SELECT DISTINCT a FROM unnest(coalesce(s.account_ids, '{}') || r.account_id) a "
            "WHERE a IS NOT NULL ORDER BY a), ARRAY(SELECT DISTINCT e FROM unnest(coalesce(s.email_sha256s, '{}') "
            "|| r.email_sha256) e WHERE e IS NOT NULL ORDER BY e) FROM governance.subject_requests r "
            "LEFT JOIN governance.erasure_subjects s USING (request_id) WHERE r.request_id = %s",
            (request_id,),
        )
        row = cur.fetchone()
    assert row is not None, "the request was fetched before"
    return LedgerEntry(
        request_id=request_id,
        kind=str(row[0]),
        erased_at=as_utc(now).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        account_ids=[int(a) for a in row[1]],
        email_sha256s=[str(e) for e in row[2]],
        keep_categories=sorted(keep_categories),
        policy_version=policy.version or None,
    )


def write_entry(
    conn: connection,
    s3: S3Client | None,
    policy: Policy,
    request_id: int,
    *,
    now: datetime,
    keep_categories: Collection[str] = (),
    key: bytes | None = None,
) -> LedgerEntry | None:
    """Write the request's entry (a new locked object); None when the policy names no ledger bucket.
    ``key``: the evidence key (default: $GOVERNANCE_EVIDENCE_KEY). Failing, ``ErasureFailed``."""
    store = policy.object_store
    bucket = store.erasure_ledger_bucket
    if not bucket:
        return None
    if s3 is None:
        raise _error(request_id, bucket, "no object store client")
    entry = entry_of(conn, policy, request_id, now=now, keep_categories=keep_categories)
    entry = entry.signed(key if key is not None else evidence_key())
    retain_until = as_utc(now) + timedelta(days=store.erasure_ledger_retention_days)
    try:
        mode = locked_bucket_mode(s3, bucket, store.erasure_ledger_retention_days)
        if mode is not None:
            raise _error(request_id, bucket, f"no Object Lock in COMPLIANCE mode, found {mode}; name a new bucket")
        put_locked(s3, bucket, entry.object_key(), entry.to_bytes(), retain_until)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        if s3_error_code(exc) != "PreconditionFailed":  # the same entry, written by an earlier run
            raise _error(request_id, bucket, s3_error_code(exc)) from None
    return entry


def read_entries(s3: S3Client, bucket: str, since: datetime) -> list[tuple[str, LedgerEntry | None]]:
    """(object key, entry) of every entry at or after ``since``, oldest first; None for an object
    that is not an entry. A missing bucket has none."""
    keys: list[str] = []
    try:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX, StartAfter=key_prefix(since))
        for page in pages:
            keys += [item["Key"] for item in page.get("Contents", [])]
    except botocore.exceptions.ClientError as exc:
        if s3_error_code(exc) == "NoSuchBucket":
            return []
        raise

    def get(object_key: str) -> tuple[str, LedgerEntry | None]:
        body = s3.get_object(Bucket=bucket, Key=object_key)["Body"].read()
        try:
            return object_key, LedgerEntry.from_bytes(body)
        except (ValueError, TypeError):
            return object_key, None

    with ThreadPoolExecutor(max_workers=READERS) as pool:
        found = list(pool.map(get, sorted(keys)))
    since_utc = as_utc(since)
    return [(k, e) for k, e in found if e is None or e.instant() >= since_utc]


def as_json(entry: LedgerEntry) -> dict[str, Any]:
    """An entry's fields for output: ids and counts only (the pseudonyms are counted, not shown)."""
    return {
        "request_id": entry.request_id,
        "erased_at": entry.erased_at,
        "accounts": len(entry.account_ids),
        "email_pseudonyms": len(entry.email_sha256s),
        "keep_categories": entry.keep_categories,
    }
