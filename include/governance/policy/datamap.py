"""The data map: which categories of personal data the company holds (CAT-1..), and in which
tables (stores) each lives, with the columns naming the person and the linked S3 objects (CAT-5).
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from governance.policy.base import CATEGORY_ID, StrictModel, column, qualified


class PersonKey(StrictModel):
    """How a record names its person: an account, an e-mail address, or both."""

    account_id: str | None = None
    email: str | None = None

    @field_validator("account_id", "email")
    @classmethod
    def _check_column(cls, value: str | None) -> str | None:
        return value if value is None else column(value)

    @model_validator(mode="after")
    def _one_at_least(self) -> PersonKey:
        if self.account_id is None and self.email is None:
            raise ValueError("person needs 'account_id' or 'email' (the column naming the person)")
        return self


class ObjectStoreLink(StrictModel):
    """Objects (photo and text bytes) that rows of a store point at."""

    bucket_column: str
    key_column: str
    buckets: list[str] = Field(min_length=1)
    prefix: str = ""

    @field_validator("bucket_column", "key_column")
    @classmethod
    def _check_column(cls, value: str) -> str:
        return column(value)


class Store(StrictModel):
    """A table holding a category's personal data: its key and the columns that are personal."""

    table: str
    key: str
    person: PersonKey | None = None
    personal_columns: list[str] = Field(min_length=1)
    objects: ObjectStoreLink | None = None

    @field_validator("table")
    @classmethod
    def _check_table(cls, value: str) -> str:
        return qualified(value)

    @field_validator("key")
    @classmethod
    def _check_key(cls, value: str) -> str:
        return column(value)

    @field_validator("personal_columns")
    @classmethod
    def _check_columns(cls, values: list[str]) -> list[str]:
        return [column(v) for v in values]

    def columns(self) -> set[str]:
        """Every column of the table the policy names (what the database check looks for)."""
        names = {self.key, *self.personal_columns}
        if self.person:
            names |= {c for c in (self.person.account_id, self.person.email) if c}
        if self.objects:
            names |= {self.objects.bucket_column, self.objects.key_column}
        return names


class Category(StrictModel):
    id: str
    name: str
    legal_basis: str
    stores: list[Store] = Field(min_length=1)

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not CATEGORY_ID.match(value):
            raise ValueError(f"{value!r} is not a category ID such as 'CAT-1'")
        return value
