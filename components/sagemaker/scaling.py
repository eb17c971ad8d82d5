"""SageMaker's scaling, derived from the plan: bounds, targets, wake alarms, pre-warm schedules.

Pure data, no Pulumi: the component turns these into Application Auto Scaling and CloudWatch
resources, the preview prints them, the simulator runs them. Each number carries its reason.

- Realtime (an inference component): copies between the floor (0 when the spec allows
  scale-to-zero, else the plan's `min_replicas`) and the plan's maximum; target tracking on
  `ConcurrentRequestsPerCopy` (high resolution), whose target is what the plan's batcher model
  says one copy holds in flight at its sized rate (`replica_model.steady_state`, the table the
  Kubernetes targets use); at zero copies SageMaker answers errors, and the
  `NoCapacityInvocationFailures` alarm runs a step policy that adds a copy ("Scale an endpoint
  to zero instances", https://docs.aws.amazon.com/sagemaker/latest/dg/endpoint-auto-scaling-zero-instances.html);
  each pre-warm window of the plan becomes two scheduled actions (raise the floor at the start,
  restore it at the end), in the spike's own timezone.
- Queue work (an asynchronous endpoint's variant): instances between the batch pool's bounds,
  target tracking on `ApproximateBacklogSizePerInstance` at the plan's backlog target, down to
  zero when idle; from zero the `HasBacklogWithoutCapacity` alarm adds an instance ("Autoscale an
  asynchronous endpoint", https://docs.aws.amazon.com/sagemaker/latest/dg/async-inference-autoscale.html).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final

from inferstack.components.planning.plan import ServicePlan
from inferstack.components.planning.pools import BatchPool, RealtimePool
from inferstack.components.planning.replica_model import steady_state
from inferstack.components.planning.sizing import Derived, batcher_rules, compute_law
from inferstack.contract.sagemaker import (
    TargetTrackingAlarms,
    sagemaker_names,
    target_tracking_alarms,
)

SCALE_IN_COOLDOWN_S: Final = 300
"""Application Auto Scaling's default scale-in cooldown: a copy removed at most every 5 min, so
a lull between bursts does not cost a cold start."""
SCALE_OUT_COOLDOWN_S: Final = 60
"""One high-resolution alarm evaluation window (three to six 10 s datapoints) between scale-outs
that only the target-tracking alarm starts; a larger need still scales out within it."""
WAKE_PERIOD_S: Final = target_tracking_alarms().standard_period_s
"""Period of the wake alarms: the no-capacity and backlog metrics are one-minute metrics."""
WAKE_EVALUATION_PERIODS: Final = 1
"""The wake alarms fire on the first breaching datapoint: each minute at zero is an outage (or
a backlog nobody works on), so waiting for a second one would only add a minute to the wake."""
MAX_CONCURRENT_INVOCATIONS: Final = 1000
"""The API's ceiling for MaxConcurrentInvocationsPerInstance."""
VARIANT_NAME: Final = "AllTraffic"
_DAYS: Final = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")


def aws_cron(unix: str) -> str:
    """Application Auto Scaling's `cron(m h dom mon dow year)` for a five-field Unix cron.

    The two differ: AWS numbers the days 1-7 from Sunday (Unix 0-6, 7 also Sunday), wants `?` in
    one of day-of-month and day-of-week, and has a year field. Days are written by name so no
    number is read two ways. `ValueError` for what AWS cannot say (both day fields set, or a
    step in day-of-week).
    """
    fields = unix.split()
    if len(fields) != 5:
        raise ValueError(f"{unix!r} is not a five-field cron")
    minute, hour, dom, month, dow = fields
    if dow == "*":
        return f"cron({minute} {hour} {dom} {month} ? *)"
    if dom != "*":
        raise ValueError(f"{unix!r} sets both day fields, which AWS cron cannot combine")
    if "/" in dow:
        raise ValueError(f"{unix!r} steps through weekdays, which AWS cron cannot say by name")

    def day(text: str) -> str:
        return _DAYS[int(text)] if text.isdigit() else text.upper()

    days = ",".join("-".join(day(end) for end in part.split("-")) for part in dow.split(","))
    return f"cron({minute} {hour} ? {month} {days} *)"


