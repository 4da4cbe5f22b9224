"""PostgreSQL column types as Table Schema fields, and cell values as JSON and CSV text (POR-1).

Types come as ``format_type`` text (``numeric(12,2)``, ``timestamp with time zone``). Values are
written as Table Schema reads them back: instants in ISO 8601 UTC with ``Z``, numbers as their exact
decimal text (a JSON number in the JSON file), ``inet``/``uuid`` as strings, ``json``/``jsonb`` as
JSON (its JSON text in the CSV), arrays likewise, ``bytea`` as base64, NULL as JSON ``null`` and an
empty CSV cell (as is an empty string: only the JSON file tells them apart). A JSON column's Table Schema type is known only once its values were seen
(``object`` when every value is an object, ``array`` when every value is an array, else ``any``).
"""

from __future__ import annotations

import base64
import ipaddress
import json
import math
import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from governance.person.columns import Column
from governance.windows import iso

JSON_TYPE = "json"  # resolved to object, array or any after the data pass
_MODIFIERS = re.compile(r"\(\d+(?:,\s*\d+)?\)")
_TYPES: dict[str, tuple[str, str | None]] = {
    "smallint": ("integer", None),
    "integer": ("integer", None),
    "bigint": ("integer", None),
    "numeric": ("number", None),
    "real": ("number", None),
    "double precision": ("number", None),
    "boolean": ("boolean", None),
    "date": ("date", None),
    "time without time zone": ("time", None),
    "time with time zone": ("time", None),
    "timestamp without time zone": ("datetime", None),
    "timestamp with time zone": ("datetime", None),
    "interval": ("duration", None),
    "uuid": ("string", "uuid"),
    "bytea": ("string", "binary"),
    "json": (JSON_TYPE, None),
    "jsonb": (JSON_TYPE, None),
}
_STRING_LIKE = (uuid.UUID, ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Network, ipaddress.IPv6Network)
# Table Schema's names for the numbers JSON has none for.
_SPECIAL_NUMBERS = {"NaN": "NaN", "Infinity": "INF", "-Infinity": "-INF", "sNaN": "NaN"}


@dataclass(frozen=True)
class FieldType:
    type: str
    format: str | None = None


def field_type(type_name: str) -> FieldType:
    """The Table Schema type of a PostgreSQL type; text, ``inet``, enums and the rest are strings."""
    name = _MODIFIERS.sub("", type_name.strip().lower())
    if name.endswith("[]"):
        return FieldType("array")
    return FieldType(*_TYPES.get(name, ("string", None)))


def json_shape(value: Any) -> str:
    """What a JSON column's value is, for its Table Schema type: object, array or any."""
    return "object" if isinstance(value, dict) else "array" if isinstance(value, list | tuple) else "any"


def schema_field(column: Column, json_shapes: set[str] | None = None) -> dict[str, Any]:
    """The Table Schema field descriptor of ``column``; ``json_shapes``: what its values were."""
    kind = field_type(column.type_name)
    type_ = kind.type
    if type_ == JSON_TYPE:
        shapes = json_shapes or set()
        type_ = next(iter(shapes)) if len(shapes) == 1 else "any"
    descriptor: dict[str, Any] = {"name": column.name, "type": type_}
    if kind.format:
        descriptor["format"] = kind.format
    descriptor["description"] = f"PostgreSQL {column.type_name}"
    return descriptor


def json_text(value: Any) -> str:
    """One value as JSON text (exact decimals as JSON numbers, no float rounding)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal | float):
        text = number_text(value)
        return text if text not in _SPECIAL_NUMBERS.values() else json.dumps(text)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(json_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{json.dumps(str(k), ensure_ascii=False)}: {json_text(v)}" for k, v in value.items()) + "}"
        )
    return json.dumps(scalar_text(value), ensure_ascii=False)


def csv_text(value: Any) -> str:
    """One value as a CSV cell (NULL is the empty cell, Table Schema's default missing value)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal | float):
        return number_text(value)
    if isinstance(value, list | tuple | dict):
        return json_text(value)
    return scalar_text(value)


def number_text(value: int | Decimal | float) -> str:
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return repr(value)
        return "NaN" if math.isnan(value) else ("INF" if value > 0 else "-INF")
    if value.is_finite():
        return str(value)
    return _SPECIAL_NUMBERS[str(value).lstrip("+")]


def scalar_text(value: Any) -> str:
    """Text of a value that is neither a number, a boolean nor JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return iso(value) if value.tzinfo is not None else value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return duration_text(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, _STRING_LIKE):  # an interface (inet with a mask) is an address too
        return str(value)
    raise TypeError(f"no text form for a value of type {type(value).__name__}")


def duration_text(value: timedelta) -> str:
    """An interval as an ISO 8601 duration (days and seconds, as psycopg2 gives it)."""
    sign = "-" if value < timedelta(0) else ""
    value = abs(value)
    seconds = value.seconds + value.microseconds / 1_000_000
    text = f"{sign}P{value.days}D"
    if seconds:
        text += f"T{seconds:.6f}".rstrip("0").rstrip(".") + "S"
    return text
