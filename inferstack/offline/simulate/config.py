"""What the simulator runs: one scenario (a configuration of both pools) in its own terms.

Nothing here reads a spec, a profile or a manifest: `inputs` builds these from them, and
`scenarios` derives the naive and competent-default alternatives from a configured one, so the
engine depends on this module alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from inferstack.offline.simulate.arrivals import Spike
from inferstack.offline.simulate.autoscaler import ScaledObjectParams
from inferstack.offline.simulate.replica import BatcherParams, ComputeModel

DemandMetric = Literal["queue_depth", "in_flight", "rps"]
Opening = Literal["settled", "floor"]
CONSOLIDATION_SECONDS = 600.0
"""An empty GPU node is removed after this long: the cluster autoscaler's default
`--scale-down-unneeded-time` (10 min). Karpenter's `consolidateAfter` is set per NodePool."""
SCRAPE_SECONDS = 15.0
RATE_WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class ColdStart:
    """Seconds from "a pod is created" to "it serves", by part (the profile's split)."""

    node_provision_s: float
    image_pull_s: float
    model_load_s: float
    warmup_s: float
    model_download_s: float = 0.0
    """A fetched model's download at every pod start (the plan's `model_download` part)."""

    @property
    def pod_s(self) -> float:
        """On a node that already has the image: the download (a fetched model), load, warm-up."""
        return self.model_download_s + self.model_load_s + self.warmup_s

    @property
    def new_node_s(self) -> float:
        """On a node that must be provisioned first."""
        return self.node_provision_s + self.image_pull_s + self.pod_s


@dataclass(frozen=True)
class Prices:
    """Per-GPU hourly prices of one pool's machine."""

    on_demand_per_gpu_hour: float
    spot_per_gpu_hour: float
    gpus_per_node: int
    source: str


@dataclass(frozen=True)
class RealtimePool:
    """The synchronous pool as one scenario runs it."""

    batcher: BatcherParams
    compute: ComputeModel
    gpus_per_replica: int
    prices: Prices
    latency_budget_s: float
    metric: DemandMetric
    scaler: ScaledObjectParams | None
    """None: a fixed replica count (the naive configuration)."""
    fixed_replicas: int = 0
    scale_to_zero: bool = False
    hold_timeout_s: float = 0.0
    """How long the HTTP add-on holds a request while the pool is at zero."""


@dataclass(frozen=True)
class BatchPool:
    """The asynchronous pool: queue work, spot with on-demand fallback."""

    items_per_second: float
    """Arrival rate of queue items (from `expected_items_per_day`)."""
    replica_items_per_second: float
    gpus_per_replica: int
    prices: Prices
    scaler: ScaledObjectParams | None
    fixed_replicas: int = 0
    spot: bool = True
    spot_share: float = 1.0
    """Share of the replicas on spot (the spec's `batch.capacity.spot_share`, or 1); the rest
    run on-demand and are never interrupted."""
    fallback_on_demand: bool = True
    notice_s: float = 120.0
    grace_s: float = 105.0
    max_job_s: float = 600.0
    retention_s: float = math.inf
    """How long the queue keeps an unread item before deleting it (SQS's
    `MessageRetentionPeriod`, Pub/Sub's retention); a backlog older than this is lost."""
    schedule: Spike | None = None
    """When the items arrive (the spec's `batch.schedule`): each run of the cron brings a day's
    items at `rps` items/s for `duration_s`; None: `items_per_second` around the clock."""


@dataclass(frozen=True)
class Scenario:
    """One configuration to simulate."""

    name: str
    description: str
    realtime: RealtimePool | None
    batch: BatchPool | None
    cold_start: ColdStart
    consolidation_s: float = CONSOLIDATION_SECONDS
    scrape_s: float = SCRAPE_SECONDS
    spot_interruptions_per_node_hour: float = 0.05
    spot_shortage_mean_s: float = 1800.0
    """After an interruption, how long (exponential mean) the spot pool cannot get capacity."""
    opening: Opening = "settled"
    """How the pools start: settled for the opening rate (a stack that has been running), or
    at their floors (a fresh deploy meeting its traffic); see `opening`."""


@dataclass(frozen=True)
class Facts:
    """Sized numbers the alternative scenarios are built from."""

    baseline_rps: float
    peak_rps: float
    replica_rps: float
    """Sized requests per second of one realtime replica."""
    single_replica_rps: float
    """The same at batch 1 (the naive configuration)."""
    realtime_max: int
    batch_single_items_per_second: float
    spikes: tuple[Spike, ...] = ()
    """The spec's declared spikes (the competent default writes a cron trigger for each)."""


def naive_replicas(peak_rps: float, single_replica_rps: float) -> int:
    """Peak-sized at batch 1."""
    return max(1, math.ceil(peak_rps / single_replica_rps))
