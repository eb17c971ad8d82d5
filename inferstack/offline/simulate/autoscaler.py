"""KEDA and the Horizontal Pod Autoscaler, as they behave, for one ScaledObject.

Transcribed from the sources, not from intuition (the HPA code's defaults win where its API text
disagrees):

- Kubernetes docs, "Horizontal Pod Autoscaling" (kubernetes.io/docs/concepts/workloads/
  autoscaling/horizontal-pod-autoscale): the controller runs every `--horizontal-pod-autoscaler-
  sync-period` (15 s); `desiredReplicas = ceil[currentReplicas * (currentMetricValue /
  desiredMetricValue)]`; no action while the ratio is within the tolerance (0.1) of 1.0; with
  several metrics the largest proposal wins; `behavior` scaling policies and stabilization
  windows (default scale-up: no stabilization, the larger of +100 % and +4 pods per 15 s;
  default scale-down: 300 s stabilization, -100 % per 15 s).
- kubernetes/kubernetes `pkg/controller/podautoscaler/replica_calculator.go`,
  `GetExternalPerPodMetricReplicas` (the path of an external metric with an `AverageValue`
  target, which is what KEDA registers): `usageRatio = usage / (target * currentReplicas)`; when
  `|1 - usageRatio| > tolerance` the proposal is `ceil(usage / target)` (the total divided by the
  per-pod target, not the current count times the ratio), else the current count.
- `pkg/controller/podautoscaler/horizontal.go`: `currentReplicas` is the scale's *spec*
  replicas (pods still starting count); a target at 0 replicas is left alone (scaling is
  disabled; KEDA owns 0 <-> 1); above `maxReplicas` the desired count is the maximum, below
  `minReplicas` the minimum; otherwise `normalizeDesiredReplicasWithBehaviors`:
  `stabilizeRecommendationWithBehaviors` (scale-up: the *smallest* recommendation within the
  up window, scale-down: the *largest* within the down window, the current count in between),
  then `convertDesiredReplicasWithBehaviorRate` with `calculateScaleUpLimitWithScalingRules` /
  `calculateScaleDownLimitWithBehaviors`: each policy's limit starts from the replicas at the
  start of its period (current minus the pods added plus the pods removed within `periodSeconds`),
  `Pods` adds or removes `value`, `Percent` scales by `1 +/- value/100` (rounded *up* for scale-
  up, truncated for scale-down); `selectPolicy: Max` takes the largest change, `Min` the
  smallest, `Disabled` none.
- KEDA docs, "Scaling Deployments" and the ScaledObject spec (keda.sh/docs/latest/reference/
  scaledobject-spec): `pollingInterval` (default 30 s) is how often KEDA checks each trigger for
  *activity*; KEDA itself scales 0 -> 1 (or to `minReplicaCount`) when any trigger is active and
  back to 0 once no trigger has been active for `cooldownPeriod` (default 300 s) with
  `minReplicaCount: 0`; between 1 and the maximum the HPA decides, with `minReplicas =
  max(1, minReplicaCount)`. A scaler is active when its value exceeds its `activationThreshold`
  (`activationQueueLength`, `activationLagCount`). The metrics adapter queries the scaler when
  the HPA asks (every HPA sync), so the HPA sees the Prometheus value at sync time.
- kedacore/keda `pkg/scalers/cron_scaler.go`, `GetMetricsAndActivity`, as of KEDA 2.18: the
  trigger is active when the next end comes before the next start (the present is inside a
  window); its metric is `desiredReplicas` while active and 0 otherwise (1 before 2.18: changed
  by kedacore/keda#6888, commit c2f562f, "cron_scaler returns zero metric value by default",
  fixing #6886), against an `AverageValue` target of 1, so the HPA arithmetic (tolerance
  included) applies to it like to any metric: a floor, not a setting.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from croniter import croniter

from inferstack.components.planning.sizing import PrewarmWindow

HPA_SYNC_SECONDS = 15.0
"""kube-controller-manager `--horizontal-pod-autoscaler-sync-period` default."""
HPA_TOLERANCE = 0.1
"""kube-controller-manager `--horizontal-pod-autoscaler-tolerance` default."""
KEDA_DEFAULT_POLLING_SECONDS = 30.0
KEDA_DEFAULT_COOLDOWN_SECONDS = 300.0
KEDA_VERSION = "2.18"
"""The KEDA release whose behaviour this module models (see the cron metric below)."""
CRON_METRIC_OUTSIDE_WINDOW = 0
"""cron_scaler.go's metric outside a window: 0 since KEDA 2.18 (kedacore/keda#6888), 1 before."""

