"""A stream of bytes into one S3 object through a multipart upload, server-side encrypted (SSE-S3,
``AES256``), hashed on the way, never held whole: one part buffer, allocated once and sent from in
place, so memory stays flat whatever the size (ACC-1, POR-1). On any failure the upload is aborted,
so neither an object nor an unfinished upload is left behind; nothing is visible before completion.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Literal, cast

import botocore.exceptions

from governance.errors import ExportFailed

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

log = logging.getLogger(__name__)

PART_SIZE = 8 * 1024 * 1024  # S3 takes parts of 5 MiB to 5 GiB, the last one smaller
MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PARTS = 10_000
SSE: Literal["AES256"] = "AES256"


@dataclass(frozen=True)
class Uploaded:
    byte_size: int
    sha256: str
    parts: int


class _PartBody(io.RawIOBase):
    """A read-only, seekable view of the part buffer, so a part is sent without a copy of it."""

    def __init__(self, view: memoryview) -> None:
        super().__init__()
        self._view, self._pos = view, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        end = len(self._view) if size is None or size < 0 else min(len(self._view), self._pos + size)
        data = bytes(self._view[self._pos : max(self._pos, end)])
        self._pos += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        n = max(0, min(len(buffer), len(self._view) - self._pos))
        buffer[:n] = self._view[self._pos : self._pos + n]
        self._pos += n
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def __len__(self) -> int:
        return len(self._view)


class _Parts:
    """Fills the part buffer and sends each full part; ``finish`` sends the rest."""

    def __init__(self, s3: S3Client, bucket: str, key: str, upload_id: str, part_size: int) -> None:
        self.s3, self.bucket, self.key, self.upload_id = s3, bucket, key, upload_id
        self.buffer = memoryview(bytearray(part_size))
        self.filled = 0
        self.done: list[CompletedPartTypeDef] = []

    def write(self, chunk: bytes) -> None:
        data = memoryview(chunk)
        while data:
            n = min(len(data), len(self.buffer) - self.filled)
            self.buffer[self.filled : self.filled + n] = data[:n]
            self.filled += n
            data = data[n:]
            if self.filled == len(self.buffer):
                self._send()

    def finish(self) -> list[CompletedPartTypeDef]:
        if self.filled or not self.done:
            self._send()
        return self.done

    def _send(self) -> None:
        number = len(self.done) + 1
        if number > MAX_PARTS:
            raise ExportFailed(
                f"export {self.key}: larger than {MAX_PARTS} parts of {len(self.buffer)} bytes; "
                "write it with a larger part_size"
            )
        body = _PartBody(self.buffer[: self.filled])
        response = self.s3.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=cast(IO[bytes], body)
        )
        self.done.append({"ETag": response["ETag"], "PartNumber": number})
        self.filled = 0


def upload_stream(
    s3: S3Client,
    bucket: str,
    key: str,
    chunks: Iterable[bytes],
    *,
    part_size: int = PART_SIZE,
    content_type: str = "application/zip",
) -> Uploaded:
    """Upload ``chunks`` as the object ``bucket``/``key`` (SSE ``AES256``, ``content_type``).
    Whatever goes wrong, reading ``chunks`` included, the upload is aborted and the error re-raised."""
    if part_size < MIN_PART_SIZE:
        raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (S3's smallest part)")
    created = s3.create_multipart_upload(Bucket=bucket, Key=key, ServerSideEncryption=SSE, ContentType=content_type)
    upload_id = created["UploadId"]
    digest, size = hashlib.sha256(), 0
    try:
        parts = _Parts(s3, bucket, key, upload_id, part_size)
        for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
            parts.write(chunk)
        done = parts.finish()
        s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done})
    except BaseException:
        _abort(s3, bucket, key, upload_id)
        raise
    return Uploaded(byte_size=size, sha256=digest.hexdigest(), parts=len(done))


def _abort(s3: S3Client, bucket: str, key: str, upload_id: str) -> None:
    try:
        s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        # The export's own error goes on up; this one only leaves an unfinished upload, which a
        # lifecycle rule (AbortIncompleteMultipartUpload) or a rerun's abort clears.
        log.warning(
            "could not abort the unfinished upload %s of %s/%s (%s); abort it by hand or let the bucket's "
            "lifecycle rule do it",
            upload_id,
            bucket,
            key,
            type(exc).__name__,
        )
