"""The policy as a whole: header, decisions, enforcement, the data map and the rules, checked
against each other (every rule's category, table, decision and ``after`` exist; every category
has a rule; rules on one table agree on the action; the data map's links reach a person), and the
lookups the engine and audit use.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from functools import cached_property
from typing import Literal

from pydantic import Field, field_validator, model_validator

from governance.errors import UnknownRule
from governance.policy.audiences import Audience, audience_problems
from governance.policy.base import StrictModel
from governance.policy.datamap import Category, Store
from governance.policy.deployment import Locations, RoleNames
from governance.policy.links import link_problems
from governance.policy.notify import NoticeSettings
from governance.policy.order import after_problems
from governance.policy.purposes import Purpose, purpose_problems
from governance.policy.recipients import Recipient, recipient_problems
from governance.policy.rules import AnonymiseAction, DecisionRef, PurgeObjectsAction, Rule
from governance.windows import Window, parse_instant


class Decision(StrictModel):
    """A choice the policy leaves to the deployment (RET-5d, RET-6, RET-8, RES-1): a window, an
    action, or whether a restriction keeps the person's records from retention deletion."""

    window: str | None = None
    expired_order_records: Literal["anonymise", "delete"] | None = None
    # RES-1: a restriction in force places a person hold (GDPR art. 18(2): restricted data may
    # only be stored; art. 18(1)(b)/(c): the person needs it kept). Absent: true.
    restriction_holds_records: bool | None = None

    @field_validator("window")
    @classmethod
    def _check_window(cls, value: str | None) -> str | None:
        if value is not None:
            Window.parse(value)
        return value


class PolicyHeader(StrictModel):
    """Who the policy is and since when it applies: ``effective_from`` (an ISO 8601 date or
    instant), else ``last_updated`` (a date); no run decides for an instant before it (#9)."""

    name: str
    title: str = ""
    last_updated: str = ""
    effective_from: str = ""
    source: str = ""

    @field_validator("last_updated", "effective_from")
    @classmethod
    def _check_date(cls, value: str) -> str:
        if value:
            policy_instant(value)
        return value

    @property
    def starts(self) -> datetime | None:
        """The first instant the policy decides for (None when the file names no date)."""
        text = self.effective_from or self.last_updated
        return policy_instant(text) if text else None


def policy_instant(text: str) -> datetime:
    """A date (midnight UTC) or an ISO 8601 instant with offset, within the platform's bounds."""
    return parse_instant(f"{text}T00:00:00Z" if len(text.strip()) == 10 else text)


class ObjectStore(StrictModel):
    uploads_bucket: str
    # SEC-1: where the evidence chain's head is anchored after every run (S3 Object Lock, COMPLIANCE
    # mode, each anchor kept this many days); None: not anchored.
    evidence_anchor_bucket: str | None = None
    evidence_anchor_retention_days: int = Field(default=3650, ge=1, le=36500)
    # ACC-1, POR-1: where the archives answering data-subject requests are written (a copy with a
    # window, RET-9); None: this deployment makes no exports.
    exports_bucket: str | None = None
    # ERA-1: one object per completed erasure (pseudonyms and instants, no personal data) outside
    # the database, under S3 Object Lock (COMPLIANCE, kept this many days), so that a restore from
    # a backup can be followed by `governance erasure replay`; None: no ledger, no replay.
    erasure_ledger_bucket: str | None = None
    erasure_ledger_retention_days: int = Field(default=3650, ge=1, le=36500)
    # #13: the daily compliance reports (ids, counts, hashes; DAG compliance_report), a copy with a
    # window (RET-9, the ``keep_reports`` decision); None: no reports are written.
    reports_bucket: str | None = None
    keep_reports: DecisionRef | None = None

    def buckets(self) -> list[str]:
        """Every bucket named in this section (any field ending in ``bucket``), for the SEC-3 check."""
        return [str(v) for k, v in self.model_dump().items() if k.endswith("bucket") and v]


class Enforcement(StrictModel):
    """How late enforcement may be: the sweep runs hourly, so a scheduled audit looks at the
    world as of ``tolerated_lateness`` ago (RET-1: at most about an hour late). Manual and
    sweep-triggered audits use their exact instant (``governance.instants.run_now``)."""

    tolerated_lateness: str = "PT1H"

    @field_validator("tolerated_lateness")
    @classmethod
    def _check_lateness(cls, value: str) -> str:
        Window.parse(value)
        return value

    @property
    def lateness(self) -> Window:
        return Window.parse(self.tolerated_lateness)


