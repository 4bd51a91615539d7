"""Which limit a growing load meets first, and the settings that keep every utilisation under HEADROOM (pure)."""

from __future__ import annotations

import dataclasses
import math

from tools.capacity.model import FAILURE_LIMITS, HEADROOM, Deployment, Limit, Load, UnitCosts, all_limits

# Past this many shards a backend's settings draw a warning (rules/settings.py MANY_SHARDS); the search stops there.
SHARD_SEARCH_LIMIT = 100
# The limits a backend's shard count moves; instances follow from the rest.
SHARD_LIMITS = ("next_backend_sync_time writes per shard range", "largest shard query")
# Functions whose max_instance_count the recommendation sizes.
SIZED_FUNCTIONS = {"sync": "sync instances", "shard": "shard instances"}
# Builds far past any deployment: the search for the first limit hit gives up there.
BUILDS_SEARCH_LIMIT = 10**10


@dataclasses.dataclass(frozen=True)
class Recommendation:
    """Settings for a load, the limits at those settings, and the limits no setting brings under HEADROOM."""

    shards: int
    max_instances: dict[str, int]
    limits: tuple[Limit, ...]
    unfixed: tuple[Limit, ...]


def over(limits: list[Limit], threshold: float) -> list[Limit]:
    return [limit for limit in limits if limit.utilisation is not None and limit.utilisation >= threshold]


def busiest(limits: list[Limit]) -> Limit:
    """The limit with the highest utilisation."""
    return max((limit for limit in limits if limit.utilisation is not None), key=lambda limit: limit.utilisation)


def first_limit_hit(
    load: Load, deployment: Deployment, costs: UnitCosts, failures: bool = True
) -> tuple[Limit, int] | None:
    """The first limit whose utilisation reaches 1 as the builds grow (all else as in `load`), and at how many;
    without `failures`, among the limits of normal running only.

    None when none does below BUILDS_SEARCH_LIMIT.
    """

    def hit(builds: int) -> list[Limit]:
        limits = all_limits(dataclasses.replace(load, builds=builds), deployment, costs)
        return over([limit for limit in limits if failures or limit.name not in FAILURE_LIMITS], 1.0)

    low, high = 0, max(load.builds, 1)
    while not hit(high):
        low, high = high, high * 2
        if high > BUILDS_SEARCH_LIMIT:
            return None
    while high - low > max(1, high // 1000):
        middle = (low + high) // 2
        low, high = (low, middle) if hit(middle) else (middle, high)
    return busiest(hit(high)), high


def recommend(load: Load, deployment: Deployment, costs: UnitCosts) -> Recommendation:
    """The fewest shards (at least `load.shards`) that keep the shard-driven limits under HEADROOM, then for each
    sized function the instances that keep it under HEADROOM (never fewer than deployed)."""
    shards = load.shards
    while shards < SHARD_SEARCH_LIMIT and _shard_limits_over(
        dataclasses.replace(load, shards=shards), deployment, costs
    ):
        shards += 1
    sized = dataclasses.replace(load, shards=shards)
    instances = dict(deployment.max_instances)
    demand = {limit.name: limit.demand for limit in all_limits(sized, deployment, costs)}
    for function, name in SIZED_FUNCTIONS.items():
        instances[function] = max(instances[function], math.ceil(demand[name] / HEADROOM))
    settled = dataclasses.replace(deployment, max_instances=instances)
    limits = all_limits(sized, settled, costs)
    return Recommendation(shards, instances, tuple(limits), tuple(over(limits, HEADROOM)))


def _shard_limits_over(load: Load, deployment: Deployment, costs: UnitCosts) -> bool:
    limits = [limit for limit in all_limits(load, deployment, costs) if limit.name in SHARD_LIMITS]
    return bool(over(limits, HEADROOM))
