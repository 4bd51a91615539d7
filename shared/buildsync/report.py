"""What a sync did, counted per outcome, and the builds it completed."""

from __future__ import annotations

import dataclasses

from buildsync.messages import CompletedBuild

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
    completed_builds: list[CompletedBuild] = dataclasses.field(default_factory=list)
    # Failures of whole batches or shards, one line each, for the summary.
    errors: list[str] = dataclasses.field(default_factory=list)

    def add(self, other: SyncReport) -> None:
        for name in COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.retry = self.retry or other.retry
        self.completed_builds.extend(other.completed_builds)
        self.errors.extend(other.errors)

    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNTERS}