class Policy(StrictModel):
    policy: PolicyHeader
    decisions: dict[str, Decision] = Field(default_factory=dict)
    enforcement: Enforcement = Field(default_factory=Enforcement)
    locations: Locations | None = None  # SEC-3; the audit fails while it is missing
    roles: RoleNames = Field(default_factory=RoleNames)  # SEC-4
    object_store: ObjectStore
    categories: list[Category] = Field(min_length=1)
    rules: list[Rule] = Field(min_length=1)
    recipients: list[Recipient] = Field(default_factory=list)  # TP-1, TP-4
    purposes: list[Purpose] = Field(default_factory=list)  # RES-1, OBJ-1, MKT-1, CON-1
    notices: NoticeSettings = Field(default_factory=NoticeSettings)  # TP-5 delivery (#12)
    audiences: list[Audience] = Field(default_factory=list)  # TP-1, TP-3

    # Set by load_policy: where it came from and the hash of its bytes (the policy version).
    source_path: str = ""
    version: str = ""

    @model_validator(mode="after")
    def _cross_check(self) -> Policy:
        problems = [f"categories: {i} is defined twice" for i in _repeated([c.id for c in self.categories])]
        problems += [f"rules: rule id {i!r} is used twice" for i in _repeated([r.id for r in self.rules])]
        for rule in self.rules:
            problems += self._rule_problems(rule)
        problems += after_problems(self.rules)
        covered = {r.category for r in self.rules}
        for category in self.categories:
            if category.id not in covered:
                problems.append(
                    f"categories: {category.id} has no retention rule; add a rule with 'category: {category.id}'"
                )
        problems += _disagreeing_actions(self.rules)
        problems += link_problems(self.categories)
        problems += recipient_problems(
            self.recipients,
            category_ids={c.id for c in self.categories},
            retention_categories={r.category for r in self.rules if self.retention_notified(r)},
        )
        problems += purpose_problems(
            self.purposes,
            person_tables={s.table for c in self.categories for s in c.stores if not s.unidentifiable},
            data_map_tables={s.table for c in self.categories for s in c.stores},
            recipient_ids={r.id for r in self.recipients},
        )
        problems += audience_problems(
            self.audiences,
            recipient_ids={r.id for r in self.recipients},
            purposes=self.purposes,
            windows={name for name, decision in self.decisions.items() if decision.window},
        )
        problems += self._exports_bucket_problems()
        problems += self._reports_problems()
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def _rule_problems(self, rule: Rule) -> list[str]:
        """One rule against the rest of the policy: its category, table, decisions and action."""
        where = f"rule {rule.id!r}"
        problems: list[str] = []
        category_ids = {c.id for c in self.categories}
        if rule.category not in category_ids:
            problems.append(f"{where}, field 'category': {rule.category!r} is not a category of the data map")
        owner = {s.table: (c.id, s) for c in self.categories for s in c.stores}.get(rule.table)
        if owner is None:
            problems.append(f"{where}, field 'table': {rule.table!r} is not in the data map of any category")
        elif owner[0] != rule.category:
            problems.append(f"{where}, field 'table': {rule.table!r} belongs to {owner[0]}, not {rule.category}")
        if isinstance(rule.window, DecisionRef):
            decision = self.decisions.get(rule.window.decision)
            if decision is None or decision.window is None:
                problems.append(
                    f"{where}, field 'window': decision {rule.window.decision!r} has no window in 'decisions'"
                )
        if isinstance(rule.action, AnonymiseAction) and rule.action.decision:
            decision = self.decisions.get(rule.action.decision)
            if decision is None or decision.expired_order_records != "anonymise":
                problems.append(f"{where}, field 'action': decision {rule.action.decision!r} does not say 'anonymise'")
        if isinstance(rule.action, PurgeObjectsAction) and owner is not None and owner[1].objects is None:
            problems.append(f"{where}, field 'action': purge_objects needs 'objects' on store {rule.table!r}")
        return problems

    def _reports_problems(self) -> list[str]:
        """A reports bucket is a copy with a window (RET-9): ``keep_reports`` names a decision with one."""
        store = self.object_store
        if store.reports_bucket is None:
            return []
        keep = store.keep_reports
        if keep is None or not (self.decisions.get(keep.decision) or Decision()).window:
            named = repr(keep.decision) if keep else "none"
            return [
                f"object_store, field 'keep_reports': the reports bucket {store.reports_bucket!r} needs a decision "
                f"with a window (RET-9); decision {named} has none in 'decisions'"
            ]
        return []

    def reports_window(self) -> Window:
        """How long a daily report is kept in the reports bucket (RET-9, the ``keep_reports`` decision)."""
        keep = self.object_store.keep_reports
        if keep is None:
            raise ValueError("the policy names no object_store.keep_reports")
        return Window.parse(self.decisions[keep.decision].window or "")

    def _exports_bucket_problems(self) -> list[str]:
        """The exports are written where ``object_store.exports_bucket`` says, and purged and audited
        where the data map's stores say (RET-9): the two must agree."""
        bucket = self.object_store.exports_bucket
        named = {b for c in self.categories for s in c.stores if s.objects is not None for b in s.objects.buckets}
        if bucket is None or bucket in named:
            return []
        return [
            f"object_store, field 'exports_bucket': {bucket!r} is in no store's 'objects.buckets'; name it on the "
            "store of the request exports, or the sweep would never purge them nor the audit list them"
        ]

    # --- lookups used by the engine and the audit ---

    def rule(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise UnknownRule(rule_id, self.policy.name, [r.id for r in self.rules])

    def window(self, rule: Rule) -> Window:
        if isinstance(rule.window, DecisionRef):
            return Window.parse(self.decisions[rule.window.decision].window or "")
        return Window.parse(rule.window)

    def store(self, table: str) -> Store:
        for category in self.categories:
            for store in category.stores:
                if store.table == table:
                    return store
        raise KeyError(table)

    def account_stores(self) -> list[Store]:
        """Stores that hold an account's own address: keyed by the account id, with an e-mail column
        (the data map's link between a person's account id and their e-mail address)."""
        return [
            store
            for category in self.categories
            for store in category.stores
            if store.person is not None and store.person.email and store.person.account_id == store.key
        ]

    def join_tables(self) -> list[str]:
        """The join tables the data map's links go through (``via``), once each, in data-map order."""
        tables = [
            link.via.table
            for category in self.categories
            for store in category.stores
            for link in store.links
            if link.via is not None
        ]
        return list(dict.fromkeys(tables))

    def recipients_of(self, category_id: str) -> list[Recipient]:
        """The recipients registry's entries that receive ``category_id`` (TP-4), in file order."""
        return [r for r in self.recipients if category_id in r.categories]

    def retention_notified(self, rule: Rule) -> bool:
        """TP-5: whether a sweep of ``rule`` can tell recipients whose records it changed: it deletes
        or anonymises rows of a store naming its person in its own columns (``person:``). Records of
        an unidentifiable store (visits), of a store reached only through links, and object purges
        are never notified."""
        store = {s.table: s for c in self.categories for s in c.stores}.get(rule.table)
        return rule.action.type in ("delete", "anonymise") and store is not None and store.person is not None

    def retention_recipients(self, rule: Rule) -> list[Recipient]:
        """The recipients told when a sweep of ``rule`` changes records (TP-5): those receiving its
        category with ``notify.retention_ended``; none when the rule is not ``retention_notified``."""
        if not self.retention_notified(rule):
            return []
        return [r for r in self.recipients_of(rule.category) if r.notify is not None and r.notify.retention_ended]

    def purpose(self, purpose_id: str) -> Purpose:
        """The purpose ``purpose_id`` of ``purposes:``; KeyError when the policy has none such."""
        for purpose in self.purposes:
            if purpose.id == purpose_id:
                return purpose
        raise KeyError(purpose_id)

    def files_window(self, audience: Audience) -> Window:
        """How long an audience file is kept in its drop (RET-9, the ``keep_files`` decision)."""
        return Window.parse(self.decisions[audience.keep_files.decision].window or "")

    def audience(self, audience_id: str) -> Audience:
        """The audience ``audience_id`` of ``audiences:``; KeyError when the policy has none such."""
        for audience in self.audiences:
            if audience.id == audience_id:
                return audience
        raise KeyError(audience_id)

    def buckets(self) -> list[str]:
        """Every bucket the policy names: the object_store section's and each store's objects'."""
        names = list(self.object_store.buckets())
        for category in self.categories:
            for store in category.stores:
                if store.objects is not None:
                    names += store.objects.buckets
        names += [audience.drop.bucket for audience in self.audiences]  # TP-1: the audience drops
        return list(dict.fromkeys(names))

    @cached_property
    def rules_by_table(self) -> dict[str, list[Rule]]:
        grouped: dict[str, list[Rule]] = defaultdict(list)
        for rule in self.rules:
            grouped[rule.table].append(rule)
        return dict(grouped)

    def clock_sql_files(self) -> list[str]:
        """The SQL files defining the rules' clock views, once each, in policy order (a column
        clock has none)."""
        seen: dict[str, None] = {}
        for rule in self.rules:
            if rule.clock.sql is not None:
                seen.setdefault(rule.clock.sql, None)
        return list(seen)


def _repeated(ids: Sequence[str]) -> list[str]:
    return sorted({i for i in ids if ids.count(i) > 1})


def _disagreeing_actions(rules: Sequence[Rule]) -> list[str]:
    """Rules on one table act together (latest expiry wins, RET-10), so they must agree on the action."""
    by_table: dict[str, set[str]] = defaultdict(set)
    for rule in rules:
        by_table[rule.table].add(rule.action.type)
    return [
        f"rules on {table!r} disagree on the action ({sorted(kinds)}); they act together"
        for table, kinds in by_table.items()
        if len(kinds) > 1
    ]