@dataclass(frozen=True)
class ScheduledFloor:
    """One scheduled action: from `schedule` on, at least `min_capacity` copies."""

    name: str
    schedule: str
    timezone: str
    min_capacity: int
    max_capacity: int
    reason: str


@dataclass(frozen=True)
class WakeAlarm:
    """The alarm that runs a step policy adding `adjustment` when the metric reaches 1."""

    metric: str
    dimension: str
    statistic: str
    period_s: int
    evaluation_periods: int
    datapoints_to_alarm: int
    """The alarm fires when this many of the last `evaluation_periods` datapoints reach 1."""
    adjustment: int
    cooldown_s: int
    reason: str


@dataclass(frozen=True, kw_only=True)
class TargetTracking:
    """What both SageMaker scalers share: the instance, target tracking on one metric, its
    cooldowns, the wake alarm from zero and the startup budget."""

    instance_type: str
    metric_period_s: int
    """Period of the tracked metric's datapoints (realtime: high resolution, 10 s; queue work:
    a standard one-minute metric)."""
    alarms: TargetTrackingAlarms = field(default_factory=target_tracking_alarms)
    """The datapoints target tracking's managed alarms wait for."""
    scale_in_cooldown_s: int = SCALE_IN_COOLDOWN_S
    scale_out_cooldown_s: int = SCALE_OUT_COOLDOWN_S
    wake: WakeAlarm | None
    """None when the floor is above zero (nothing to wake)."""
    startup_timeout_s: int
    """How long SageMaker waits for `/ping` on a new copy or instance: the plan's startup
    budget."""


@dataclass(frozen=True, kw_only=True)
class RealtimeScaling(TargetTracking):
    """The inference component's copies and how they follow demand."""

    accelerators_per_copy: int
    min_copies: Derived[int]
    max_copies: Derived[int]
    initial_copies: Derived[int]
    target_concurrency: Derived[float]
    predefined_metric: str
    schedule: tuple[ScheduledFloor, ...]


@dataclass(frozen=True, kw_only=True)
class AsyncScaling(TargetTracking):
    """The asynchronous endpoint's instances and how they follow the backlog."""

    min_instances: Derived[int]
    max_instances: Derived[int]
    target_backlog: Derived[int]
    max_concurrent_invocations: Derived[int]
    metric: str


def _instance_type(plan: ServicePlan, gpu_type: str, gpus: int) -> str:
    cloud = plan.cloud
    machines = cloud.machines_for(gpu_type) if cloud is not None else None
    fitting = machines.fitting(gpus) if machines is not None else ()
    if not fitting:  # plan_service refused these already
        raise ValueError(f"{gpus} x {gpu_type} fit no SageMaker instance")
    # One copy per instance: the smallest instance that carries the copy's accelerators.
    return min(fitting, key=lambda size: size.gpus).name


def _wake_alarm(metric: str, dimension: str, statistic: str, cold_s: int, reason: str) -> WakeAlarm:
    """The alarm that adds one copy or instance from zero: on the first breaching one-minute
    datapoint, then quiet for one cold start so one outage wakes one."""
    return WakeAlarm(
        metric=metric,
        dimension=dimension,
        statistic=statistic,
        period_s=WAKE_PERIOD_S,
        evaluation_periods=WAKE_EVALUATION_PERIODS,
        datapoints_to_alarm=WAKE_EVALUATION_PERIODS,
        adjustment=1,
        cooldown_s=cold_s,
        reason=reason,
    )


