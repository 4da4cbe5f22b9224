"""``datapackage.json``: the archive described as a Frictionless Data Package (POR-1), so another
controller can load it: each CSV file a tabular resource with its Table Schema (field types mapped
from PostgreSQL, the store's key as primary key), every other file a plain resource, each with its
``bytes`` and ``sha256`` hash. Built as a plain dict; the tests validate it with frictionless.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from governance.exports.contents import DATA_DIR, TableExport, data_path
from governance.exports.fields import schema_field
from governance.exports.tables import TableStats
from governance.windows import iso

PACKAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
CSV_DIALECT = {"delimiter": ",", "lineTerminator": "\r\n", "quoteChar": '"', "doubleQuote": True, "header": True}


@dataclass(frozen=True)
class FileEntry:
    """A file of the archive as the manifest has it."""

    path: str
    bytes: int
    sha256: str
    mediatype: str


def check_package_name(name: str) -> str:
    if not PACKAGE_NAME.match(name):
        raise ValueError(
            f"package name {name!r}: lower-case letters, digits, '.', '_' and '-' (Data Package 'name'), "
            "e.g. 'request-42'"
        )
    return name


def descriptor(
    name: str,
    created_at: datetime,
    tables: Sequence[tuple[TableExport, TableStats]],
    files: Mapping[str, FileEntry],
) -> dict[str, Any]:
    """The Data Package: one tabular resource per table's CSV file, then every file in ``files``
    that is not a table's CSV, in archive order."""
    csv_paths = {data_path(table.table, "csv"): (table, stats) for table, stats in tables}
    resources: list[dict[str, Any]] = []
    for number, entry in enumerate(files.values(), 1):
        if entry.path in csv_paths:
            resources.append(_tabular(entry, *csv_paths[entry.path]))
        else:
            resources.append(_plain(entry, number))
    return {
        "name": check_package_name(name),
        "title": "Personopplysninger / Personal data",
        "profile": "data-package",
        "created": iso(created_at),
        "resources": resources,
    }


def _tabular(entry: FileEntry, table: TableExport, stats: TableStats) -> dict[str, Any]:
    fields = [schema_field(c, stats.json_shapes.get(c.name)) for c in table.columns]
    return {
        "name": table.table,
        "path": entry.path,
        "profile": "tabular-data-resource",
        "format": "csv",
        "mediatype": "text/csv",
        "encoding": "utf-8",
        "dialect": CSV_DIALECT,
        "bytes": entry.bytes,
        "hash": f"sha256:{entry.sha256}",
        "schema": {"fields": fields, "primaryKey": [table.key], "missingValues": [""]},
        "description": f"{stats.rows} record(s) of {table.table} ({table.category_id})",
    }


def _plain(entry: FileEntry, number: int) -> dict[str, Any]:
    suffix = entry.path.rsplit("/", 1)[-1].rsplit(".", 1)
    name = entry.path.removeprefix(DATA_DIR).lower() if entry.path.startswith(DATA_DIR) else f"file-{number}"
    resource: dict[str, Any] = {
        "name": name,
        "path": entry.path,
        "profile": "data-resource",
        "mediatype": entry.mediatype,
        "bytes": entry.bytes,
        "hash": f"sha256:{entry.sha256}",
    }
    if len(suffix) == 2 and suffix[1]:
        resource["format"] = suffix[1].lower()
    return resource
