"""What goes into an export archive and what comes out of writing one: a table's rows with its
columns (``TableExport``), an object to copy byte for byte (``ObjectExport``), the written archive's
size, hash and manifest (``ExportResult``), and the rule for a path inside the archive.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from governance.person.columns import Column
from governance.policy.base import QUALIFIED_NAME

# Fixed names of the archive's own files; a table's files are under data/, objects under files/.
DATAPACKAGE = "datapackage.json"
MANIFEST = "manifest.json"
DATA_DIR = "data/"
FILES_DIR = "files/"
_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")
_MAX_PATH_BYTES = 1024


@dataclass(frozen=True)
class TableExport:
    """One table's records of the person. ``rows`` is read twice (the JSON file, then the CSV
    file), so each ``iter(rows)`` must start again (``governance.person.reading.StoreRows``, which
    replays a table that fits in its buffer, or a list); a one-shot iterator is refused."""

    table: str
    category_id: str
    key: str
    columns: list[Column]
    rows: Iterable[tuple[Any, ...]] = field(repr=False)

    def __post_init__(self) -> None:
        if not QUALIFIED_NAME.match(self.table):
            raise ValueError(f"table {self.table!r} must be a schema-qualified lower-case name such as 'shop.orders'")
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"table {self.table}: the columns must be named once each, got {names}")
        if self.key not in names:
            raise ValueError(f"table {self.table}: the key {self.key!r} is not one of its columns {names}")


@dataclass(frozen=True)
class ObjectExport:
    """An object (a photo or a text) copied into the archive at ``path`` (under ``files/``)."""

    path: str
    bucket: str
    key: str = field(repr=False)

    def __post_init__(self) -> None:
        check_path(self.path)
        if not self.path.startswith(FILES_DIR):
            raise ValueError(f"an object's path in the archive must be under {FILES_DIR!r}")


@dataclass(frozen=True)
class ExportResult:
    """The archive as written: its size and SHA-256, how many files it holds (``manifest.json``
    included), each other file's SHA-256 by path (what ``manifest.json`` lists), and the rows
    written per table (table -> rows: what the archive holds of each)."""

    byte_size: int
    sha256: str
    file_count: int
    manifest: dict[str, str] = field(repr=False)
    rows: dict[str, int] = field(default_factory=dict)


def data_path(table: str, suffix: str) -> str:
    """Where a table's file is: ``data/shop.orders.json``, ``data/shop.orders.csv``."""
    return f"{DATA_DIR}{table}.{suffix}"


def check_path(path: str) -> str:
    """A relative path of plain segments: no leading '/', no '.' or '..', no backslash or control
    characters (a ZIP member's name is where an unzip tool writes the file)."""
    segments = path.split("/")
    if (
        not path
        or _CONTROL.search(path)
        or any(s in ("", ".", "..") for s in segments)
        or len(path.encode("utf-8")) > _MAX_PATH_BYTES
    ):
        # The path may carry a file's own name (personal data): say what is wrong, not the path.
        raise ValueError(
            "a path in the archive must be relative, made of non-empty segments other than '.' and '..', "
            f"without backslashes or control characters, at most {_MAX_PATH_BYTES} bytes"
        )
    return path
