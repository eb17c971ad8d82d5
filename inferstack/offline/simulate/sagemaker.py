"""SageMaker's own scaling loop for an inference component, in the KEDA scaler's interface.

The Kubernetes loop (KEDA polls, the HPA syncs, the HTTP add-on holds requests at zero) is not
what a SageMaker endpoint runs. On the `sagemaker` target the realtime pool runs this instead,
built from the same data the component renders (`components.sagemaker.scaling.realtime_scaling`):

- Target tracking (Application Auto Scaling, "How target tracking scaling for Application Auto
  Scaling works", https://docs.aws.amazon.com/autoscaling/application/userguide/target-tracking-scaling-policy-overview.html):
  the policy's alarms watch `ConcurrentRequestsPerCopyHighResolution` (waiting + computing per
  copy) in 10 s datapoints ("Create a target tracking policy using high-resolution metrics",
  https://docs.aws.amazon.com/autoscaling/ec2/userguide/policy-creating-high-resolution-metrics.html);
  scale-out when the high alarm has seen `SCALE_OUT_DATAPOINTS` datapoints over the target,
  scale-in when the low alarm has seen `SCALE_IN_DATAPOINTS` below its threshold, which the
  overview page puts "typically 10% or more" under the target (`SCALE_IN_FRACTION`). The new
  count is proportional: `ceil(copies * metric / target)`. The 3 and 15 datapoint counts are the
  alarms Application Auto Scaling creates and marks "DO NOT EDIT OR DELETE" (AlarmHigh 3 of 3,
  AlarmLow 15 of 15), as users read them off the console (aws/containers-roadmap#1208,
  aws/copilot-cli#4233, hashicorp/terraform-provider-aws#42553 for AlarmHigh); the AWS pages
  above do not give the numbers (and some metrics get others: aws-cloudformation/
  cloudformation-coverage-roadmap#2353), so they are constants to re-check against a real
  policy's alarms; here they count 10 s datapoints, as on a high-resolution metric.
- Cooldowns: the component's scale-out (60 s) and scale-in (300 s) cooldowns; a scale-in waits
  for both since the last scaling activity.
- Scheduled actions: each pre-warm window raises the minimum capacity at its start and restores
  it at its end, in the spike's timezone; below a new minimum Application Auto Scaling scales to
  it at once. The windows reuse `CronTrigger` (a floor between two crons), read from the plan's
  pre-warm windows the component turns into its scheduled actions.
- At zero copies SageMaker answers every request with an error and holds none ("Scale an
  endpoint to zero instances",
  https://docs.aws.amazon.com/sagemaker/latest/dg/endpoint-auto-scaling-zero-instances.html):
  the pool's `scale_to_zero` is False for the engine, so both modes count those requests as
  refused, never held. The `NoCapacityInvocationFailures` alarm (one-minute periods) runs the
  step policy that adds one copy; the simulator sees those failures as the arrival rate over the
  last minute while at zero (the pool's scraped metric is `rps`).
- A copy starts on its own instance (one copy per instance): the plan's whole cold start
  (instance, image, model load, warm-up), and an instance left empty is removed at once
  (managed instance scaling), so no later copy finds a warm one.

The metric: both simulation modes hand the scaler the pool's total in flight (ready copies'
waiting + computing) at every 15 s sync (`hpa_sync`'s `concurrency`); the alarms count that
sample as 15 s of 10 s datapoints. The HPA the KEDA scaler carries is unused here; its floor
sits above any count so that the fast mode's quiet planner (which predicts the HPA) never skips
SageMaker's datapoints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from inferstack.components.sagemaker.scaling import realtime_scaling
from inferstack.offline.simulate.autoscaler import (
    DEFAULT_BEHAVIOR,
    HPA_SYNC_SECONDS,
    MAX_INT32,
    HorizontalPodAutoscaler,
    KedaScaler,
    ScaledObjectParams,
    prewarm_floors,
)
from inferstack.offline.simulate.config import RealtimePool, Scenario
from inferstack.offline.stack_config import StackConfig

DATAPOINT_SECONDS = 10.0
"""High-resolution metric period: one datapoint every 10 s."""
SCALE_OUT_DATAPOINTS = 3
"""Datapoints over the target before the high alarm fires (AlarmHigh: 3 of 3)."""
SCALE_IN_DATAPOINTS = 15
"""Datapoints under the low threshold before the low alarm fires (AlarmLow: 15 of 15)."""
SCALE_IN_FRACTION = 0.9
"""The low alarm's threshold as a fraction of the target ("typically 10% or more" below)."""
TARGET = "sagemaker"
"""The stack target whose realtime pool runs this loop."""