def realtime_scaling(plan: ServicePlan, pool: RealtimePool) -> RealtimeScaling:
    """The realtime pool as an inference component's scaling (see the module docstring)."""
    names = sagemaker_names()
    sizing = pool.sizing
    spec = plan.spec
    if pool.spec.scale_to_zero:
        floor = Derived(0, "scale_to_zero: the variant and the component may reach 0 instances")
    else:
        reason = f"the plan's floor: {sizing.min_replicas.reason}"
        floor = Derived(sizing.min_replicas.value, reason)
    rate = sizing.replica_rps.value
    state = steady_state(batcher_rules(spec, pool.gpu.count), compute_law(plan.profile), rate)
    target = Derived(
        round(state.in_flight, 1),
        f"mean in flight {state.in_flight:.1f} per copy (waiting + computing) at the sized "
        f"{rate:,.1f} rps, from the batcher model the Kubernetes targets use",
    )
    cold = math.ceil(plan.sizing.cold_start_seconds.value)
    wake = None
    if floor.value == 0:
        wake = _wake_alarm(
            names.no_capacity_failures,
            names.inference_component_dimension,
            "Maximum",
            cold,
            (
                "at zero copies SageMaker answers every request with an error (it holds none); "
                "the first failure adds one copy, target tracking takes over once it serves; "
                f"cooldown one cold start ({cold} s) so one outage wakes one copy"
            ),
        )
    schedule: list[ScheduledFloor] = []
    for window in sizing.prewarm:
        schedule += [
            ScheduledFloor(
                name=f"prewarm-{window.spike_index}-start",
                schedule=aws_cron(window.start_cron),
                timezone=window.timezone,
                min_capacity=window.desired_replicas,
                max_capacity=sizing.max_replicas.value,
                reason=window.reason,
            ),
            ScheduledFloor(
                name=f"prewarm-{window.spike_index}-end",
                schedule=aws_cron(window.end_cron),
                timezone=window.timezone,
                min_capacity=floor.value,
                max_capacity=sizing.max_replicas.value,
                reason=f"spike {window.spike_index} over: the floor returns to {floor.value}",
            ),
        ]
    return RealtimeScaling(
        instance_type=_instance_type(plan, pool.gpu.type, pool.gpu.count),
        accelerators_per_copy=pool.gpu.count,
        min_copies=floor,
        max_copies=Derived(sizing.max_replicas.value, sizing.max_replicas.reason),
        initial_copies=Derived(
            max(1, floor.value), "SageMaker creates a component with at least one copy"
        ),
        target_concurrency=target,
        predefined_metric=names.concurrency_per_copy,
        metric_period_s=target_tracking_alarms().high_resolution_period_s,
        wake=wake,
        schedule=tuple(schedule),
        startup_timeout_s=sizing.startup_seconds.value,
    )


def async_scaling(plan: ServicePlan, pool: BatchPool) -> AsyncScaling:
    """The batch pool as an asynchronous endpoint's scaling (see the module docstring)."""
    names = sagemaker_names()
    sizing = pool.sizing
    cold = math.ceil(plan.sizing.cold_start_seconds.value)
    per_instance = max(1, min(MAX_CONCURRENT_INVOCATIONS, sizing.batch_size.value))
    wake = None
    if sizing.min_replicas.value == 0:
        wake = _wake_alarm(
            names.backlog_without_capacity,
            names.endpoint_dimension,
            "Average",
            cold,
            (
                "at zero instances SageMaker keeps the requests queued; target tracking on the "
                "backlog per instance cannot divide by zero instances, so this alarm adds the "
                f"first one (cooldown one cold start, {cold} s)"
            ),
        )
    return AsyncScaling(
        instance_type=_instance_type(plan, pool.gpu.type, pool.gpu.count),
        min_instances=sizing.min_replicas,
        max_instances=sizing.max_replicas,
        target_backlog=sizing.target_per_replica,
        max_concurrent_invocations=Derived(
            per_instance,
            f"one batch of {sizing.batch_size.value} per instance ({sizing.batch_size.reason})",
        ),
        metric=names.backlog_per_instance,
        metric_period_s=target_tracking_alarms().standard_period_s,
        wake=wake,
        startup_timeout_s=sizing.startup_seconds.value,
    )


__all__ = [
    "VARIANT_NAME",
    "WAKE_EVALUATION_PERIODS",
    "AsyncScaling",
    "RealtimeScaling",
    "ScheduledFloor",
    "TargetTracking",
    "WakeAlarm",
    "async_scaling",
    "aws_cron",
    "realtime_scaling",
]
