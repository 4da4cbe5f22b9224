"""Removing CAT-5 photos and texts from the object store (RET-5a..d, RET-9): every version goes.

DeleteObjects takes at most 1,000 keys a call, and answers per key: a key can fail (object lock,
legal hold, permissions) while the others go. Like the Amazon provider's
``S3Hook.delete_objects`` we chunk by 1,000 and read the per-key ``Errors``; unlike it we never
log the keys (an object key can carry a file name, CONTRIBUTING.md habit 6), and on a versioned
bucket we delete every version and delete marker of each key (``list_object_versions``),
because a plain delete there only adds a delete marker and the bytes stay.

Takes a boto3 S3 client, so the library does not import Airflow (in a DAG the client comes
from ``S3Hook.get_conn()``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import botocore.exceptions

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

DELETE_OBJECTS_LIMIT = 1000  # keys per DeleteObjects request (S3 API limit)
LISTING_THREADS = 8

ObjectRef = tuple[str, str]  # (bucket, key)


@dataclass
class PurgeOutcome:
    """Which objects are entirely gone, which are not, and why (error codes, never keys in text)."""

    gone: set[ObjectRef] = field(default_factory=set)
    failed: dict[ObjectRef, str] = field(default_factory=dict)
    versions_deleted: int = 0

    @property
    def error_codes(self) -> dict[str, int]:
        return dict(Counter(self.failed.values()))


def purge_objects(
    s3: S3Client, objects: Iterable[ObjectRef], *, versioned_cache: dict[str, bool] | None = None
) -> PurgeOutcome:
    """Delete each (bucket, key) with all its versions; a key is ``gone`` only when nothing of it
    failed. A missing key or bucket counts as gone (a rerun after a crash finds them so)."""
    outcome = PurgeOutcome()
    cache = versioned_cache if versioned_cache is not None else {}
    by_bucket: dict[str, list[str]] = defaultdict(list)
    for bucket, key in dict.fromkeys(objects):
        by_bucket[bucket].append(key)
    for bucket, keys in by_bucket.items():
        to_delete: list[ObjectIdentifierTypeDef]
        try:
            if bucket not in cache:
                cache[bucket] = _is_versioned(s3, bucket)
            if cache[bucket]:
                to_delete = _all_versions(s3, bucket, keys)
            else:
                to_delete = [{"Key": k} for k in keys]
        except botocore.exceptions.ClientError as exc:
            code = _code(exc)
            if code == "NoSuchBucket":
                outcome.gone.update((bucket, k) for k in keys)
                continue
            outcome.failed.update({(bucket, k): code for k in keys})
            continue
        failed_keys = _delete(s3, bucket, to_delete, outcome)
        for key in keys:
            if key in failed_keys:
                outcome.failed[(bucket, key)] = failed_keys[key]
            else:
                outcome.gone.add((bucket, key))
    return outcome


def objects_left(s3: S3Client, objects: Iterable[ObjectRef]) -> set[ObjectRef]:
    """Which of these (bucket, key) still have a version or delete marker, only listing (nothing is
    deleted). A missing bucket has none; a bucket that cannot be listed counts as having them all."""
    left: set[ObjectRef] = set()
    by_bucket: dict[str, list[str]] = defaultdict(list)
    for bucket, key in dict.fromkeys(objects):
        by_bucket[bucket].append(key)
    for bucket, keys in by_bucket.items():
        try:
            _is_versioned(s3, bucket)  # one call finds a missing bucket, before a listing per key
            left.update((bucket, v["Key"]) for v in _all_versions(s3, bucket, keys))
        except botocore.exceptions.ClientError as exc:
            if _code(exc) != "NoSuchBucket":
                left.update((bucket, k) for k in keys)  # unknown: the caller takes the tombstone's path
    return left


def _is_versioned(s3: S3Client, bucket: str) -> bool:
    status = s3.get_bucket_versioning(Bucket=bucket).get("Status")
    return status in ("Enabled", "Suspended")  # suspended buckets keep their old versions


def _all_versions(s3: S3Client, bucket: str, keys: list[str]) -> list[ObjectIdentifierTypeDef]:
    """Every version and delete marker of exactly these keys (a prefix listing per key, in threads)."""

    def versions_of(key: str) -> list[ObjectIdentifierTypeDef]:
        found: list[ObjectIdentifierTypeDef] = []
        paginator = s3.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=bucket, Prefix=key):
            for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
                if item["Key"] == key:  # the prefix also matches longer keys
                    found.append({"Key": key, "VersionId": item["VersionId"]})
        return found

    with ThreadPoolExecutor(max_workers=min(LISTING_THREADS, max(1, len(keys)))) as pool:
        return [v for versions in pool.map(versions_of, keys) for v in versions]


def _delete(s3: S3Client, bucket: str, objects: list[ObjectIdentifierTypeDef], outcome: PurgeOutcome) -> dict[str, str]:
    """DeleteObjects in chunks of 1,000; returns key -> error code for every key that failed."""
    failed: dict[str, str] = {}
    for start in range(0, len(objects), DELETE_OBJECTS_LIMIT):
        chunk = objects[start : start + DELETE_OBJECTS_LIMIT]
        try:
            response = s3.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": False})
        except botocore.exceptions.ClientError as exc:
            code = _code(exc)
            if code == "NoSuchBucket":
                continue
            failed.update({o["Key"]: code for o in chunk})
            continue
        outcome.versions_deleted += len(response.get("Deleted", []))
        for error in response.get("Errors", []):
            failed[error["Key"]] = error.get("Code") or "Unknown"
    return failed


def _code(exc: botocore.exceptions.ClientError) -> str:
    return exc.response.get("Error", {}).get("Code") or type(exc).__name__