MAX_INT32 = 2**31 - 1
"""Replica counts are int32: a proposal beyond is capped there (replica_calculator.go)."""

PolicyType = Literal["Pods", "Percent"]
SelectPolicy = Literal["Max", "Min", "Disabled"]


@dataclass(frozen=True)
class ScalingPolicy:
    """One `behavior.scaleUp|scaleDown.policies` entry."""

    type: PolicyType
    value: int
    period_seconds: int


@dataclass(frozen=True)
class ScalingRules:
    """One direction of an HPA `behavior`."""

    stabilization_seconds: int
    select_policy: SelectPolicy
    policies: tuple[ScalingPolicy, ...]


@dataclass(frozen=True)
class Behavior:
    """An HPA `behavior`: scale-up and scale-down rules."""

    scale_up: ScalingRules
    scale_down: ScalingRules


DEFAULT_BEHAVIOR = Behavior(
    scale_up=ScalingRules(
        0, "Max", (ScalingPolicy("Percent", 100, 15), ScalingPolicy("Pods", 4, 15))
    ),
    scale_down=ScalingRules(300, "Max", (ScalingPolicy("Percent", 100, 15),)),
)
"""The HPA's defaults (pkg/apis/autoscaling/v2/defaults.go), used when `behavior` is absent."""


def external_average_value_replicas(
    current: int, usage: float, target: float, tolerance: float = HPA_TOLERANCE
) -> int:
    """`GetExternalPerPodMetricReplicas`: the proposal for a total `usage` and a per-pod target.

    A proposal beyond an int32 is capped at `MAX_INT32`, as upstream does.
    """
    if current <= 0:
        return current
    ratio = usage / (target * current)
    if abs(1.0 - ratio) > tolerance:
        return min(MAX_INT32, math.ceil(usage / target))
    return current


def utilisation_ratio_replicas(
    current: int, value: float, target: float, tolerance: float = HPA_TOLERANCE
) -> int:
    """The documented ratio form, `ceil(current * value / target)`, for the docs' examples."""
    ratio = value / target
    if abs(1.0 - ratio) <= tolerance:
        return current
    return math.ceil(current * ratio)


@dataclass
class _Event:
    at: float
    change: int


