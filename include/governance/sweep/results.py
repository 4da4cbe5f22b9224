"""What a sweep returns: ``RulePlan`` (what a sweep of a rule would do now) and ``RuleResult``
(what it did), both plain data for the CLI, the DAG's XComs and the benchmarks."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# RuleResult fields that a batch's counts add to, by the counts' key (evidence ``counts``).
_COUNTED = {
    "deleted": "deleted",
    "anonymised": "anonymised",
    "tombstoned": "tombstoned",
    "objects_deleted": "objects_purged",
    "object_errors": "object_errors",
    "partitions_dropped": "partitions_dropped",
    "rows_estimated": "rows_estimated",
}
# Fields two passes of a rule add up.
_SUMMED = (
    "deleted",
    "anonymised",
    "objects_purged",
    "partitions_dropped",
    "rows_estimated",
    "batches",
    "probes",
    "seconds",
    "tombstoned",
    "object_errors",
    "partitions_created",
    "batches_over_time",
)


@dataclass
class RulePlan:
    """What a sweep of one rule would do now; no effect."""

    rule: str
    requirements: list[str]
    action: str
    table: str
    window: str
    now: str
    due: int = 0  # would be removed or anonymised
    held: int = 0  # due, but a legal hold keeps them
    partitions_to_drop: list[str] = field(default_factory=list)
    partition_rows: int = 0  # of ``due``, rows in partitions that would be dropped whole
    objects: int = 0  # objects that would be purged (one per upload; versions counted at run time)
    purging: int = 0  # rows left 'purging' by an interrupted sweep, finished first
    strategy: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RuleResult:
    rule: str
    requirements: list[str]
    action: str
    deleted: int = 0
    anonymised: int = 0
    objects_purged: int = 0  # object versions and delete markers removed
    partitions_dropped: int = 0
    rows_estimated: int = 0  # rows of dropped partitions counted by estimate (partition_counts="estimated")
    batches: int = 0
    batches_over_time: int = 0  # batches rolled back at their time limit and swept again smaller
    probes: int = 0  # read-only look-aheads past pages with nothing due (block ranges)
    seconds: float = 0.0
    max_batch_seconds: float = 0.0
    skipped_locked: bool = False
    held: int = 0
    tombstoned: int = 0
    object_errors: int = 0
    partitions_created: int = 0
    strategy: str = ""
    dry_run: bool = False

    def add_counts(self, counts: dict[str, int]) -> None:
        """Add a batch's evidence counts to the totals."""
        for key, name in _COUNTED.items():
            setattr(self, name, getattr(self, name) + counts.get(key, 0))

    @property
    def records_changed(self) -> int:
        """Rows deleted, anonymised or tombstoned and partitions dropped: zero for a pass that did nothing."""
        return self.deleted + self.anonymised + self.tombstoned + self.partitions_dropped

    def merged(self, other: RuleResult) -> RuleResult:
        """Two passes of the same rule in one run, added up."""
        out = RuleResult(self.rule, self.requirements, self.action)
        for name in _SUMMED:
            setattr(out, name, getattr(self, name) + getattr(other, name))
        out.max_batch_seconds = max(self.max_batch_seconds, other.max_batch_seconds)
        out.held, out.strategy, out.dry_run = other.held, other.strategy or self.strategy, self.dry_run
        out.skipped_locked = self.skipped_locked or other.skipped_locked
        return out

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["seconds"] = round(self.seconds, 3)
        data["max_batch_seconds"] = round(self.max_batch_seconds, 4)
        return data
