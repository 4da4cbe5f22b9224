"""The policy as code: typed, validated models of a company's privacy policy (pydantic v2).

A policy file (YAML) holds the data map (where each category's personal data lives), the
retention rules (clock, window, action, the requirement IDs each enforces) and the decisions a
deployment may change. ``load_policy`` validates all of it where it is loaded, so nothing runs on
a policy that failed: every problem is reported with the file, the rule and the field.

Modules: ``base`` (paths, name shapes), ``masking`` (anonymisation strategies), ``datamap``
(categories, stores and their links), ``links`` (links checked across stores), ``recipients`` (who
receives which categories, TP-4), ``rules`` (rules, clocks, actions), ``order`` (``after``), ``model``
(the policy and its cross-checks), ``loading`` (files and messages), ``database`` (the policy
against a live database).
"""

from governance.errors import PolicyError, UnknownRule
from governance.policy.base import DEFAULT_POLICY_PATH, INCLUDE_DIR, SQL_DIR
from governance.policy.database import check_against_database, require_database_match
from governance.policy.datamap import Category, Link, LinkVia, ObjectStoreLink, PersonKey, Store
from governance.policy.deployment import DatabaseLocation, Locations, RoleNames
from governance.policy.loading import load_policy, parse_policy
from governance.policy.masking import FixedValue, MaskingStrategy, SetNull, build_strategy
from governance.policy.model import Decision, Enforcement, ObjectStore, Policy, PolicyHeader
from governance.policy.order import after_cycles
from governance.policy.purposes import EFFECT_OF_KIND, Purpose, Switch
from governance.policy.recipients import Bilingual, Recipient
from governance.policy.rules import (
    Action,
    AnonymiseAction,
    Clock,
    DecisionRef,
    DeleteAction,
    KeptClock,
    PurgeObjectsAction,
    Rule,
)

__all__ = [
    "EFFECT_OF_KIND",
    "Purpose",
    "Switch",
    "DEFAULT_POLICY_PATH",
    "INCLUDE_DIR",
    "SQL_DIR",
    "Action",
    "AnonymiseAction",
    "Bilingual",
    "Category",
    "Clock",
    "KeptClock",
    "DatabaseLocation",
    "Decision",
    "DecisionRef",
    "DeleteAction",
    "Enforcement",
    "FixedValue",
    "Link",
    "LinkVia",
    "MaskingStrategy",
    "Locations",
    "ObjectStore",
    "ObjectStoreLink",
    "PersonKey",
    "Policy",
    "PolicyError",
    "PolicyHeader",
    "PurgeObjectsAction",
    "Recipient",
    "RoleNames",
    "Rule",
    "SetNull",
    "Store",
    "UnknownRule",
    "after_cycles",
    "build_strategy",
    "check_against_database",
    "load_policy",
    "parse_policy",
    "require_database_match",
]
