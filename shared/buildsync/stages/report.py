"""What a sync did, counted per outcome, and the completion effects of the builds it ended."""

from __future__ import annotations

import collections
import dataclasses

from buildsync.rules.build_update import Outcome
from buildsync.store.outbox import Completion


def _outcome_count(outcome: Outcome) -> property:
    return property(lambda report: report.outcomes[outcome], doc=f"builds whose outcome was {outcome.value}")


@dataclasses.dataclass
class SyncReport:
    due: int = 0
    fetched: int = 0
    completed: int = 0
    # How many builds ended with each outcome (build_update.Outcome).
    outcomes: collections.Counter[Outcome] = dataclasses.field(default_factory=collections.Counter)
    # True when some failure may clear on a retry, so the message should come back.
    retry: bool = False
    # The builds of the group transactions that failed transiently: what a retry redoes (retry.py).
    retry_ids: list[int] = dataclasses.field(default_factory=list)
    # The outbox entries the sync wrote, for the completion effects after the commit.
    completions: list[Completion] = dataclasses.field(default_factory=list)
    # In a dry run, what each ended build's completion would do, one line per effect.
    planned_effects: dict[int, list[str]] = dataclasses.field(default_factory=dict)
    # Failures of whole batches or shards, one line each, for the summary.
    errors: list[str] = dataclasses.field(default_factory=list)

    updated = _outcome_count(Outcome.UPDATED)
    unchanged = _outcome_count(Outcome.UNCHANGED)
    stale = _outcome_count(Outcome.STALE)
    invalid = _outcome_count(Outcome.INVALID)
    skipped = _outcome_count(Outcome.SKIPPED)
    failed = _outcome_count(Outcome.FAILED)

    def count(self, outcome: Outcome, builds: int = 1) -> None:
        self.outcomes[outcome] += builds

    def add(self, other: SyncReport) -> None:
        self.due += other.due
        self.fetched += other.fetched
        self.completed += other.completed
        self.outcomes.update(other.outcomes)
        self.retry = self.retry or other.retry
        self.retry_ids.extend(other.retry_ids)
        self.completions.extend(other.completions)
        self.planned_effects.update(other.planned_effects)
        self.errors.extend(other.errors)

    def handed_over(self) -> SyncReport:
        """This report without its retried builds, which the batch that redoes them counts again."""
        report = dataclasses.replace(self, due=self.due - len(self.retry_ids), retry=False, retry_ids=[])
        report.outcomes = self.outcomes.copy()
        report.count(Outcome.FAILED, -len(self.retry_ids))
        return report

    def counts(self) -> dict[str, int]:
        """Every counter by name, in the order the CLI prints them."""
        return {
            "due": self.due,
            "fetched": self.fetched,
            **{outcome.value: self.outcomes[outcome] for outcome in Outcome},
            "completed": self.completed,
        }
