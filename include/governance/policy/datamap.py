"""The data map: which categories of personal data the company holds (CAT-1..), and in which
tables (stores) each lives, with the columns naming the person and the linked S3 objects (CAT-5).
"""

from __future__ import annotations

from pydantic import Field, model_validator

from governance.policy.base import CategoryId, ColumnName, SchemaQualified, StrictModel
from governance.policy.recipients import Bilingual


class PersonKey(StrictModel):
    """How a record names its person: an account, an e-mail address, or both."""

    account_id: ColumnName | None = None
    email: ColumnName | None = None

    @model_validator(mode="after")
    def _one_at_least(self) -> PersonKey:
        if self.account_id is None and self.email is None:
            raise ValueError("person needs 'account_id' or 'email' (the column naming the person)")
        return self


class ObjectStoreLink(StrictModel):
    """Objects (photo and text bytes) that rows of a store point at."""

    bucket_column: ColumnName
    key_column: ColumnName
    buckets: list[str] = Field(min_length=1)
    prefix: str = ""


class Store(StrictModel):
    """A table holding a category's personal data: its key and the columns that are personal."""

    table: SchemaQualified
    key: ColumnName
    # SEC-2: the timestamp column placing a record in time (a breach's window selects by it).
    breach_clock: ColumnName | None = None
    person: PersonKey | None = None
    personal_columns: list[ColumnName] = Field(min_length=1)
    objects: ObjectStoreLink | None = None

    def columns(self) -> set[str]:
        """Every column of the table the policy names (what the database check looks for)."""
        names = {self.key, *self.personal_columns}
        if self.breach_clock:
            names.add(self.breach_clock)
        if self.person:
            names |= {c for c in (self.person.account_id, self.person.email) if c}
        if self.objects:
            names |= {self.objects.bucket_column, self.objects.key_column}
        return names


class Category(StrictModel):
    id: CategoryId
    name: str
    legal_basis: str
    # ACC-1: why the data is held, in the words the export's summary shows the person.
    purpose: Bilingual | None = None
    stores: list[Store] = Field(min_length=1)
