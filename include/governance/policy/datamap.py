"""The data map: which categories of personal data the company holds (CAT-1..), and in which
tables (stores) each lives, with the columns naming the person, the links to the store that does
(an order line through its order, #10) and the linked S3 objects (CAT-5). The checks across
stores (link targets, reachability, cycles) are in ``governance.policy.links``.
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


class LinkVia(StrictModel):
    """A join table between a store and the store it links to: ``column`` equals the store's link
    column, ``to_column`` the target's (an upload through ``shop.order_line_uploads``)."""

    table: SchemaQualified
    column: ColumnName
    to_column: ColumnName


class Link(StrictModel):
    """A store's rows belong to the person of the rows of store ``to`` they reference: this store's
    ``column`` equals ``to``'s ``to_column``, directly or through the join table ``via`` (#10)."""

    column: ColumnName
    to: SchemaQualified
    to_column: ColumnName
    via: LinkVia | None = None


class Store(StrictModel):
    """A table holding a category's personal data: its key, the columns that are personal, and how
    a record reaches its person: ``person`` columns, ``links`` to a store that has them, or, for
    records no one can be tied to (GDPR art. 11), ``unidentifiable`` saying why."""

    table: SchemaQualified
    key: ColumnName
    # SEC-2: the timestamp column placing a record in time (a breach's window selects by it).
    breach_clock: ColumnName | None = None
    person: PersonKey | None = None
    personal_columns: list[ColumnName] = Field(min_length=1)
    objects: ObjectStoreLink | None = None
    links: list[Link] = Field(default_factory=list)
    unidentifiable: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _identified_or_not(self) -> Store:
        if self.unidentifiable is not None and (self.person is not None or self.links):
            raise ValueError(
                f"store {self.table!r}: 'unidentifiable' contradicts 'person'/'links'; "
                "remove 'unidentifiable' or the person columns and links"
            )
        return self

    def columns(self) -> set[str]:
        """Every column of the table the policy names (what the database check looks for)."""
        names = {self.key, *self.personal_columns}
        if self.breach_clock:
            names.add(self.breach_clock)
        if self.person:
            names |= {c for c in (self.person.account_id, self.person.email) if c}
        if self.objects:
            names |= {self.objects.bucket_column, self.objects.key_column}
        names |= {link.column for link in self.links}
        return names


class Category(StrictModel):
    id: CategoryId
    name: str
    legal_basis: str
    # ACC-1: why the data is held, in the words the export's summary shows the person.
    purpose: Bilingual | None = None
    stores: list[Store] = Field(min_length=1)
