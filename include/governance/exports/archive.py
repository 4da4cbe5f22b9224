"""One export archive (ACC-1, POR-1): a ZIP streamed into the exports bucket (``write_export``),
never whole in memory or on disk. In order: each table's JSON and CSV file under ``data/``, the
person's objects byte for byte under ``files/``, the summary (``LESMEG.txt``, ``README.txt``),
``datapackage.json`` and, last, ``manifest.json`` with every other file's size and SHA-256, each
hashed as it passes. A failure anywhere aborts the upload and raises ExportFailed: no object, no
unfinished upload, and a message naming tables, counts and buckets, never a file or a person.
"""

from __future__ import annotations

import hashlib
import json
import stat
import zlib
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeAlias

import botocore.exceptions
import psycopg2
from stream_zip import ZIP_64, ZIP_AUTO, MemberFile, ZipError, stream_zip

from governance.errors import TRANSIENT_S3_CODES, ExportFailed
from governance.exports.contents import (
    DATAPACKAGE,
    MANIFEST,
    ExportResult,
    ObjectExport,
    TableExport,
    check_path,
    data_path,
)
from governance.exports.datapackage import FileEntry, check_package_name, descriptor
from governance.exports.summary import Summary
from governance.exports.tables import TableStats, csv_chunks, json_chunks
from governance.exports.upload import PART_SIZE, upload_stream
from governance.windows import as_utc, iso

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import GetObjectOutputTypeDef

READ_CHUNK = 64 * 1024
# The summary: rendered from the records counted; ready texts by file name; or made from the counts
# (table -> rows written) once every table is written, e.g. to say that nothing is held.
SummarySource: TypeAlias = Summary | dict[str, str] | Callable[[dict[str, int]], Summary]
MEMBER_MODE = stat.S_IFREG | 0o600
# Media that are compressed already (photos): stored with deflate level 0, at copying speed.
_COMPRESSED_MEDIA = ("image/", "video/", "audio/", "application/zip", "application/pdf")


class _Archive:
    """The members of one archive, in order, and what was written of them (the manifest)."""

    def __init__(self, s3: S3Client, summary: SummarySource, package_name: str, created_at: datetime):
        self.s3, self.summary, self.package_name, self.created_at = s3, summary, package_name, created_at
        self.files: dict[str, FileEntry] = {}
        self.tables: list[tuple[TableExport, TableStats]] = []
        self.objects = 0
        self.step = "starting the upload"

    def members(self, tables: Iterable[TableExport], objects: Iterable[ObjectExport]) -> Iterator[MemberFile]:
        for number, table in enumerate(tables, 1):
            self.step = f"table {number} ({table.table})"
            stats = TableStats()
            yield self._member(data_path(table.table, "json"), json_chunks(table, stats), "application/json")
            yield self._member(data_path(table.table, "csv"), csv_chunks(table, stats), "text/csv")
            self.tables.append((table, stats))
        for number, item in enumerate(objects, 1):
            self.step = f"object {number} (bucket {item.bucket})"
            yield self._object(item)
            self.objects = number
        self.step = "the summary"
        for name, text in self._summary_texts().items():
            yield self._member(name, [text.encode("utf-8")], "text/plain")
        self.step = DATAPACKAGE
        package = descriptor(self.package_name, self.created_at, self.tables, self.files)
        yield self._member(DATAPACKAGE, [_json_bytes(package)], "application/json")
        self.step = MANIFEST
        yield self._manifest()

    def _member(self, path: str, chunks: Iterable[bytes], mediatype: str) -> MemberFile:
        self._check_new(path)
        return (path, self.created_at, MEMBER_MODE, ZIP_64, self._hashed(path, chunks, mediatype))

    def _check_new(self, path: str) -> None:
        check_path(path)
        if path in self.files or path == MANIFEST:
            raise ValueError(f"{self.step}: a second file at a path already in the archive")

    def _object(self, item: ObjectExport) -> MemberFile:
        """An object's member: stored as is (deflate level 0) when its media are compressed already."""
        self._check_new(item.path)
        response = self.s3.get_object(Bucket=item.bucket, Key=item.key)
        size = int(response["ContentLength"])
        mediatype = response.get("ContentType") or "application/octet-stream"
        level = 0 if mediatype.startswith(_COMPRESSED_MEDIA) else 6
        chunks = self._hashed(item.path, _body(response, size, self.step), mediatype)
        modified = response.get("LastModified", self.created_at)
        return (item.path, modified, MEMBER_MODE, ZIP_AUTO(size, level=level), chunks)

    def _hashed(self, path: str, chunks: Iterable[bytes], mediatype: str) -> Iterator[bytes]:
        """Pass the chunks on; once the last has gone, the file's size and SHA-256 are recorded."""
        digest, size = hashlib.sha256(), 0
        for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
            yield chunk
        self.files[path] = FileEntry(path, size, digest.hexdigest(), mediatype)

    def rows(self) -> dict[str, int]:
        """Table -> the rows written of it (its JSON file's, which its CSV file matched)."""
        return {table.table: stats.rows for table, stats in self.tables}

    def _summary_texts(self) -> dict[str, str]:
        summary = self.summary(self.rows()) if callable(self.summary) else self.summary
        if isinstance(summary, Summary):
            return summary.render(self.rows(), files=self.objects, created_at=self.created_at)
        return dict(summary)

    def _manifest(self) -> MemberFile:
        manifest = {
            "package": self.package_name,
            "created": iso(self.created_at),
            "algorithm": "sha256",
            "files": [{"path": f.path, "bytes": f.bytes, "sha256": f.sha256} for f in self.files.values()],
        }
        return (MANIFEST, self.created_at, MEMBER_MODE, ZIP_64, iter([_json_bytes(manifest)]))


