"""A pool as every consumer sees it: its tier, its spec section, its sizing, where it may run.

The spec and the sizing each hold both pools as optional halves (a service may have either or
both). A `Pool` pairs the halves of one pool once, when the plan is built, so a builder that is
handed a pool has nothing optional left to check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from inferstack.components.planning import spec as spec_model
from inferstack.components.planning.sizing import BatchSizing, RealtimeSizing, Sizing
from inferstack.components.planning.spec import Gpu, InferenceServiceSpec

Tier = Literal["realtime", "batch"]
Placement = Literal["on_demand", "spot_first", "spot_only"]
"""`on_demand`: never a spot node (the realtime pool, or a batch pool without spot);
`spot_first`: spot preferred, on-demand when spot is gone; `spot_only`: spot or nothing."""


@dataclass(frozen=True)
class RealtimePool:
    """The synchronous pool: on-demand capacity only, sized for the latency budget."""

    spec: spec_model.Realtime
    sizing: RealtimeSizing
    tier: Literal["realtime"] = "realtime"
    placement: Placement = "on_demand"

    @property
    def gpu(self) -> Gpu:
        """The accelerator of one replica."""
        return self.spec.gpu


@dataclass(frozen=True)
class BatchPool:
    """The asynchronous pool: queue workers, on spot capacity when the spec allows it."""

    spec: spec_model.BatchPool
    sizing: BatchSizing
    placement: Placement
    tier: Literal["batch"] = "batch"

    @property
    def gpu(self) -> Gpu:
        """The accelerator of one replica."""
        return self.spec.gpu


Pool = RealtimePool | BatchPool


def queue_name(spec: InferenceServiceSpec, queue: spec_model.Queue) -> str:
    """The queue (or subscription, or stream) the batch pool reads: `batch.queue.name`, else
    `<service>-jobs`."""
    return queue.name or f"{spec.name}-jobs"


def batch_placement(capacity: spec_model.Capacity) -> Placement:
    """Where the spec's batch capacity may run."""
    if not capacity.spot or capacity.spot_share == 0:
        return "on_demand"
    return "spot_first" if capacity.fallback == "on_demand" else "spot_only"


def realtime_pool(spec: InferenceServiceSpec, sizing: Sizing) -> RealtimePool | None:
    """The realtime pool of a sized spec, or None when the spec has none."""
    if spec.realtime is None or sizing.realtime is None:
        return None
    return RealtimePool(spec=spec.realtime, sizing=sizing.realtime)


def batch_pool(spec: InferenceServiceSpec, sizing: Sizing) -> BatchPool | None:
    """The batch pool of a sized spec, or None when the spec has none."""
    if spec.batch is None or sizing.batch is None:
        return None
    return BatchPool(
        spec=spec.batch, sizing=sizing.batch, placement=batch_placement(spec.batch.capacity)
    )


def pools(spec: InferenceServiceSpec, sizing: Sizing) -> tuple[Pool, ...]:
    """Every pool of a sized spec, realtime first."""
    found: list[Pool | None] = [realtime_pool(spec, sizing), batch_pool(spec, sizing)]
    return tuple(pool for pool in found if pool is not None)


__all__ = [
    "BatchPool",
    "Placement",
    "Pool",
    "RealtimePool",
    "Tier",
    "batch_placement",
    "batch_pool",
    "pools",
    "queue_name",
    "realtime_pool",
]