@dataclass
class HorizontalPodAutoscaler:
    """One HPA's controller state: recommendations and scale events, as horizontal.go keeps."""

    min_replicas: int
    max_replicas: int
    behavior: Behavior = DEFAULT_BEHAVIOR
    tolerance: float = HPA_TOLERANCE
    _recommendations: list[tuple[float, int]] = field(default_factory=list)
    _ups: list[_Event] = field(default_factory=list)
    _downs: list[_Event] = field(default_factory=list)

    def remember(self, now: float, recommendation: int) -> None:
        """Record a recommendation as if a sync at `now` had made it (a settled start)."""
        self._recommendations.append((now, recommendation))

    def remember_scale(self, at: float, change: int) -> None:
        """Record a scale event of `change` replicas (negative: down) made at `at`.

        The rate limits of later syncs count it, as horizontal.go's `scaleUpEvents` and
        `scaleDownEvents` (its unit tests set these directly, and so do ours).
        """
        if change > 0:
            self._ups.append(_Event(at, change))
        elif change < 0:
            self._downs.append(_Event(at, -change))

    def proposal(self, current: int, usages: Sequence[tuple[float, float]]) -> int:
        """The largest per-metric proposal for `(total usage, per-pod target)` pairs."""
        proposals = [
            external_average_value_replicas(current, usage, target, self.tolerance)
            for usage, target in usages
        ]
        return max(proposals) if proposals else current

    def sync(self, now: float, current: int, usages: Sequence[tuple[float, float]]) -> int:
        """One reconcile: the replica count the HPA writes to the scale subresource."""
        if current == 0:
            return 0  # scaling is disabled at zero; KEDA activates the target
        if current > self.max_replicas:
            desired = self.max_replicas
        elif current < self.min_replicas:
            desired = self.min_replicas
        else:
            proposed = self.proposal(current, usages)
            desired = self._normalize(now, current, proposed)
        if desired != current:
            self._record(now, current, desired)
        return desired

    # horizontal.go --------------------------------------------------------------------------

    def _normalize(self, now: float, current: int, proposed: int) -> int:
        stabilized = self._stabilize(now, current, proposed)
        return self._rate_limited(now, current, stabilized)

    def _stabilize(self, now: float, current: int, proposed: int) -> int:
        up_cutoff = now - self.behavior.scale_up.stabilization_seconds
        down_cutoff = now - self.behavior.scale_down.stabilization_seconds
        up, down = proposed, proposed
        old_index = -1
        for index, (at, recommendation) in enumerate(self._recommendations):
            if at > up_cutoff:
                up = min(up, recommendation)
            if at > down_cutoff:
                down = max(down, recommendation)
            if at < up_cutoff and at < down_cutoff:
                old_index = index
        result = current
        result = max(result, up)
        result = min(result, down)
        if old_index >= 0:
            self._recommendations[old_index] = (now, proposed)
        else:
            self._recommendations.append((now, proposed))
        return result

    def _rate_limited(self, now: float, current: int, desired: int) -> int:
        if desired > current:
            limit = max(current, self._scale_up_limit(now, current))
            return min(desired, min(self.max_replicas, limit))
        if desired < current:
            limit = min(current, self._scale_down_limit(now, current))
            return max(desired, max(self.min_replicas, limit))
        return desired

    def _changed_within(self, events: list[_Event], now: float, period: int) -> int:
        return sum(event.change for event in events if event.at > now - period)

    def _period_start(self, now: float, current: int, period: int) -> int:
        added = self._changed_within(self._ups, now, period)
        removed = self._changed_within(self._downs, now, period)
        return current - added + removed

    def _scale_up_limit(self, now: float, current: int) -> int:
        rules = self.behavior.scale_up
        if rules.select_policy == "Disabled":
            return current
        pick = min if rules.select_policy == "Min" else max
        result: int | None = None
        for policy in rules.policies:
            start = self._period_start(now, current, policy.period_seconds)
            if policy.type == "Pods":
                proposed = start + policy.value
            else:
                proposed = math.ceil(start * (1 + policy.value / 100))
            result = proposed if result is None else pick(result, proposed)
        return current if result is None else result

    def _scale_down_limit(self, now: float, current: int) -> int:
        rules = self.behavior.scale_down
        if rules.select_policy == "Disabled":
            return current
        pick = max if rules.select_policy == "Min" else min
        result: int | None = None
        for policy in rules.policies:
            start = self._period_start(now, current, policy.period_seconds)
            if policy.type == "Pods":
                proposed = start - policy.value
            else:
                proposed = int(start * (1 - policy.value / 100))
            result = proposed if result is None else pick(result, proposed)
        return current if result is None else result

    def _record(self, now: float, previous: int, new: int) -> None:
        longest = max(
            (
                p.period_seconds
                for r in (self.behavior.scale_up, self.behavior.scale_down)
                for p in r.policies
            ),
            default=0,
        )
        for events in (self._ups, self._downs):
            events[:] = [event for event in events if event.at > now - longest]
        if new > previous:
            self._ups.append(_Event(now, new - previous))
        else:
            self._downs.append(_Event(now, previous - new))


@dataclass(frozen=True)
class CronTrigger:
    """A KEDA cron trigger: a replica floor between `start` and `end` in `timezone`."""

    name: str
    timezone: str
    start: str
    end: str
    desired_replicas: int

    def is_active(self, when: datetime) -> bool:
        """cron_scaler.go: inside a window when the next end comes before the next start.

        KEDA computes the next occurrences from the present in the trigger's timezone, so the
        window follows local wall-clock time across DST changes; a start that falls in a
        skipped hour does not fire that day.
        """
        zone = ZoneInfo(self.timezone)
        local = when.astimezone(zone)
        next_start: datetime = croniter(self.start, local).get_next(datetime)
        next_end: datetime = croniter(self.end, local).get_next(datetime)
        return next_end.astimezone(UTC) < next_start.astimezone(UTC)

    def metric(self, when: datetime) -> int:
        """The value the HPA sees, against an AverageValue target of 1."""
        return self.desired_replicas if self.is_active(when) else CRON_METRIC_OUTSIDE_WINDOW


def prewarm_floors(windows: Iterable[PrewarmWindow]) -> tuple[CronTrigger, ...]:
    """The plan's pre-warm windows as replica floors, the form every target's scaler reads
    (KEDA renders them as cron triggers; SageMaker and Cloud Run as scheduled minimums)."""
    return tuple(
        CronTrigger(
            f"prewarm-{window.spike_index}",
            window.timezone,
            window.start_cron,
            window.end_cron,
            window.desired_replicas,
        )
        for window in windows
    )