@dataclass(frozen=True)
class SageMakerScaling(ScaledObjectParams):
    """An inference component's Application Auto Scaling, as the simulator runs it.

    The inherited fields keep their meaning for the shared code (bounds, the opening's rps
    threshold per copy, the scheduled floors as `crons`); the rest are SageMaker's.
    """

    target_concurrency: float = 1.0
    """Target tracking's target: concurrent requests per copy."""
    scale_out_cooldown_s: float = 60.0
    scale_in_cooldown_s: float = 300.0
    wake_period_s: float = 60.0
    """Period of the NoCapacityInvocationFailures alarm; 0: no wake alarm (floor above 0)."""
    wake_adjustment: int = 1


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
        if (
            current == 0
            and period > 0
            and math.floor(now / period) > math.floor((now - DATAPOINT_SECONDS) / period)
            and demand * period >= 1.0
        ):
            # The alarm's minute held at least one NoCapacityInvocationFailures: step policy.
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
        elif value < SCALE_IN_FRACTION * target:
            self.over_s, self.under_s = 0.0, self.under_s + elapsed
        else:
            self.over_s = self.under_s = 0.0
        proposed = math.ceil(current * value / target - 1e-9)
        floor = self.floor(now)
        high = self.over_s >= SCALE_OUT_DATAPOINTS * DATAPOINT_SECONDS - 1e-9
        low = self.under_s >= SCALE_IN_DATAPOINTS * DATAPOINT_SECONDS - 1e-9
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


def sagemaker_realtime(config: StackConfig, pool: RealtimePool) -> RealtimePool:
    """The realtime pool with the inference component's scaling in place of KEDA's.

    `pool`: the pool as the Kubernetes reading built it (batcher, compute, prices, budget).
    """
    planned = config.plan.realtime
    assert planned is not None  # `pool` exists only for a planned realtime pool
    rendered = realtime_scaling(config.plan, planned)
    sizing = planned.sizing
    floors = prewarm_floors(sizing.prewarm)
    scaling = SageMakerScaling(
        polling_seconds=DATAPOINT_SECONDS,
        cooldown_seconds=float(rendered.scale_in_cooldown_s),
        min_replicas=rendered.min_copies.value,
        max_replicas=rendered.max_copies.value,
        behavior=DEFAULT_BEHAVIOR,
        demand_threshold=sizing.replica_rps.value,
        activation_threshold=0.0,
        crons=floors,
        target_concurrency=float(rendered.target_concurrency.value),
        scale_out_cooldown_s=float(rendered.scale_out_cooldown_s),
        scale_in_cooldown_s=float(rendered.scale_in_cooldown_s),
        wake_period_s=float(rendered.wake.period_s) if rendered.wake else 0.0,
        wake_adjustment=rendered.wake.adjustment if rendered.wake else 1,
    )
    return replace(pool, metric="rps", scaler=scaling, scale_to_zero=False, hold_timeout_s=0.0)


def sagemaker_scenario(scenario: Scenario) -> Scenario:
    """The configured scenario on SageMaker: instances removed once empty, 10 s datapoints.

    The asynchronous endpoint's instances are on-demand (SageMaker hosting offers no spot,
    whatever the spec's `batch.capacity.spot`); its backlog loop is still KEDA's here.
    """
    batch = scenario.batch
    return replace(
        scenario,
        batch=replace(batch, spot=False) if batch is not None else None,
        description="as the stack renders it on SageMaker: its batching, target tracking on "
        "concurrency per copy, the wake alarm, scheduled pre-warm; errors at zero copies",
        consolidation_s=0.0,
        scrape_s=DATAPOINT_SECONDS,
    )


def scaler_for(params: ScaledObjectParams) -> type[KedaScaler]:
    """The loop class that runs `params`: SageMaker's for an inference component, else KEDA's."""
    return SageMakerScaler if isinstance(params, SageMakerScaling) else KedaScaler


__all__ = [
    "DATAPOINT_SECONDS",
    "SCALE_IN_DATAPOINTS",
    "SCALE_OUT_DATAPOINTS",
    "TARGET",
    "SageMakerScaler",
    "SageMakerScaling",
    "sagemaker_realtime",
    "sagemaker_scenario",
    "scaler_for",
]
