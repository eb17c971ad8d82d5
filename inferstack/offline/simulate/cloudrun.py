"""Cloud Run's own instance autoscaling for a GPU service, in the KEDA scaler's interface.

On the `cloudrun` target the realtime pool runs this loop instead of KEDA's, built from the
same data the component renders (`components.cloudrun.scaling.service_scaling`):

- Concurrency-based scaling ("About instance autoscaling",
  https://cloud.google.com/run/docs/about-instance-autoscaling): Cloud Run keeps each
  instance's request concurrency at 60 % of its maximum over a one-minute window. At each sync
  the wanted count is `ceil(in flight / (0.6 x maximum concurrency))`; a rise is acted on at
  once (on-demand scaling adds instances as requests arrive), a fall only once the one-minute
  window has seen no higher need.
- Idle instances: "Cloud Run removes instances that are not processing requests (idle)"
  ("Set minimum instances for services", https://cloud.google.com/run/docs/configuring/min-instances)
  without saying when; users report 10 to 15 minutes (third-party write-ups of Cloud Run GPUs),
  and with instance-based billing (which GPU services require) that time is billed. The loop
  scales to zero only after `IDLE_KEEP_S` (15 minutes) without need: the bill's upper bound, a
  constant to re-check against a real service's instance count metric.
- Minimum instances: the service-level minimum (0 with scale-to-zero), raised and restored by
  the pre-warm scheduler jobs (the plan's windows, as `CronTrigger` floors), applied at once.
- From zero, Cloud Run holds the requests at its front end while an instance starts (requests
  wait, up to the request timeout, rather than fail): the pool keeps the spec's `scale_to_zero`
  and the engine's held-request model, and a held request starts one instance at once.

- A new instance pays the plan's Cloud Run cold start (`components.planning.cold_start`): no
  node, Google's 5 s GPU instance start where a Kubernetes pool waits for a node (the scenario's
  `node_provision_s`), then the image (the profile's whole pull: Cloud Run streams it, so an
  upper bound), the model's download (a fetched model), load and warm-up; an instance the
  autoscaler removes is gone (no kept node).

Not modelled: the CPU-utilisation driver (60 % CPU).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from inferstack.components.cloudrun.scaling import CONCURRENCY_TARGET, service_scaling
from inferstack.offline.simulate.autoscaler import (
    DEFAULT_BEHAVIOR,
    MAX_INT32,
    HorizontalPodAutoscaler,
    KedaScaler,
    ScaledObjectParams,
    prewarm_floors,
)
from inferstack.offline.simulate.config import RealtimePool, Scenario
from inferstack.offline.stack_config import StackConfig

WINDOW_S = 60.0
"""The autoscaler's averaging window: a fall is acted on after a minute without a higher need."""
IDLE_KEEP_S = 900.0
"""How long the loop keeps (and bills) an idle last instance: 15 minutes, the reported bound."""
POLL_S = 10.0
TARGET = "cloudrun"
"""The stack target whose realtime pool runs this loop."""


@dataclass(frozen=True)
class CloudRunScaling(ScaledObjectParams):
    """A Cloud Run service's autoscaling, as the simulator runs it."""

    max_concurrency: float = 80.0
    """Maximum concurrent requests per instance."""
    idle_keep_s: float = IDLE_KEEP_S


@dataclass
class CloudRunScaler(KedaScaler):
    """Cloud Run's instance autoscaler for one service (see the module docstring)."""

    params: CloudRunScaling
    lower_since: float = field(default=math.inf)

    def __post_init__(self) -> None:
        # Unused: its floor above every count keeps the quiet planner from skipping syncs.
        self.hpa = HorizontalPodAutoscaler(MAX_INT32, MAX_INT32, DEFAULT_BEHAVIOR)

    def floor(self, now: float) -> int:
        """The minimum instances at `now`: the service's, or a pre-warm job's."""
        return min(self.params.max_replicas, max(self.params.min_replicas, self.cron_metric(now)))

    def poll(self, now: float, current: int, demand: float, held: int) -> int:
        """A raised minimum applies at once; a request held at zero starts one instance."""
        floor = self.floor(now)
        if current < floor:
            self.last_active = now
            return floor
        if current == 0 and held > 0:
            self.last_active = now
            return min(self.params.max_replicas, 1)
        return current

    def hpa_sync(self, now: float, current: int, demand: float, concurrency: float) -> int:
        """Concurrency scaling: up at once, down after a window and the idle keep."""
        per_instance = CONCURRENCY_TARGET * self.params.max_concurrency
        wanted = math.ceil(concurrency / per_instance - 1e-9)
        wanted = min(self.params.max_replicas, max(self.floor(now), wanted))
        if wanted > current:
            self.lower_since = math.inf
            self.last_active = now
            return wanted
        if wanted == current:
            self.lower_since = math.inf
            return current
        if not math.isfinite(self.lower_since):
            self.lower_since = now
        waited = now - self.lower_since
        # To a lower count after the window; to zero after the idle keep (the bill's bound).
        if waited >= (self.params.idle_keep_s if wanted == 0 else WINDOW_S):
            self.lower_since = math.inf
            return wanted
        return current


def cloudrun_realtime(config: StackConfig, pool: RealtimePool) -> RealtimePool:
    """The realtime pool with the Cloud Run service's autoscaling in place of KEDA's."""
    planned = config.plan.realtime
    assert planned is not None  # `pool` exists only for a planned realtime pool
    options = config.cloudrun
    rendered = service_scaling(
        config.plan,
        planned,
        zonal_redundancy=options.gpu_zonal_redundancy if options is not None else False,
    )
    sizing = planned.sizing
    floors = prewarm_floors(sizing.prewarm)
    scaling = CloudRunScaling(
        polling_seconds=POLL_S,
        cooldown_seconds=IDLE_KEEP_S,
        min_replicas=rendered.min_instances.value,
        max_replicas=rendered.max_instances.value,
        behavior=DEFAULT_BEHAVIOR,
        demand_threshold=sizing.replica_rps.value,
        activation_threshold=0.0,
        crons=floors,
        max_concurrency=float(rendered.max_concurrency.value),
    )
    return replace(pool, metric="rps", scaler=scaling)


def cloudrun_scenario(scenario: Scenario) -> Scenario:
    """The configured scenario on Cloud Run: on-demand only (no spot), instances removed once
    the autoscaler lets them go."""
    batch = scenario.batch
    return replace(
        scenario,
        batch=replace(batch, spot=False) if batch is not None else None,
        description="as the stack renders it on Cloud Run: its batching, concurrency-based "
        "instance scaling, minimum instances, scheduled pre-warm; requests held at zero",
        consolidation_s=0.0,
        scrape_s=POLL_S,
    )


__all__ = [
    "IDLE_KEEP_S",
    "TARGET",
    "WINDOW_S",
    "CloudRunScaler",
    "CloudRunScaling",
    "cloudrun_realtime",
    "cloudrun_scenario",
]
