"""Cloud Run's scaling, derived from the plan: instances, concurrency, probes, pre-warm, workers.

Pure data, no Pulumi: the component turns these into the service, the scheduler jobs and the
worker pool; the preview prints them. Each number carries its reason.

- Realtime (a Cloud Run service, "About instance autoscaling",
  https://cloud.google.com/run/docs/about-instance-autoscaling): Cloud Run adds instances to keep
  each one's request concurrency at 60 % of its maximum over a one-minute window. The maximum per
  instance is derived so that at that 60 % an instance holds what the plan's batcher model says
  one replica holds in flight at its sized rate (`replica_model.steady_state`, the table the
  Kubernetes targets use), and never below the pool's batch: with fewer requests in flight the
  batcher could never fill a batch. Minimum instances 0 when the spec allows scale-to-zero (the
  spec has checked the cold start against the budget), else the plan's floor; maximum the plan's
  (a GPU service without a maximum is a bill without a bound). The startup probe spans the
  plan's startup budget ("Configure container health checks",
  https://cloud.google.com/run/docs/configuring/healthchecks).
- Pre-warm: Cloud Run has no scheduled scaling. Each window of the plan becomes two Cloud
  Scheduler jobs that PATCH the service's `scaling.minInstanceCount` through the Admin API
  (raise at the window's start, restore at its end; a service-level setting, no new revision:
  "Minimum instances for services", https://cloud.google.com/run/docs/configuring/min-instances).
- Queue work (a worker pool, "Manual scaling for worker pools",
  https://cloud.google.com/run/docs/configuring/workerpools/manual-scaling): worker pools do not
  autoscale; the instance count is set. It is the count that drains the declared daily items at
  the batched rate, within the pool's bounds; following the backlog needs an external scaler,
  Google's CREMA ("Autoscale worker pools with external metrics",
  https://cloud.google.com/run/docs/configuring/workerpools/crema-autoscaling), which this stack
  does not deploy and the preview says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from inferstack.components.planning.cost import fixed_worker_count
from inferstack.components.planning.plan import ServicePlan
from inferstack.components.planning.pools import BatchPool, RealtimePool
from inferstack.components.planning.replica_model import steady_state
from inferstack.components.planning.sizing import Derived, batcher_rules, compute_law

CONCURRENCY_TARGET: Final = 0.6
"""The share of the maximum concurrency Cloud Run's autoscaler keeps each instance at."""
MAX_CONCURRENCY: Final = 1000
"""The largest maximum concurrent requests per instance Cloud Run accepts."""
STARTUP_PERIOD_S: Final = 10
STARTUP_TIMEOUT_S: Final = 5
"""Startup probe: one GET every 10 s, each answered within 5 s."""
CPU: Final = 4
MEMORY_GIB: Final = 16
"""Per instance: the least Cloud Run allows beside an L4 (the priced shape)."""


@dataclass(frozen=True)
class PrewarmJob:
    """One Cloud Scheduler job: from `schedule` on, at least `min_instances` instances."""

    name: str
    schedule: str
    timezone: str
    min_instances: int
    reason: str


@dataclass(frozen=True)
class ServiceScaling:
    """The Cloud Run service's instances, concurrency and startup."""

    min_instances: Derived[int]
    max_instances: Derived[int]
    max_concurrency: Derived[int]
    cpu: Derived[int]
    memory_gib: Derived[int]
    cpu_always_allocated: Derived[bool]
    gpu_zonal_redundancy: Derived[bool]
    startup_period_s: int
    startup_failure_threshold: Derived[int]
    prewarm: tuple[PrewarmJob, ...]


@dataclass(frozen=True)
class WorkerScaling:
    """The worker pool's manual instance count and the bounds an external scaler would use."""

    instances: Derived[int]
    min_instances: Derived[int]
    max_instances: Derived[int]
    autoscaling: str