def _body(response: GetObjectOutputTypeDef, size: int, step: str) -> Iterator[bytes]:
    """An object's bytes as S3 sends them; refuses a body shorter or longer than announced."""
    body = response["Body"]
    read = 0
    try:
        for chunk in body.iter_chunks(chunk_size=READ_CHUNK):
            read += len(chunk)
            yield chunk
    finally:
        body.close()
    if read != size:
        raise ExportFailed(f"{step}: {read} bytes read of {size}; the object changed while it was read, run again")


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def write_export(
    s3: S3Client,
    *,
    bucket: str,
    key: str,
    tables: Iterable[TableExport],
    objects: Iterable[ObjectExport],
    summary: SummarySource,
    package_name: str,
    created_at: datetime,
    part_size: int = PART_SIZE,
) -> ExportResult:
    """Write one person's export to ``bucket``/``key`` (SSE ``AES256``), streamed: tables and
    objects are read lazily, one at a time. ``summary``: a ``Summary`` rendered with the records
    counted, ready texts by file name, or a function of the rows written per table that returns the
    ``Summary`` (called once every table is written). ``ExportResult.rows``: the rows written per
    table. Raises ExportFailed, having left nothing behind."""
    created_at = as_utc(created_at)
    archive = _Archive(s3, summary, check_package_name(package_name), created_at)
    zipped = stream_zip(
        archive.members(tables, objects),
        chunk_size=READ_CHUNK,
        get_compressobj=lambda: zlib.compressobj(level=6, wbits=-zlib.MAX_WBITS),
    )
    try:
        uploaded = upload_stream(s3, bucket, key, zipped, part_size=part_size)
    except ExportFailed:
        raise
    except botocore.exceptions.ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", "unknown"))
        raise _failed(archive.step, key, code, retryable=code in TRANSIENT_S3_CODES) from None
    except botocore.exceptions.BotoCoreError as exc:
        raise _failed(archive.step, key, type(exc).__name__, retryable=True) from None
    except psycopg2.Error as exc:
        raise _failed(archive.step, key, f"database {type(exc).__name__}", retryable=True) from None
    except ZipError as exc:
        raise _failed(archive.step, key, f"ZIP {type(exc).__name__}", retryable=False) from None
    manifest = {path: entry.sha256 for path, entry in archive.files.items()}
    return ExportResult(uploaded.byte_size, uploaded.sha256, len(manifest) + 1, manifest, archive.rows())


def _failed(step: str, key: str, cause: str, *, retryable: bool) -> ExportFailed:
    error = ExportFailed(
        f"export {key}: {step} failed ({cause}); the upload was aborted and nothing was stored. "
        + (
            "Run it again."
            if retryable
            else "Fix the cause (a missing object: see the data map and the audit), then run it again."
        )
    )
    error.retryable = retryable
    return error
