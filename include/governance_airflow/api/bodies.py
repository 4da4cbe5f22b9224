"""The request API's bodies and filters (REQ-1), validated where they arrive, each error naming the
JSON field (the ledger's own checks name the CLI's flags): the kinds, channels, methods and states
the ledger knows, address shapes, lengths. What needs the database (transitions, duplicates) the
ledger refuses itself. Unknown fields are refused, so a caller cannot name the acting user.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from governance.errors import RequestError
from governance.person.subject import check_email
from governance.requests.model import CHANNELS, CLOSED_STATES, KINDS, OPEN_STATES, VERIFICATION_METHODS

# The list filter's states: each state, and "open" / "closed" for all of them (as the CLI's --state).
STATE_FILTERS = (*OPEN_STATES, *CLOSED_STATES, "open", "closed")


def _one_of(valid: tuple[str, ...], field: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in valid:
            raise ValueError(f"{field} must be one of: {', '.join(valid)}")
        return value

    return check


Kind = Annotated[str, AfterValidator(_one_of(KINDS, "kind")), Field(json_schema_extra={"enum": list(KINDS)})]
Channel = Annotated[
    str, AfterValidator(_one_of(CHANNELS, "channel")), Field(json_schema_extra={"enum": list(CHANNELS)})
]
Method = Annotated[
    str,
    AfterValidator(_one_of(VERIFICATION_METHODS, "method")),
    Field(json_schema_extra={"enum": list(VERIFICATION_METHODS)}),
]
StateFilter = Annotated[str, AfterValidator(_one_of(STATE_FILTERS, "state"))]
KindFilter = Annotated[str, AfterValidator(_one_of(KINDS, "kind"))]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Address = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=320)]


def states(chosen: list[str] | None) -> list[str] | None:
    """The states a list filter names ("open" and "closed" expanded); None for all."""
    if not chosen:
        return None
    expanded = {"open": OPEN_STATES, "closed": CLOSED_STATES}
    return sorted({state for name in chosen for state in expanded.get(name, (name,))})


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OpenBody(Body):
    """``POST /requests``: the subject by account id and/or address; where the answer goes."""

    kind: Kind
    account_id: Annotated[int, Field(ge=1)] | None = None
    email: Address | None = None
    reply_to: Address | None = None
    channel: Channel = "support_tool"
    received_at: AwareDatetime | None = None
    purposes: list[str] | None = None  # restriction, objection, consent withdrawal (requests.scope)
    choices: dict[str, str] | None = None  # account deletion: category -> keep | delete (RET-7)

    @field_validator("email", "reply_to")
    @classmethod
    def _an_address(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            try:
                check_email(value, flag=str(info.field_name))
            except RequestError as exc:  # the message names the field, never the value
                raise ValueError(str(exc)) from None
        return value


class VerifyBody(Body):
    """``POST /requests/{id}/verify``: how the identity was checked (never the document itself)."""

    method: Method


class ExtendBody(Body):
    """``POST /requests/{id}/extend``: up to two more months (GDPR art. 12(3)), with the reason."""

    months: Annotated[int, Field(ge=1, le=2)]
    reason: Text


class RefuseBody(Body):
    """``POST /requests/{id}/refuse``: the reason the subject is told."""

    reason: Text