class CronSchedule:
    """A cron trigger's active windows precomputed for a span, so each poll is a lookup.

    Walks the start and end occurrences over the span (in the trigger's timezone, as KEDA's
    cron library does), instead of evaluating two cron iterators at every poll.
    """

    def __init__(self, trigger: CronTrigger, begin: datetime, seconds: float) -> None:
        self.trigger = trigger
        self.begin = begin
        zone = ZoneInfo(trigger.timezone)
        end = begin + timedelta(seconds=seconds)
        self.windows: list[tuple[float, float]] = []
        cursor = (begin - timedelta(days=2)).astimezone(zone)
        starts = croniter(trigger.start, cursor)
        while True:
            start: datetime = starts.get_next(datetime)
            if start.astimezone(UTC) > end:
                break
            stop: datetime = croniter(trigger.end, start).get_next(datetime)
            self.windows.append(
                (
                    (start.astimezone(UTC) - begin).total_seconds(),
                    (stop.astimezone(UTC) - begin).total_seconds(),
                )
            )
        union: list[list[float]] = []
        for start_s, stop_s in sorted(self.windows):
            if union and start_s <= union[-1][1]:
                union[-1][1] = max(union[-1][1], stop_s)
            elif start_s < stop_s:
                union.append([start_s, stop_s])
        self._union_starts = [window[0] for window in union]
        self._union_stops = [window[1] for window in union]

    def union(self) -> tuple[list[float], list[float]]:
        """The windows merged where they overlap or touch: starts and stops, ascending."""
        return self._union_starts, self._union_stops

    def is_active(self, offset: float) -> bool:
        """Whether the window covers `offset` seconds after `begin` (start inclusive)."""
        # A bisection of the windows' union: a month of polls over a month of windows was
        # quadratic.
        index = bisect.bisect_right(self._union_starts, offset) - 1
        return index >= 0 and offset < self._union_stops[index]

    def metric(self, offset: float) -> int:
        """The value the HPA sees at `offset`."""
        active = self.is_active(offset)
        return self.trigger.desired_replicas if active else CRON_METRIC_OUTSIDE_WINDOW


@dataclass(frozen=True)
class ScaledObjectParams:
    """What a rendered ScaledObject tells the simulator."""

    polling_seconds: float
    cooldown_seconds: float
    min_replicas: int
    max_replicas: int
    behavior: Behavior
    demand_threshold: float
    activation_threshold: float
    crons: tuple[CronTrigger, ...] = ()
    http_wake: bool = False
    http_concurrency_target: float = 1.0


@dataclass
class KedaScaler:
    """KEDA's loop for one ScaledObject, with the HPA it owns.

    `poll(now, ...)` is KEDA's activity check every `pollingInterval`; `hpa_sync(now, ...)` is the
    HPA's reconcile every 15 s. Both return the new replica count (spec replicas).
    """

    params: ScaledObjectParams
    cron_schedules: list[CronSchedule]
    hpa: HorizontalPodAutoscaler = field(init=False)
    last_active: float = field(default=-math.inf)

    def __post_init__(self) -> None:
        self.hpa = HorizontalPodAutoscaler(
            max(1, self.params.min_replicas), self.params.max_replicas, self.params.behavior
        )

    def settle(self, now: float, replicas: int) -> None:
        """Start as a scaler that has held `replicas` for a while (see `opening`)."""
        if replicas > 0:
            self.hpa.remember(now, replicas)
            self.last_active = now

    def cron_metric(self, offset: float) -> int:
        """The largest cron floor the HPA sees at `offset` (0 without cron triggers)."""
        return max((schedule.metric(offset) for schedule in self.cron_schedules), default=0)

    def _cron_active(self, offset: float) -> bool:
        return any(schedule.is_active(offset) for schedule in self.cron_schedules)

    def poll(self, now: float, current: int, demand: float, held: int) -> int:
        """KEDA's activity check: 0 -> min(1) on activity, to 0 after the cooldown.

        As `RequestScale` in kedacore/keda pkg/scaling/executor/scale_scaledobjects.go (no idle
        replica count): inactive below `minReplicaCount`, KEDA itself sets the minimum.
        """
        active = (
            demand > self.params.activation_threshold
            or self._cron_active(now)
            or (self.params.http_wake and held > 0)
        )
        if active:
            self.last_active = now
        if current == 0 and active:
            return max(1, self.params.min_replicas)
        if not active and current < self.params.min_replicas:
            return self.params.min_replicas
        if (
            current > 0
            and not active
            and self.params.min_replicas == 0
            and now - self.last_active >= self.params.cooldown_seconds
        ):
            return 0
        return current

    def hpa_sync(self, now: float, current: int, demand: float, concurrency: float) -> int:
        """The HPA's reconcile on the demand metric, the cron floors and the HTTP concurrency."""
        usages: list[tuple[float, float]] = [(demand, self.params.demand_threshold)]
        usages.extend((float(schedule.metric(now)), 1.0) for schedule in self.cron_schedules)
        if self.params.http_wake:
            usages.append((concurrency, self.params.http_concurrency_target))
        return self.hpa.sync(now, current, usages)
