"""One ``COPY ... TO STDOUT`` streamed into one S3 object (TP-1): PostgreSQL's rows are gathered
into chunks and handed through a small bounded queue to a thread that sends them as a multipart
upload (``governance.exports.upload.upload_stream``: SSE, hashed on the way, aborted on any
failure), so the database and the upload work at once and memory stays flat. Lines are counted on
the way; nothing of the rows is logged.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from governance.exports.upload import Uploaded, upload_stream

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CHUNK = 1024 * 1024
_DONE = object()  # the COPY ended: complete the upload
_ABANDON = object()  # the COPY failed: abort it


class _Abandoned(Exception):
    """Raised inside the upload's stream when the COPY failed, so the multipart upload is aborted."""


@dataclass(frozen=True)
class Streamed:
    uploaded: Uploaded
    lines: int  # newline-terminated lines, the header included


class _Sink:
    """The file psycopg2 writes the COPY into: chunks of about ``CHUNK`` bytes onto the queue."""

    def __init__(self, chunks: queue.Queue[object], failed: threading.Event) -> None:
        self.chunks, self.failed = chunks, failed
        self.buffer = bytearray()
        self.lines = 0

    def write(self, data: bytes | memoryview) -> int:
        self.buffer += data
        if len(self.buffer) >= CHUNK:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if not self.buffer:
            return
        chunk = bytes(self.buffer)
        self.lines += chunk.count(b"\n")
        self.buffer.clear()
        _put(self.chunks, chunk, self.failed)


def _put(chunks: queue.Queue[object], item: object, failed: threading.Event) -> None:
    """Queue ``item``, unless the upload thread died (then no one reads the queue: raise)."""
    while True:
        if failed.is_set():
            raise RuntimeError("the upload stopped; the COPY is abandoned")
        try:
            chunks.put(item, timeout=0.5)
            return
        except queue.Full:
            continue


def copy_to_object(
    cur: Any, copy_sql: str, params: dict[str, Any], s3: S3Client, bucket: str, key: str, *, content_type: str
) -> Streamed:
    """Run ``copy_sql`` (a ``COPY (...) TO STDOUT``) on ``cur`` into ``bucket``/``key``. Any failure
    on either side aborts the upload (no object) and is raised."""
    chunks: queue.Queue[object] = queue.Queue(maxsize=8)
    failed = threading.Event()
    outcome: dict[str, Any] = {}

    def feed() -> Iterator[bytes]:
        while (chunk := chunks.get()) is not _DONE:
            if chunk is _ABANDON:
                raise _Abandoned
            yield chunk  # type: ignore[misc]

    def upload() -> None:
        try:
            outcome["uploaded"] = upload_stream(s3, bucket, key, feed(), content_type=content_type)
        except BaseException as exc:  # handed to the caller's thread below
            outcome["error"] = exc
            failed.set()

    worker = threading.Thread(target=upload, name="audience-upload", daemon=True)
    sink = _Sink(chunks, failed)
    worker.start()
    try:
        cur.copy_expert(cur.mogrify(copy_sql, params).decode(), sink)
        sink.flush()
        _put(chunks, _DONE, failed)
    except BaseException:
        failed.set()
        _poison(chunks)  # the generator raises inside upload_stream, which aborts the upload
        worker.join()
        if "error" in outcome:
            raise outcome["error"] from None
        raise
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return Streamed(uploaded=outcome["uploaded"], lines=sink.lines)


def _poison(chunks: queue.Queue[object]) -> None:
    """Empty the queue and end the upload's stream with an error (it aborts, leaving no object)."""
    while True:
        try:
            chunks.get_nowait()
        except queue.Empty:
            break
    chunks.put(_ABANDON)
