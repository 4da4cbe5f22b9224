"""The purposes a person can switch off (RES-1, OBJ-1, MKT-1, CON-1): the policy's ``purposes:``.

Each purpose says on which legal basis the shop processes for it, which recipients receive data
for it (TP-1) and where this platform enforces a switch-off: ``switch_off`` lists the data-map
tables whose person's rows are changed (``set`` column -> value, ``now`` for the instant of the
effect; ``only_where_null`` leaves rows already switched off alone; ``where`` narrows to rows with
given values). Checked against the data map at load: a table outside it, or one that reaches no
person, is refused; columns are checked against the catalogue when the request is answered.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from governance.policy.base import COLUMN_NAME, StrictModel, column, qualified
from governance.policy.recipients import Bilingual, RecipientId

PURPOSE_ID = re.compile(r"^[a-z0-9]+(_[a-z0-9]+)*$")
NOW = "now"  # a ``set`` value meaning the instant of the effect


def _purpose_id(value: str) -> str:
    if not PURPOSE_ID.match(value):
        raise ValueError(f"{value!r} must be lower-case words joined by '_', e.g. 'advertising_audiences'")
    return value


PurposeId = Annotated[str, AfterValidator(_purpose_id)]
Scalar = str | int | float | bool | None


class Switch(StrictModel):
    """One change that switches a purpose off in one table of the data map, for the person's rows."""

    table: Annotated[str, AfterValidator(qualified)]
    set: dict[str, Scalar] = Field(min_length=1)
    only_where_null: Annotated[str, AfterValidator(column)] | None = None
    where: dict[str, Scalar] = Field(default_factory=dict)

    def column_names(self) -> list[str]:
        names = [*self.set, *self.where, *([self.only_where_null] if self.only_where_null else [])]
        bad = [n for n in names if not COLUMN_NAME.match(n)]
        if bad:
            raise ValueError(f"{', '.join(map(repr, bad))} is not a plain lower-case column name")
        return names


class Purpose(StrictModel):
    """A purpose of processing a person may object to, withdraw consent from, or have restricted."""

    id: PurposeId
    name: Bilingual
    legal_basis: str = Field(min_length=1)
    requirements: list[str] = Field(min_length=1)
    # Direct marketing (OBJ-1: stopped at once, no reason asked); an objection without purposes
    # switches off every purpose marked so.
    direct_marketing: bool = False
    # CON-1: a purpose resting on consent; a withdrawal without purposes switches off every one.
    consent: bool = False
    recipients: list[RecipientId] = Field(default_factory=list)
    switch_off: list[Switch] = Field(default_factory=list)


Effect = Literal["objected", "withdrawn", "restricted"]
EFFECT_OF_KIND: dict[str, Effect] = {
    "objection": "objected",
    "consent_withdrawal": "withdrawn",
    "restriction": "restricted",
}


def purpose_problems(
    purposes: Sequence[Purpose], person_tables: set[str], data_map_tables: set[str], recipient_ids: set[str]
) -> list[str]:
    """The purposes against the data map and the registry: ids once, tables reachable, recipients known."""
    ids = [p.id for p in purposes]
    problems = [f"purposes: purpose id {i!r} is used twice" for i in sorted({i for i in ids if ids.count(i) > 1})]
    for purpose in purposes:
        where = f"purpose {purpose.id!r}"
        for recipient in purpose.recipients:
            if recipient not in recipient_ids:
                problems.append(f"{where}, field 'recipients': {recipient!r} is not in the recipients registry")
        for switch in purpose.switch_off:
            try:
                switch.column_names()
            except ValueError as exc:
                problems.append(f"{where}, field 'switch_off': {exc}")
            if switch.table not in data_map_tables:
                problems.append(f"{where}, field 'switch_off': {switch.table!r} is not in the data map")
            elif switch.table not in person_tables:
                problems.append(
                    f"{where}, field 'switch_off': {switch.table!r} reaches no person (no 'person:' or links), "
                    "so a person's rows cannot be found there"
                )
    return problems
