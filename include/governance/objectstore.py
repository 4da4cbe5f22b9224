"""The object store (S3 or any S3-compatible endpoint) where CAT-5 photos and texts live."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import boto3
import botocore.exceptions
from botocore.config import Config

from governance.errors import InfrastructureError, SettingsError
from governance.settings import S3_ENDPOINT_ENV, UNREACHABLE_SECTION, Settings, redact

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.literals import BucketLocationConstraintType


def make_client(settings: Settings) -> S3Client:
    """A boto3 S3 client for the configured endpoint (path-style, bounded retries and timeouts)."""
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.s3_region,
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 5, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
        ),
    )


# botocore's errors for "the endpoint cannot be reached" and "there are no credentials".
UNREACHABLE = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectTimeoutError,
    botocore.exceptions.NoCredentialsError,
)


class ObjectStoreUnavailable(InfrastructureError):
    """The object store cannot be reached or we have no credentials for it."""


class LazyClient:
    """Stands in for an S3 client: creates it at its first use, so work that never touches objects
    runs whatever the endpoint or the credentials (#9), and turns "cannot reach" and "no
    credentials" on a call into ``unavailable`` (an ObjectStoreUnavailable, by default) naming the
    endpoint and the runbook section, which the caller can fail one rule with."""

    def __init__(self, create: Callable[[], S3Client], unavailable: type[Exception] = ObjectStoreUnavailable):
        self._create, self._unavailable = create, unavailable
        self._client: S3Client | None = None

    def __getattr__(self, name: str) -> Any:
        if self._client is None:
            self._client = self._create()
        attribute = getattr(self._client, name)
        if not callable(attribute) or name.startswith("get_paginator"):
            return attribute
        return functools.partial(self._call, attribute)

    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except UNREACHABLE as exc:
            endpoint = self._client.meta.endpoint_url if self._client is not None else "?"
            raise self._unavailable(
                f"object store: {type(exc).__name__} at {redact(endpoint)}; rules that touch objects fail until it "
                f"answers, the others run. See {UNREACHABLE_SECTION}"
            ) from None


def check_reachable(client: S3Client, bucket: str, *, source: str = "") -> None:
    """Fail with a message naming the setting when the endpoint or the bucket cannot be reached."""
    endpoint = client.meta.endpoint_url
    where = f" (from {source})" if source else f" (set --s3-endpoint-url or {S3_ENDPOINT_ENV})"
    try:
        client.head_bucket(Bucket=bucket)
    except (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError):
        raise InfrastructureError(f"cannot reach the S3 endpoint {endpoint}{where}: is it running?") from None
    except botocore.exceptions.NoCredentialsError:
        raise InfrastructureError(
            f"S3 endpoint {endpoint}{where}: no credentials; set the governance_s3 connection or AWS_ACCESS_KEY_ID"
        ) from None
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "?")
        if code in ("404", "NoSuchBucket"):
            raise SettingsError(
                f"bucket {bucket!r} does not exist at {endpoint}{where}; create it (in an EEA region, SEC-3), or in a development install run 'governance seed'"
            ) from None
        raise InfrastructureError(f"S3 endpoint {endpoint}{where} refused HeadBucket on {bucket!r}: {code}") from None


def ensure_bucket(client: S3Client, bucket: str) -> None:
    try:
        client.head_bucket(Bucket=bucket)
    except botocore.exceptions.ClientError:
        region = cast("BucketLocationConstraintType", client.meta.region_name)
        client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})


def iter_keys(client: S3Client, bucket: str, prefix: str = "") -> Iterator[str]:
    """Every key under a prefix, page by page (1,000 per ListObjectsV2 call)."""
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            yield item["Key"]


def locked_bucket_mode(s3: S3Client, bucket: str, retention_days: int) -> str | None:
    """Create ``bucket`` with S3 Object Lock in COMPLIANCE mode (that default retention), or read an
    existing one's lock: None when it is COMPLIANCE, else the mode found ('none' without a lock).
    The evidence anchors (SEC-1) and the erasure ledger (ERA-1) keep their objects so. S3 errors
    propagate (botocore's): each caller names its own setting and runbook section."""
    try:
        s3.head_bucket(Bucket=bucket)
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
            raise
        s3.create_bucket(
            Bucket=bucket,
            CreateBucketConfiguration={"LocationConstraint": s3.meta.region_name},  # type: ignore[typeddict-item]
            ObjectLockEnabledForBucket=True,
        )
        s3.put_object_lock_configuration(
            Bucket=bucket,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": retention_days}},
            },
        )
        return None
    try:
        config = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ObjectLockConfigurationNotFoundError":
            raise
        config = {}
    mode = config.get("Rule", {}).get("DefaultRetention", {}).get("Mode")
    return None if config.get("ObjectLockEnabled") == "Enabled" and mode == "COMPLIANCE" else (mode or "none")


def put_locked(s3: S3Client, bucket: str, key: str, body: bytes, retain_until: datetime) -> None:
    """Write a new JSON object under COMPLIANCE retention until ``retain_until``; never overwrites
    one (``IfNoneMatch``: an existing key is refused with PreconditionFailed)."""
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=body,
        ContentType="application/json",
        IfNoneMatch="*",
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=retain_until,
    )


def s3_error_code(exc: Exception) -> str:
    """The S3 error code of a botocore error, or its class name (no message: it may carry a key)."""
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Code", "?"))
    return type(exc).__name__
