"""Cost of a run: GPU-hours by pool and capacity type at the preview's prices, per month.

Nodes are billed from launch to removal (what a cloud bills), so the consolidation delay and
cold starts cost what they cost. The month is the preview's (`HOURS_PER_MONTH` of the plan's
cost): a run of N simulated seconds is scaled by that month / N.
"""

from __future__ import annotations

from dataclasses import dataclass

from inferstack.components.planning.cost import HOURS_PER_MONTH
from inferstack.offline.simulate.capacity import Usage
from inferstack.offline.simulate.config import Prices


@dataclass(frozen=True)
class PoolCost:
    """One pool's hours and dollars over the run, and per month."""

    pool: str
    gpu_hours_on_demand: float
    gpu_hours_spot: float
    replica_hours_on_demand: float
    replica_hours_spot: float
    usd: float
    monthly_usd: float
    interruptions: int
    cold_starts: int


def pool_cost(pool: str, usage: Usage, prices: Prices, seconds: float) -> PoolCost:
    """Hours and dollars of one pool's usage."""
    od = usage.node_gpu_seconds["on_demand"] / 3600
    spot = usage.node_gpu_seconds["spot"] / 3600
    usd = od * prices.on_demand_per_gpu_hour + spot * prices.spot_per_gpu_hour
    return PoolCost(
        pool=pool,
        gpu_hours_on_demand=od,
        gpu_hours_spot=spot,
        replica_hours_on_demand=usage.pod_seconds["on_demand"] / 3600,
        replica_hours_spot=usage.pod_seconds["spot"] / 3600,
        usd=usd,
        monthly_usd=usd * HOURS_PER_MONTH * 3600 / max(seconds, 1.0),
        interruptions=usage.interruptions,
        cold_starts=usage.cold_starts,
    )
