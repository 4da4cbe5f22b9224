"""Where the deployment runs and who may do what: the database's declared location (SEC-3) and
the names of the PostgreSQL group roles ``governance roles apply`` creates (SEC-4).
"""

from __future__ import annotations

import re

from pydantic import field_validator, model_validator

from governance.policy.base import COLUMN_NAME, StrictModel

COUNTRY_CODE = re.compile(r"^[A-Z]{2}$")
REGION_NAME = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")


def refuse_yaml_false(value: object) -> object:
    """A country field's raw value: YAML 1.1 reads a bare NO (Norway) as false."""
    if value is False:
        raise ValueError('got false: write the country code in quotes, e.g. country: "NO"')
    return value


def check_country(value: str) -> str:
    if not COUNTRY_CODE.match(value):
        raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code such as 'NO'")
    return value


class DatabaseLocation(StrictModel):
    """Where the database's servers are: an ISO 3166-1 country code and/or a cloud region."""

    country: str | None = None
    region: str | None = None

    @field_validator("country", mode="before")
    @classmethod
    def _yaml_norway(cls, value: object) -> object:
        return refuse_yaml_false(value)

    @field_validator("country")
    @classmethod
    def _check_country(cls, value: str | None) -> str | None:
        return None if value is None else check_country(value)

    @field_validator("region")
    @classmethod
    def _check_region(cls, value: str | None) -> str | None:
        if value is not None and not REGION_NAME.match(value):
            raise ValueError(f"{value!r} is not a cloud region name such as 'eu-north-1'")
        return value

    @model_validator(mode="after")
    def _one_at_least(self) -> DatabaseLocation:
        if self.country is None and self.region is None:
            raise ValueError("the database location needs 'country' (e.g. NO) or 'region' (e.g. eu-north-1)")
        return self


class Locations(StrictModel):
    """SEC-3: the declared location of what the object store cannot be asked about."""

    database: DatabaseLocation


class RoleNames(StrictModel):
    """SEC-4: the NOLOGIN group roles, one per duty; login users are made members of one of them."""

    sweeper: str = "governance_sweeper"
    auditor: str = "governance_auditor"
    request_worker: str = "governance_request_worker"
    reviewer: str = "governance_reviewer"

    @field_validator("sweeper", "auditor", "request_worker", "reviewer")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not COLUMN_NAME.match(value) or value.startswith("pg_"):
            raise ValueError(f"role name {value!r}: lower-case letters, digits and '_', not starting with 'pg_'")
        return value

    @model_validator(mode="after")
    def _distinct(self) -> RoleNames:
        names = [self.sweeper, self.auditor, self.request_worker, self.reviewer]
        if len(set(names)) != len(names):
            raise ValueError(f"each duty needs a role of its own; got {names}")
        return self
