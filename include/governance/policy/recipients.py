"""Who receives the personal data (TP-1, TP-4): the recipients registry, each recipient with the
categories it receives, its role, its country and its purpose, and, for a country outside the EEA,
the transfer basis that allows it (SEC-3; GDPR art. 44-46): without one the policy is refused where
it is loaded. Also ``Bilingual``, a text in Norwegian and English, as the export's summary shows a
person what is done with their data and why (ACC-1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from governance.eea import country_in_eea
from governance.policy.base import RULE_ID, CategoryId, StrictModel
from governance.policy.deployment import check_country, refuse_yaml_false
from governance.policy.notify import Notify

Language = Literal["nb", "en"]
# GDPR art. 4(7)-(8), 26: a processor acts on the shop's behalf; a controller decides for itself.
RecipientRole = Literal["processor", "controller", "joint_controller"]


def _recipient_id(value: str) -> str:
    if not RULE_ID.match(value):
        raise ValueError(f"{value!r} must be lower-case words joined by '-', e.g. 'delivery-carrier'")
    return value


RecipientId = Annotated[str, AfterValidator(_recipient_id)]


class Bilingual(StrictModel):
    """One text in Norwegian (``nb``) and English (``en``); both are required."""

    nb: str = Field(min_length=1)
    en: str = Field(min_length=1)

    def text(self, language: Language) -> str:
        return self.nb if language == "nb" else self.en


class Recipient(StrictModel):
    """A company the shop passes personal data to (TP-1), as a person may ask to see it (TP-4)."""

    id: RecipientId
    name: str = Field(min_length=1)
    role: RecipientRole
    categories: list[CategoryId] = Field(min_length=1)
    country: str
    purpose: Bilingual
    # SEC-3: required outside the EEA: an adequacy decision (art. 45) or safeguards such as the
    # Commission's standard contractual clauses (art. 46).
    transfer_basis: str | None = Field(default=None, min_length=1)
    # TP-5 (#12): how the recipient is told of erasures, rectifications and restrictions; without
    # it, its notices wait in the outbox (the audit reports them).
    notify: Notify | None = None

    @field_validator("country", mode="before")
    @classmethod
    def _yaml_norway(cls, value: object) -> object:
        return refuse_yaml_false(value)

    @field_validator("country")
    @classmethod
    def _check_country(cls, value: str) -> str:
        return check_country(value)

    @model_validator(mode="after")
    def _transfer_outside_eea(self) -> Recipient:
        if not country_in_eea(self.country) and self.transfer_basis is None:
            raise ValueError(
                f"country {self.country!r} is outside the EEA (SEC-3): name the 'transfer_basis' (an adequacy "
                "decision or standard contractual clauses, GDPR art. 45-46), or choose a recipient inside the EEA"
            )
        return self

    @property
    def inside_eea(self) -> bool:
        return country_in_eea(self.country)


def recipient_problems(
    recipients: Sequence[Recipient], category_ids: set[str], retention_categories: set[str] | None = None
) -> list[str]:
    """The registry against the data map: ids used once, every category named exists, and
    ``notify.retention_ended`` only for a recipient of a category some sweep can notify
    (``retention_categories``: the categories of the rules ``Policy.retention_notified``)."""
    ids = [r.id for r in recipients]
    problems = [f"recipients: recipient id {i!r} is used twice" for i in sorted({i for i in ids if ids.count(i) > 1})]
    for recipient in recipients:
        for category in recipient.categories:
            if category not in category_ids:
                problems.append(
                    f"recipient {recipient.id!r}, field 'categories': {category!r} is not a category of the data map"
                )
        told = recipient.notify is not None and recipient.notify.retention_ended
        if told and retention_categories is not None and not set(recipient.categories) & retention_categories:
            problems.append(
                f"recipient {recipient.id!r}, field 'notify.retention_ended': none of its categories "
                f"({', '.join(recipient.categories)}) has a retention rule that deletes or anonymises records naming "
                "a person (unidentifiable stores, stores reached only through links and object purges are never "
                "notified); remove it, or give the recipient such a category"
            )
    return problems
