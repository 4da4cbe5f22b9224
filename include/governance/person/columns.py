"""A column of a person's records as PostgreSQL describes it: the name and ``format_type`` text
(``bigint``, ``timestamp with time zone``, ``numeric(12,2)``...). The finder reads it from the
catalog; the export maps it to a Table Schema type (POR-1)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    name: str
    type_name: str
