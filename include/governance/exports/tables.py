"""A table's records as the archive's two files, streamed row by row: ``data/<table>.json`` (an
array of objects, one row a line) and ``data/<table>.csv`` (RFC 4180: a header, CRLF, quotes
doubled). The rows are read twice, once per file; both passes must see the same number of rows.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from governance.errors import ExportFailed
from governance.exports.contents import TableExport
from governance.exports.fields import JSON_TYPE, csv_text, field_type, json_shape, json_text

# Encode and hand on the text in pieces of about this many characters, not row by row.
PIECE_CHARS = 64 * 1024


@dataclass
class TableStats:
    """What the passes over one table saw: its rows, and the shapes of its JSON columns' values."""

    rows: int = 0
    json_shapes: dict[str, set[str]] = field(default_factory=dict)


def _rows(table: TableExport) -> Iterator[tuple[Any, ...]]:
    rows = iter(table.rows)
    if rows is table.rows:
        raise TypeError(
            f"table {table.table}: rows is a one-shot iterator, but the export reads a table twice (JSON, then "
            "CSV); pass an iterable whose iter() starts again, e.g. one opening a new server-side cursor"
        )
    width = len(table.columns)
    for row in rows:
        if len(row) != width:
            raise ValueError(f"table {table.table}: a row has {len(row)} values for {width} columns")
        yield row


def json_chunks(table: TableExport, stats: TableStats) -> Iterator[bytes]:
    """The JSON file: ``[``, one object per row and line, ``]``; counts rows into ``stats``."""
    keys = [json_text(c.name) + ": " for c in table.columns]
    json_columns = [i for i, c in enumerate(table.columns) if field_type(c.type_name).type == JSON_TYPE]
    for i in json_columns:
        stats.json_shapes[table.columns[i].name] = set()
    pieces, size, rows = ["[\n"], 2, 0
    for row in _rows(table):
        for i in json_columns:
            if row[i] is not None:
                stats.json_shapes[table.columns[i].name].add(json_shape(row[i]))
        text = (",\n" if rows else "") + "{" + ", ".join(k + json_text(v) for k, v in zip(keys, row, strict=True)) + "}"
        rows += 1
        pieces.append(text)
        size += len(text)
        if size >= PIECE_CHARS:
            yield "".join(pieces).encode("utf-8")
            pieces, size = [], 0
    pieces.append("\n]\n")
    yield "".join(pieces).encode("utf-8")
    stats.rows = rows


def csv_chunks(table: TableExport, stats: TableStats) -> Iterator[bytes]:
    """The CSV file: the column names, then one line per row; refuses a row count that differs
    from the JSON pass (the rows changed between the passes: not read in one snapshot)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([c.name for c in table.columns])
    rows = 0
    for row in _rows(table):
        writer.writerow([csv_text(v) for v in row])
        rows += 1
        if buffer.tell() >= PIECE_CHARS:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")
    if rows != stats.rows:
        raise ExportFailed(
            f"table {table.table}: {stats.rows} row(s) in the JSON pass but {rows} in the CSV pass; read both "
            "in one REPEATABLE READ transaction, then run the export again"
        )
