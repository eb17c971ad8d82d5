"""SageMaker's own scaling loops, in the KEDA scaler's interface.

The Kubernetes loop (KEDA polls, the HPA syncs, the HTTP add-on holds requests at zero) is not
what a SageMaker endpoint runs. On the `sagemaker` target both pools run Application Auto
Scaling instead, built from the same data the component renders
(`components.sagemaker.scaling.realtime_scaling` and `async_scaling`: bounds, targets, metric
periods, alarm datapoints, cooldowns, wake alarms), so the simulation reads each number where
the component writes it.

Target tracking (both pools; "How target tracking scaling for Application Auto Scaling works",
https://docs.aws.amazon.com/autoscaling/application/userguide/target-tracking-scaling-policy-overview.html):
the policy's alarms watch the tracked metric in datapoints of the metric's period;
scale-out when the high alarm has seen `high_datapoints` datapoints over the target,
scale-in when the low alarm has seen `low_datapoints` under `scale_in_fraction` of it. The new
count is proportional: `ceil(capacity * metric / target)`. The counts come from
`inferstack.contract.sagemaker.target_tracking_alarms`, where they are marked unverified (users
read them off the managed alarms; no AWS page states them). A scale-in waits for both cooldowns
since the last scaling activity.

- Realtime (an inference component): the metric is `ConcurrentRequestsPerCopyHighResolution`
  (waiting + computing per copy) in 10 s datapoints ("Create a target tracking policy using
  high-resolution metrics", https://docs.aws.amazon.com/autoscaling/ec2/userguide/policy-creating-high-resolution-metrics.html).
  Scheduled actions: each pre-warm window raises the minimum capacity at its start and restores
  it at its end, in the spike's timezone; below a new minimum Application Auto Scaling scales to
  it at once. The windows reuse `CronTrigger` (a floor between two crons), read from the plan's
  pre-warm windows the component turns into its scheduled actions. At zero copies SageMaker
  answers every request with an error and holds none ("Scale an endpoint to zero instances",
  https://docs.aws.amazon.com/sagemaker/latest/dg/endpoint-auto-scaling-zero-instances.html):
  the pool's `scale_to_zero` is False for the engine, so both modes count those requests as
  refused, never held. The `NoCapacityInvocationFailures` alarm (one-minute periods) runs the
  step policy that adds one copy; the simulator sees those failures as the arrival rate over the
  last minute while at zero (the pool's scraped metric is `rps`). The metric: both simulation
  modes hand the scaler the pool's total in flight (ready copies' waiting + computing) at every
  15 s sync (`hpa_sync`'s `concurrency`); the alarms count that sample as 15 s of datapoints.
- Queue work (an asynchronous endpoint's variant, "Autoscale an asynchronous endpoint",
  https://docs.aws.amazon.com/sagemaker/latest/dg/async-inference-autoscale.html): target
  tracking on `ApproximateBacklogSizePerInstance` (Average, one-minute datapoints: the queue's
  backlog plus its items in flight, sampled at every 15 s poll and averaged over each minute,
  divided by the instance count), minimum 0. Target tracking cannot see a backlog with no
  instance (the per-instance metric has nothing to divide by), so from zero the
  `HasBacklogWithoutCapacity` alarm (Average of the minute's 0/1 samples, threshold 1, the
  rendered period and datapoints) runs the step policy that adds an instance: a wake from zero
  takes the alarm's period x datapoints (counted from the first whole minute with a backlog)
  plus an instance start, where KEDA's loop took one poll. Requests wait in SageMaker's queue
  meanwhile (none is refused).
- An instance is removed as soon as it is empty (managed instance scaling; the async variant's
  instances are the scalable target itself), so every copy or instance pays the plan's whole
  cold start (instance, image, model load, warm-up): `consolidation_s` is 0.

The HPA the KEDA scaler carries is unused here; its floor sits above any count so that the fast
mode's quiet planner (which predicts the HPA) never skips SageMaker's datapoints.

The competent default on SageMaker (`competent_realtime`, `competent_batch`) runs these loops
too, not KEDA's: a team that knows SageMaker's autoscaling and keeps AWS's defaults. Target
tracking on the same concurrency-per-copy metric, at the target AWS's load-testing guide starts
from: half the copy's peak rate (`SAFETY_FACTOR`; "Load testing your auto scaling
configuration", https://docs.aws.amazon.com/sagemaker/latest/dg/endpoint-scaling-loadtest.html,
states it for invocations per instance, `MAX_RPS * SAFETY_FACTOR`), read as concurrency per
copy through the batcher model the component's own target comes from; Application Auto
Scaling's default cooldowns (`DEFAULT_COOLDOWN_S`); the competent default's floor and a
scheduled action at each declared spike's start (no lead), as on Kubernetes.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, replace
from typing import TypeVar

from inferstack.components.planning.replica_model import steady_state
from inferstack.components.planning.sizing import (
    TARGET_UTILISATION,
    batcher_rules,
    compute_law,
)
from inferstack.components.sagemaker.scaling import (
    AsyncScaling,
    WakeAlarm,
    async_scaling,
    realtime_scaling,
)
from inferstack.contract.sagemaker import target_tracking_alarms
from inferstack.offline.simulate.autoscaler import (
    DEFAULT_BEHAVIOR,
    HPA_SYNC_SECONDS,
    MAX_INT32,
    CronTrigger,
    HorizontalPodAutoscaler,
    KedaScaler,
    ScaledObjectParams,
    prewarm_floors,
)
from inferstack.offline.simulate.config import BatchPool, RealtimePool, Scenario
from inferstack.offline.stack_config import StackConfig

_ALARMS = target_tracking_alarms()
DATAPOINT_SECONDS = float(_ALARMS.high_resolution_period_s)
"""High-resolution metric period: one datapoint every 10 s (the realtime pool's polling)."""
SCALE_OUT_DATAPOINTS = _ALARMS.high_datapoints
"""Datapoints over the target before the high alarm fires (AlarmHigh)."""
SCALE_IN_DATAPOINTS = _ALARMS.low_datapoints
"""Datapoints under the low threshold before the low alarm fires (AlarmLow)."""
SCALE_IN_FRACTION = _ALARMS.scale_in_fraction
"""The low alarm's threshold as a fraction of the target ("usually more than 10%" below)."""
ASYNC_SAMPLE_SECONDS = HPA_SYNC_SECONDS
"""How often the simulator samples the queue for the async alarms' one-minute datapoints (the
fast mode steps the queue every 15 s)."""
TARGET = "sagemaker"
"""The stack target whose realtime pool runs this loop."""
SAFETY_FACTOR = 0.5
"""The share of a copy's peak rate AWS's load-testing guide starts a target-tracking target at
("SageMaker AI recommends that you start testing with a SAFETY_FACTOR of 0.5"): the competent
default's target."""
DEFAULT_COOLDOWN_S = 300.0
"""Application Auto Scaling's ScaleInCooldown and ScaleOutCooldown when a target-tracking
policy sets neither, for SageMaker endpoint variants ("Application Auto Scaling provides a
default value of 300"; TargetTrackingScalingPolicyConfiguration, Application Auto Scaling API
reference, https://docs.aws.amazon.com/autoscaling/application/APIReference/API_TargetTrackingScalingPolicyConfiguration.html):
the competent default's cooldowns (`_with_default_cooldowns`)."""


@dataclass(frozen=True)
class SageMakerScaling(ScaledObjectParams):
    """An inference component's Application Auto Scaling, as the simulator runs it.

    The inherited fields keep their meaning for the shared code (bounds, the opening's rps
    threshold per copy, the scheduled floors as `crons`); the rest are SageMaker's.
    """

    target_concurrency: float = 1.0
    """Target tracking's target: concurrent requests per copy."""
    datapoint_s: float = DATAPOINT_SECONDS
    """The tracked metric's period (high resolution)."""
    high_datapoints: int = SCALE_OUT_DATAPOINTS
    low_datapoints: int = SCALE_IN_DATAPOINTS
    scale_in_fraction: float = SCALE_IN_FRACTION
    scale_out_cooldown_s: float = 60.0
    scale_in_cooldown_s: float = 300.0
    wake_period_s: float = 60.0
    """Period of the NoCapacityInvocationFailures alarm; 0: no wake alarm (floor above 0)."""
    wake_datapoints: int = 1
    """Consecutive breaching minutes the wake alarm waits for (as rendered)."""
    wake_adjustment: int = 1
    documented_target: float = 1.0
    """The concurrency per copy at `SAFETY_FACTOR` of the copy's peak rate (the batcher model):
    the target the competent default tracks (`competent_realtime`)."""


@dataclass
class SageMakerScaler(KedaScaler):
    """Application Auto Scaling's loop for one inference component (see the module docstring).

    `poll` runs every datapoint (10 s): scheduled floors and the wake alarm. `hpa_sync` runs at
    the engine's 15 s syncs with the pool's total in flight: the target-tracking alarms.
    """

    params: SageMakerScaling
    over_s: float = 0.0
    under_s: float = 0.0
    last_sample: float = field(default=-math.inf)
    last_out: float = field(default=-math.inf)
    last_activity: float = field(default=-math.inf)
    wakes: int = 0
    failing_minutes: int = 0
    """Consecutive closed wake-alarm periods with at least one failure at zero copies."""

    def __post_init__(self) -> None:
        # Unused: its floor above every count keeps the quiet planner from skipping datapoints.
        self.hpa = HorizontalPodAutoscaler(MAX_INT32, MAX_INT32, DEFAULT_BEHAVIOR)

    def floor(self, now: float) -> int:
        """The minimum capacity at `now`: the scalable target's, or a scheduled action's."""
        return min(self.params.max_replicas, max(self.params.min_replicas, self.cron_metric(now)))

    def poll(self, now: float, current: int, demand: float, held: int) -> int:
        """A datapoint: a scheduled floor above the count applies at once; at zero, the wake.

        `demand`: arrivals per second over the last minute, all failed while at zero.
        """
        floor = self.floor(now)
        if current < floor:
            self._activity(now)
            return floor
        period = self.params.wake_period_s
        closes = period > 0 and math.floor(now / period) > math.floor(
            (now - self.params.datapoint_s) / period
        )
        if closes:
            failed = current == 0 and demand * period >= 1.0
            self.failing_minutes = self.failing_minutes + 1 if failed else 0
        if current == 0 and closes and self.failing_minutes >= self.params.wake_datapoints:
            # The alarm's last minutes each held a NoCapacityInvocationFailures: step policy.
            self.failing_minutes = 0
            self.wakes += 1
            self._activity(now)
            self.last_out = now
            return min(self.params.max_replicas, current + self.params.wake_adjustment)
        return current

    def hpa_sync(self, now: float, current: int, demand: float, concurrency: float) -> int:
        """Target tracking on the sampled concurrency per copy (the sample spans its sync)."""
        first = not math.isfinite(self.last_sample)
        elapsed = HPA_SYNC_SECONDS if first else now - self.last_sample
        self.last_sample = now
        if current == 0:
            self.over_s = self.under_s = 0.0  # no copies, no per-copy datapoints
            return current
        target = self.params.target_concurrency
        value = concurrency / current
        if value > target:
            self.over_s, self.under_s = self.over_s + elapsed, 0.0
        elif value < self.params.scale_in_fraction * target:
            self.over_s, self.under_s = 0.0, self.under_s + elapsed
        else:
            self.over_s = self.under_s = 0.0
        proposed = math.ceil(current * value / target - 1e-9)
        floor = self.floor(now)
        span = self.params.datapoint_s
        high = self.over_s >= self.params.high_datapoints * span - 1e-9
        low = self.under_s >= self.params.low_datapoints * span - 1e-9
        if high and proposed > current and now - self.last_out >= self.params.scale_out_cooldown_s:
            self.last_out = now
            self._activity(now)
            self.over_s = 0.0
            return min(self.params.max_replicas, proposed)
        if (
            low
            and max(floor, proposed) < current
            and now - self.last_activity >= self.params.scale_in_cooldown_s
            and now - self.last_out >= self.params.scale_out_cooldown_s
        ):
            self._activity(now)
            self.under_s = 0.0
            return max(floor, proposed)
        return current

    def _activity(self, now: float) -> None:
        self.last_activity = now
        self.last_active = now


@dataclass(frozen=True)
class SageMakerAsyncScaling(ScaledObjectParams):
    """An asynchronous endpoint's Application Auto Scaling, as the simulator runs it.

    The inherited fields keep their meaning for the shared code: the bounds, `demand_threshold`
    (the backlog target per instance, which the queue's opening reads) and `polling_seconds`
    (how often the queue is sampled); the rest are SageMaker's, as `async_scaling` renders them.
    """

    target_backlog: float = 1.0
    """Target tracking's target: ApproximateBacklogSizePerInstance."""
    datapoint_s: float = 60.0
    high_datapoints: int = SCALE_OUT_DATAPOINTS
    low_datapoints: int = SCALE_IN_DATAPOINTS
    scale_in_fraction: float = SCALE_IN_FRACTION
    scale_out_cooldown_s: float = 60.0
    scale_in_cooldown_s: float = 300.0
    wake_period_s: float = 0.0
    """Period of the HasBacklogWithoutCapacity alarm; 0: no wake alarm (minimum above 0)."""
    wake_evaluation_periods: int = 1
    wake_datapoints: int = 1
    wake_adjustment: int = 1
    wake_cooldown_s: float = 0.0


@dataclass
class _Datapoints:
    """One CloudWatch metric's Average datapoints, from the simulator's samples of it.

    A sample at `now` belongs to the period that ends at or after `now`; the datapoint closes at
    the period's end (or at the first sample past it). A period with no sample that has a value
    (no instance to divide by) is a missing datapoint: NaN, which breaches no alarm.
    """

    period_s: float
    keep: int
    bucket: int = -1
    total: float = 0.0
    present: int = 0
    samples: int = 0
    closed: deque[float] = field(default_factory=deque)

    def add(self, now: float, value: float | None) -> bool:
        """Add a sample; True when a datapoint closed."""
        bucket = math.ceil(now / self.period_s - 1e-9) - 1
        closed = False
        if self.samples and bucket > self.bucket:
            self._close()
            closed = True
        self.bucket = bucket
        self.samples += 1
        if value is not None:
            self.total += value
            self.present += 1
        if abs(now - (bucket + 1) * self.period_s) < 1e-6:
            self._close()
            closed = True
        return closed

    def _close(self) -> None:
        self.closed.append(self.total / self.present if self.present else math.nan)
        while len(self.closed) > self.keep:
            self.closed.popleft()
        self.total, self.present, self.samples = 0.0, 0, 0

    def last(self, count: int) -> list[float]:
        """The last `count` datapoints, oldest first (fewer while the alarm is young)."""
        return list(self.closed)[-count:]

    def clear(self) -> None:
        """Forget the closed datapoints (the alarm's state after a change of capacity)."""
        self.closed.clear()


@dataclass
class SageMakerAsyncScaler(KedaScaler):
    """Application Auto Scaling's loop for an asynchronous endpoint (see the module docstring).

    `poll` runs every `polling_seconds` with the queue's backlog plus items in flight: a sample
    of both metrics; at each datapoint's close, the alarms. `hpa_sync` changes nothing (no HPA).
    """

    params: SageMakerAsyncScaling
    backlog: _Datapoints = field(init=False)
    starved: _Datapoints = field(init=False)
    last_out: float = field(default=-math.inf)
    last_activity: float = field(default=-math.inf)
    last_wake: float = field(default=-math.inf)
    wakes: int = 0
    woken_at: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Unused: its floor above every count keeps the quiet planner from skipping samples.
        self.hpa = HorizontalPodAutoscaler(MAX_INT32, MAX_INT32, DEFAULT_BEHAVIOR)
        params = self.params
        keep = max(params.high_datapoints, params.low_datapoints)
        self.backlog = _Datapoints(params.datapoint_s, keep)
        wake_period = params.wake_period_s or params.datapoint_s
        self.starved = _Datapoints(wake_period, params.wake_evaluation_periods)

    def poll(self, now: float, current: int, demand: float, held: int) -> int:
        """Sample ApproximateBacklogSizePerInstance and HasBacklogWithoutCapacity at `now`."""
        if self.params.wake_period_s > 0:
            starved = 1.0 if current == 0 and demand > 0 else 0.0
            if self.starved.add(now, starved) and current == 0:
                current = self._wake(now, current)
        per_instance = demand / current if current > 0 else None
        if self.backlog.add(now, per_instance):
            current = self._track(now, current)
        return current

    def hpa_sync(self, now: float, current: int, demand: float, concurrency: float) -> int:
        """No HPA on SageMaker: `poll` decides."""
        return current

    def _wake(self, now: float, current: int) -> int:
        """The wake alarm's step policy: ChangeInCapacity by the adjustment, after its cooldown."""
        params = self.params
        points = self.starved.last(params.wake_evaluation_periods)
        breaching = sum(1 for value in points if value >= 1.0)
        if breaching < params.wake_datapoints or now - self.last_wake < params.wake_cooldown_s:
            return current
        self.wakes += 1
        self.woken_at.append(now)
        self.last_wake = self.last_out = self.last_activity = self.last_active = now
        self.backlog.clear()
        return min(params.max_replicas, current + params.wake_adjustment)

    def _track(self, now: float, current: int) -> int:
        """Target tracking's alarms on the per-instance backlog's closed datapoints."""
        params = self.params
        if current == 0:
            return current  # no instance: no per-instance datapoint (the wake alarm's job)
        target = params.target_backlog
        value = self.backlog.last(1)[0]
        if math.isnan(value):
            return current
        high_points = self.backlog.last(params.high_datapoints)
        low_points = self.backlog.last(params.low_datapoints)
        high = len(high_points) == params.high_datapoints and all(v > target for v in high_points)
        low = len(low_points) == params.low_datapoints and all(
            v < params.scale_in_fraction * target for v in low_points
        )
        proposed = math.ceil(current * value / target - 1e-9)
        if high and proposed > current and now - self.last_out >= params.scale_out_cooldown_s:
            self.last_out = self.last_activity = self.last_active = now
            self.backlog.clear()
            return min(params.max_replicas, proposed)
        wanted = max(params.min_replicas, proposed)
        if (
            low
            and wanted < current
            and now - self.last_activity >= params.scale_in_cooldown_s
            and now - self.last_out >= params.scale_out_cooldown_s
        ):
            # With a minimum of 0 an empty queue's zeros scale in to 0 ("Target tracking
            # scaling policies for Application Auto Scaling": a metric that emits real zeros).
            self.last_activity = self.last_active = now
            self.backlog.clear()
            return wanted
        return current


def sagemaker_batch(config: StackConfig, pool: BatchPool) -> BatchPool:
    """The queue pool as the asynchronous endpoint renders it: its scaling in place of KEDA's.

    `pool`: the pool as the Kubernetes reading built it (rates, prices, job limits); its
    instances are on-demand (SageMaker hosting sells no spot, whatever `batch.capacity.spot`).
    """
    planned = config.plan.batch
    assert planned is not None  # `pool` exists only for a planned batch pool
    rendered = async_scaling(config.plan, planned)
    return replace(pool, scaler=async_params(rendered), spot=False)


def async_params(rendered: AsyncScaling) -> SageMakerAsyncScaling:
    """What the simulator runs for a rendered asynchronous endpoint's scaling."""
    wake: WakeAlarm | None = rendered.wake
    target = float(rendered.target_backlog.value)
    return SageMakerAsyncScaling(
        polling_seconds=ASYNC_SAMPLE_SECONDS,
        cooldown_seconds=float(rendered.scale_in_cooldown_s),
        min_replicas=rendered.min_instances.value,
        max_replicas=rendered.max_instances.value,
        behavior=DEFAULT_BEHAVIOR,
        demand_threshold=target,
        activation_threshold=0.0,
        target_backlog=target,
        datapoint_s=float(rendered.metric_period_s),
        high_datapoints=rendered.alarms.high_datapoints,
        low_datapoints=rendered.alarms.low_datapoints,
        scale_in_fraction=rendered.alarms.scale_in_fraction,
        scale_out_cooldown_s=float(rendered.scale_out_cooldown_s),
        scale_in_cooldown_s=float(rendered.scale_in_cooldown_s),
        wake_period_s=float(wake.period_s) if wake else 0.0,
        wake_evaluation_periods=wake.evaluation_periods if wake else 1,
        wake_datapoints=wake.datapoints_to_alarm if wake else 1,
        wake_adjustment=wake.adjustment if wake else 1,
        wake_cooldown_s=float(wake.cooldown_s) if wake else 0.0,
    )


def sagemaker_realtime(config: StackConfig, pool: RealtimePool) -> RealtimePool:
    """The realtime pool with the inference component's scaling in place of KEDA's.

    `pool`: the pool as the Kubernetes reading built it (batcher, compute, prices, budget).
    """
    planned = config.plan.realtime
    assert planned is not None  # `pool` exists only for a planned realtime pool
    rendered = realtime_scaling(config.plan, planned)
    sizing = planned.sizing
    floors = prewarm_floors(sizing.prewarm)
    # The copy's peak rate: the sized rate is TARGET_UTILISATION of it (sizing's replica_rps).
    documented = steady_state(
        batcher_rules(config.plan.spec, planned.gpu.count),
        compute_law(config.plan.profile),
        sizing.replica_rps.value / TARGET_UTILISATION * SAFETY_FACTOR,
    ).in_flight
    scaling = SageMakerScaling(
        polling_seconds=float(rendered.metric_period_s),
        cooldown_seconds=float(rendered.scale_in_cooldown_s),
        min_replicas=rendered.min_copies.value,
        max_replicas=rendered.max_copies.value,
        behavior=DEFAULT_BEHAVIOR,
        demand_threshold=sizing.replica_rps.value,
        activation_threshold=0.0,
        crons=floors,
        target_concurrency=float(rendered.target_concurrency.value),
        datapoint_s=float(rendered.metric_period_s),
        high_datapoints=rendered.alarms.high_datapoints,
        low_datapoints=rendered.alarms.low_datapoints,
        scale_in_fraction=rendered.alarms.scale_in_fraction,
        scale_out_cooldown_s=float(rendered.scale_out_cooldown_s),
        scale_in_cooldown_s=float(rendered.scale_in_cooldown_s),
        wake_period_s=float(rendered.wake.period_s) if rendered.wake else 0.0,
        wake_datapoints=rendered.wake.datapoints_to_alarm if rendered.wake else 1,
        wake_adjustment=rendered.wake.adjustment if rendered.wake else 1,
        documented_target=round(documented, 1),
    )
    return replace(pool, metric="rps", scaler=scaling, scale_to_zero=False, hold_timeout_s=0.0)


_SageMakerParams = TypeVar("_SageMakerParams", SageMakerScaling, SageMakerAsyncScaling)
"""Either of SageMaker's scaling kinds (each has its own cooldown fields)."""


def _with_default_cooldowns(scaling: _SageMakerParams) -> _SageMakerParams:
    """`scaling` with Application Auto Scaling's default cooldowns (`DEFAULT_COOLDOWN_S`): the
    scale-out and scale-in cooldowns, and the shared code's `cooldown_seconds` as the latter."""
    return replace(
        scaling,
        cooldown_seconds=DEFAULT_COOLDOWN_S,
        scale_out_cooldown_s=DEFAULT_COOLDOWN_S,
        scale_in_cooldown_s=DEFAULT_COOLDOWN_S,
    )


def competent_realtime(
    pool: RealtimePool, minimum: int, schedule: tuple[CronTrigger, ...]
) -> RealtimePool:
    """The competent default's inference component (see the module docstring): the configured
    pool's SageMaker loop with AWS's starting target (`documented_target`), the default
    cooldowns, the floor `minimum` (no wake alarm above zero) and `schedule` as its scheduled
    actions."""
    scaling = pool.scaler
    if not isinstance(scaling, SageMakerScaling):
        raise TypeError("competent_realtime takes a pool that runs SageMaker's loop")
    competent = replace(
        _with_default_cooldowns(scaling),
        min_replicas=minimum,
        crons=schedule,
        target_concurrency=scaling.documented_target,
        wake_period_s=scaling.wake_period_s if minimum == 0 else 0.0,
    )
    return replace(pool, scaler=competent)


def competent_batch(pool: BatchPool) -> BatchPool:
    """The competent default's asynchronous endpoint: the configured backlog target, bounds
    and wake alarm (AWS's asynchronous-endpoint guide has the target tracking and the alarm)
    with the default cooldowns; on-demand, as every SageMaker instance."""
    scaling = pool.scaler
    if not isinstance(scaling, SageMakerAsyncScaling):
        raise TypeError("competent_batch takes a pool that runs SageMaker's loop")
    return replace(pool, scaler=_with_default_cooldowns(scaling), spot=False)


def sagemaker_scenario(scenario: Scenario) -> Scenario:
    """The configured scenario on SageMaker: instances removed once empty, 10 s datapoints.

    The asynchronous endpoint's instances are on-demand (SageMaker hosting offers no spot,
    whatever the spec's `batch.capacity.spot`); its scaling is `sagemaker_batch`'s.
    """
    batch = scenario.batch
    return replace(
        scenario,
        batch=replace(batch, spot=False) if batch is not None else None,
        description="as the stack renders it on SageMaker: its batching, target tracking on "
        "concurrency per copy and backlog per instance, the wake alarms, scheduled pre-warm; "
        "errors at zero copies",
        consolidation_s=0.0,
        scrape_s=DATAPOINT_SECONDS,
    )


def scaler_for(params: ScaledObjectParams) -> type[KedaScaler]:
    """The loop class that runs `params`: SageMaker's for an inference component or an async
    endpoint, else KEDA's."""
    if isinstance(params, SageMakerAsyncScaling):
        return SageMakerAsyncScaler
    return SageMakerScaler if isinstance(params, SageMakerScaling) else KedaScaler


__all__ = [
    "ASYNC_SAMPLE_SECONDS",
    "DATAPOINT_SECONDS",
    "DEFAULT_COOLDOWN_S",
    "SAFETY_FACTOR",
    "SCALE_IN_DATAPOINTS",
    "SCALE_OUT_DATAPOINTS",
    "TARGET",
    "SageMakerAsyncScaler",
    "SageMakerAsyncScaling",
    "SageMakerScaler",
    "SageMakerScaling",
    "async_params",
    "competent_batch",
    "competent_realtime",
    "sagemaker_batch",
    "sagemaker_realtime",
    "sagemaker_scenario",
    "scaler_for",
]
