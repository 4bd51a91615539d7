"""What a sync did, counted per outcome, and the completion effects of the builds it ended."""

from __future__ import annotations

import dataclasses

from buildsync.outbox import Completion

# The counters in the order the CLI prints them.
COUNTERS = ("due", "fetched", "updated", "unchanged", "stale", "invalid", "skipped", "completed", "failed")


@dataclasses.dataclass
class SyncReport:
    due: int = 0
    fetched: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0
    invalid: int = 0
    skipped: int = 0
    completed: int = 0
    failed: int = 0
    # True when some failure may clear on a retry, so the message should come back.
    retry: bool = False
    # The outbox entries the sync wrote, for the completion effects after the commit.
    completions: list[Completion] = dataclasses.field(default_factory=list)
    # In a dry run, what each ended build's completion would do, one line per effect.
    planned_effects: dict[int, list[str]] = dataclasses.field(default_factory=dict)
    # Failures of whole batches or shards, one line each, for the summary.
    errors: list[str] = dataclasses.field(default_factory=list)

    def add(self, other: SyncReport) -> None:
        for name in COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.retry = self.retry or other.retry
        self.completions.extend(other.completions)
        self.planned_effects.update(other.planned_effects)
        self.errors.extend(other.errors)

    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNTERS}