def service_scaling(
    plan: ServicePlan, pool: RealtimePool, *, zonal_redundancy: bool = False
) -> ServiceScaling:
    """The realtime pool as a Cloud Run service's scaling (see the module docstring)."""
    sizing = pool.sizing
    if pool.spec.scale_to_zero:
        floor = Derived(0, "scale_to_zero: Cloud Run stops every instance while idle")
    else:
        floor = Derived(
            sizing.min_replicas.value, f"the plan's floor: {sizing.min_replicas.reason}"
        )
    rate = sizing.replica_rps.value
    state = steady_state(batcher_rules(plan.spec, pool.gpu.count), compute_law(plan.profile), rate)
    batch = sizing.batch_size.value
    wanted = math.ceil(state.in_flight / CONCURRENCY_TARGET)
    concurrency = min(MAX_CONCURRENCY, max(batch, wanted))
    why = (
        f"mean in flight {state.in_flight:.1f} per instance at the sized {rate:,.1f} rps (the "
        f"batcher model) over Cloud Run's 60 % concurrency target = {wanted}"
    )
    if concurrency == batch and batch >= wanted:
        why += f"; raised to the batch of {batch} so the batcher can fill it"
    if concurrency == MAX_CONCURRENCY and wanted > MAX_CONCURRENCY:
        why += f"; capped at Cloud Run's maximum of {MAX_CONCURRENCY}"
    startup = sizing.startup_seconds.value
    failures = max(1, math.ceil(startup / STARTUP_PERIOD_S))
    jobs: list[PrewarmJob] = []
    for window in sizing.prewarm:
        jobs += [
            PrewarmJob(
                name=f"prewarm-{window.spike_index}-start",
                schedule=window.start_cron,
                timezone=window.timezone,
                min_instances=window.desired_replicas,
                reason=window.reason,
            ),
            PrewarmJob(
                name=f"prewarm-{window.spike_index}-end",
                schedule=window.end_cron,
                timezone=window.timezone,
                min_instances=floor.value,
                reason=f"spike {window.spike_index} over: the floor returns to {floor.value}",
            ),
        ]
    redundancy = (
        "gpu_zonal_redundancy: true: capacity reserved in other zones (dearer per GPU-second)"
        if zonal_redundancy
        else "off (inferstack:cloudrun.gpu_zonal_redundancy): cheaper per GPU-second, best "
        "effort when a zone fails"
    )
    return ServiceScaling(
        min_instances=floor,
        max_instances=Derived(sizing.max_replicas.value, sizing.max_replicas.reason),
        max_concurrency=Derived(concurrency, why),
        cpu=Derived(CPU, "the least Cloud Run allows beside an L4"),
        memory_gib=Derived(MEMORY_GIB, "the least Cloud Run allows beside an L4"),
        cpu_always_allocated=Derived(
            True,
            "instance-based billing, which GPU services require: the batcher's timer and the "
            "model keep running between requests",
        ),
        gpu_zonal_redundancy=Derived(zonal_redundancy, redundancy),
        startup_period_s=STARTUP_PERIOD_S,
        startup_failure_threshold=Derived(
            failures,
            f"{failures} x {STARTUP_PERIOD_S} s covers the plan's startup budget ({startup} s: "
            "model load and warm-up)",
        ),
        prewarm=tuple(jobs),
    )


def worker_scaling(plan: ServicePlan, pool: BatchPool) -> WorkerScaling:
    """The batch pool as a worker pool's manual count (see the module docstring)."""
    sizing = pool.sizing
    low, high = sizing.min_replicas.value, sizing.max_replicas.value
    rate = sizing.replica_items_per_second.value
    items = pool.spec.expected_items_per_day
    if items is None:
        count = Derived(
            max(1, low),
            "no batch.expected_items_per_day: one instance (worker pools do not scale to zero "
            "on their own; a count of 0 would never drain)",
        )
    else:
        workers, needed = fixed_worker_count(items, rate, low, high)
        count = Derived(
            workers,
            f"{items:,.0f} items/day at {rate:g} items/s per instance need {needed}; bounded "
            f"by the pool's {max(1, low)}..{high}; manual instances bill as active even idle",
        )
    return WorkerScaling(
        instances=count,
        min_instances=sizing.min_replicas,
        max_instances=sizing.max_replicas,
        autoscaling=(
            "manual: worker pools do not autoscale; to follow the Pub/Sub backlog deploy "
            "CREMA (Cloud Run External Metrics Autoscaling, a gcp-pubsub scaler) between "
            f"{low} and {high} at {sizing.target_per_replica.value:g} messages per instance"
        ),
    )


__all__ = [
    "CONCURRENCY_TARGET",
    "PrewarmJob",
    "ServiceScaling",
    "WorkerScaling",
    "service_scaling",
    "worker_scaling",
]
