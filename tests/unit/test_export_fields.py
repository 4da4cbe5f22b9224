"""PostgreSQL types as Table Schema fields and values as JSON and CSV text (POR-1): fixed answers."""

from __future__ import annotations

import ipaddress
import json
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal

import pytest

from governance.exports.contents import ObjectExport, TableExport, check_path
from governance.exports.fields import (
    FieldType,
    csv_text,
    duration_text,
    field_type,
    json_text,
    schema_field,
)
from governance.person.columns import Column


@pytest.mark.parametrize(
    ("type_name", "expected"),
    [
        ("bigint", FieldType("integer")),
        ("integer", FieldType("integer")),
        ("smallint", FieldType("integer")),
        ("numeric(12,2)", FieldType("number")),
        ("numeric", FieldType("number")),
        ("double precision", FieldType("number")),
        ("real", FieldType("number")),
        ("boolean", FieldType("boolean")),
        ("date", FieldType("date")),
        ("time without time zone", FieldType("time")),
        ("timestamp with time zone", FieldType("datetime")),
        ("timestamp(3) with time zone", FieldType("datetime")),
        ("timestamp without time zone", FieldType("datetime")),
        ("interval", FieldType("duration")),
        ("uuid", FieldType("string", "uuid")),
        ("bytea", FieldType("string", "binary")),
        ("jsonb", FieldType("json")),
        ("json", FieldType("json")),
        ("text[]", FieldType("array")),
        ("integer[]", FieldType("array")),
        ("text", FieldType("string")),
        ("character varying(255)", FieldType("string")),
        ("character(3)", FieldType("string")),
        ("inet", FieldType("string")),
        ("cidr", FieldType("string")),
        ("shop.order_state", FieldType("string")),  # an enum: its label
        (" BIGINT ", FieldType("integer")),
    ],
)
def test_postgresql_types_map_to_table_schema_types(type_name, expected):
    assert field_type(type_name) == expected


def test_a_json_columns_type_follows_its_values():
    column = Column("preferences", "jsonb")
    assert schema_field(column, {"object"})["type"] == "object"
    assert schema_field(column, {"array"})["type"] == "array"
    assert schema_field(column, {"object", "array"})["type"] == "any"
    assert schema_field(column, set())["type"] == "any"  # no values seen
    assert schema_field(Column("ref", "uuid")) == {
        "name": "ref",
        "type": "string",
        "format": "uuid",
        "description": "PostgreSQL uuid",
    }


INSTANT = datetime(2025, 3, 5, 14, 7, 9, 123456, tzinfo=timezone(timedelta(hours=2)))


@pytest.mark.parametrize(
    ("value", "as_json", "as_csv"),
    [
        (None, "null", ""),
        (True, "true", "true"),
        (False, "false", "false"),
        (42, "42", "42"),
        (Decimal("1234.50"), "1234.50", "1234.50"),
        (Decimal("-0.01"), "-0.01", "-0.01"),
        (Decimal("NaN"), '"NaN"', "NaN"),
        (Decimal("Infinity"), '"INF"', "INF"),
        (Decimal("-Infinity"), '"-INF"', "-INF"),
        (2.5, "2.5", "2.5"),
        (float("inf"), '"INF"', "INF"),
        (INSTANT, '"2025-03-05T12:07:09.123456Z"', "2025-03-05T12:07:09.123456Z"),
        (datetime(2025, 1, 1, 0, 0, tzinfo=UTC), '"2025-01-01T00:00:00Z"', "2025-01-01T00:00:00Z"),
        (datetime(2025, 1, 1, 8, 30), '"2025-01-01T08:30:00"', "2025-01-01T08:30:00"),  # without time zone
        (date(2024, 2, 29), '"2024-02-29"', "2024-02-29"),
        (time(23, 59, 1), '"23:59:01"', "23:59:01"),
        (timedelta(days=1, seconds=3600, microseconds=500000), '"P1DT3600.5S"', "P1DT3600.5S"),
        (
            uuid.UUID("3f2b1c9e-8d7a-4e6f-9a0b-1c2d3e4f5a6b"),
            '"3f2b1c9e-8d7a-4e6f-9a0b-1c2d3e4f5a6b"',
            "3f2b1c9e-8d7a-4e6f-9a0b-1c2d3e4f5a6b",
        ),
        (ipaddress.ip_address("2001:db8::1"), '"2001:db8::1"', "2001:db8::1"),
        (ipaddress.ip_network("192.0.2.0/24"), '"192.0.2.0/24"', "192.0.2.0/24"),
        ("192.0.2.17", '"192.0.2.17"', "192.0.2.17"),  # psycopg2's inet: a string
        ('Ærlig, "Østby"\nÅse', '"Ærlig, \\"Østby\\"\\nÅse"', 'Ærlig, "Østby"\nÅse'),
        (b"\x00\xff", '"AP8="', "AP8="),
        (
            {"språk": "nb", "n": [1, 2.5, None]},
            '{"språk": "nb", "n": [1, 2.5, null]}',
            '{"språk": "nb", "n": [1, 2.5, null]}',
        ),
        ([Decimal("1.10"), None], "[1.10, null]", "[1.10, null]"),
        ([], "[]", "[]"),
    ],
)
def test_values_as_json_and_csv_text(value, as_json, as_csv):
    assert json_text(value) == as_json
    assert csv_text(value) == as_csv
    json.loads(as_json)  # valid JSON


def test_an_unknown_value_type_is_a_bug():
    with pytest.raises(TypeError, match="no text form for a value of type object"):
        csv_text(object())


def test_negative_and_whole_durations():
    assert duration_text(timedelta(days=2)) == "P2D"
    assert duration_text(-timedelta(hours=1)) == "-P0DT3600S"


@pytest.mark.parametrize("path", ["", "/etc/passwd", "files/../x", "files//x", "files/./x", "a\\b", "files/x\n"])
def test_unsafe_archive_paths_are_refused_without_echoing_them(path):
    with pytest.raises(ValueError) as refused:
        check_path(path)
    assert "passwd" not in str(refused.value)


def test_inputs_are_checked_where_they_are_made():
    columns = [Column("order_id", "bigint")]
    with pytest.raises(ValueError, match="schema-qualified"):
        TableExport("orders", "CAT-3", "order_id", columns, [])
    with pytest.raises(ValueError, match="the key 'id' is not one of its columns"):
        TableExport("shop.orders", "CAT-3", "id", columns, [])
    with pytest.raises(ValueError, match="under 'files/'"):
        ObjectExport("data/x.jpg", "shop-uploads", "k")
    assert check_path("files/shop.uploads/1/ferie på Lofoten.jpg")
