"""What both simulation modes share: capacity, the batch queue, the outer loop, the result.

The exact mode (`engine`) and the fast mode (`fast`) differ only in how the realtime pool serves
its requests inside a step: request by request through the batcher kernel, or from a table of
the kernel's steady states. Everything around that is here, once: the capacity of each pool, the
batch queue as a fluid with its KEDA loop, the loop that advances both pools tick by tick and
bills their nodes, the per-minute timeline, and the `RunResult` the report reads.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import numpy as np
import numpy.typing as npt

from inferstack.offline.simulate.arrivals import spike_windows
from inferstack.offline.simulate.autoscaler import HPA_SYNC_SECONDS, CronSchedule, KedaScaler
from inferstack.offline.simulate.capacity import PoolCapacity, Usage
from inferstack.offline.simulate.cloudrun import CloudRunScaler, CloudRunScaling
from inferstack.offline.simulate.config import BatchPool, Prices, RealtimePool, Scenario
from inferstack.offline.simulate.opening import batch_opening
from inferstack.offline.simulate.quiet import crossings, settled_ends
from inferstack.offline.simulate.replica import Recorder
from inferstack.offline.simulate.sagemaker import scaler_for

Floats = npt.NDArray[np.float64]
Progress = Callable[[float], None]
QUEUE_QUIET_MIN_STEPS = 8
"""Steps the batch queue plans ahead at first (doubling while KEDA and the HPA keep still)."""
QUEUE_QUIET_MAX_STEPS = 480
QUEUE_QUIET_RETRY_STEPS = 4


@dataclass
class Timeline:
    """Per-minute series of one run."""

    rps: list[float] = field(default_factory=list)
    realtime_ready: list[int] = field(default_factory=list)
    batch_ready_spot: list[int] = field(default_factory=list)
    batch_ready_on_demand: list[int] = field(default_factory=list)
    batch_backlog: list[float] = field(default_factory=list)
    cost_usd: list[float] = field(default_factory=list)
    """Cumulative cost at the end of each minute."""
    p99_s: list[float] = field(default_factory=list)
    """p99 latency of the requests that arrived in each minute (NaN: none served)."""


@dataclass
class BatchStats:
    """What the queue pool did."""

    items: float = 0.0
    processed: float = 0.0
    max_backlog: float = 0.0
    backlog_seconds: float = 0.0
    drained_pods: int = 0
    released_items: float = 0.0
    expired_items: float = 0.0
    """Items the queue deleted unread, older than its retention."""


@dataclass
class RunResult:
    """Everything one scenario's run produced (turned into numbers by `report`)."""

    scenario: Scenario
    mode: str
    seconds: int
    arrivals: int
    recorder: Recorder
    timeline: Timeline
    realtime_usage: Usage | None
    batch_usage: Usage | None
    batch: BatchStats | None
    held: int = 0


def keda_for(
    params_pool: RealtimePool | BatchPool, start: datetime, seconds: int
) -> KedaScaler | None:
    """The pool's KEDA scaler with its cron schedules over the run; None for a fixed pool."""
    scaler = params_pool.scaler
    if scaler is None:
        return None
    schedules = [CronSchedule(trigger, start, seconds + 60) for trigger in scaler.crons]
    if isinstance(scaler, CloudRunScaling):  # Cloud Run's own loop: see `cloudrun`
        return CloudRunScaler(scaler, schedules)
    return scaler_for(scaler)(scaler, schedules)


def _pods_per_node(gpus_per_node: int, gpus_per_replica: int) -> int:
    return max(1, gpus_per_node // max(1, gpus_per_replica))


def realtime_capacity(
    scenario: Scenario, pool: RealtimePool, rng: np.random.Generator
) -> PoolCapacity:
    """The realtime pool's nodes: on-demand only."""
    return PoolCapacity(
        cold_start=scenario.cold_start,
        pods_per_node=_pods_per_node(pool.prices.gpus_per_node, pool.gpus_per_replica),
        gpus_per_node=pool.prices.gpus_per_node,
        spot=False,
        fallback_on_demand=True,
        notice_s=0.0,
        interruptions_per_node_hour=0.0,
        shortage_mean_s=0.0,
        consolidation_s=scenario.consolidation_s,
        rng=rng,
    )


def batch_capacity(scenario: Scenario, pool: BatchPool, rng: np.random.Generator) -> PoolCapacity:
    """The batch pool's nodes: spot first when configured."""
    return PoolCapacity(
        cold_start=scenario.cold_start,
        pods_per_node=_pods_per_node(pool.prices.gpus_per_node, pool.gpus_per_replica),
        gpus_per_node=pool.prices.gpus_per_node,
        spot=pool.spot,
        spot_share=pool.spot_share,
        fallback_on_demand=pool.fallback_on_demand,
        notice_s=pool.notice_s,
        interruptions_per_node_hour=scenario.spot_interruptions_per_node_hour,
        shortage_mean_s=scenario.spot_shortage_mean_s,
        consolidation_s=scenario.consolidation_s,
        rng=rng,
    )


def start_warm(capacity: PoolCapacity, replicas: int) -> None:
    """Scale to `replicas` with every pod ready and every node holding the image.

    The count is the settled one for the opening rate (see `opening`), not the floor.
    """
    capacity.scale_to(replicas, 0.0)
    for pod in capacity.pods:
        pod.ready_at = 0.0
        if pod.node is not None:
            pod.node.image_at = 0.0
    capacity.changed()


def cost_rate(capacity: PoolCapacity, prices: Prices) -> float:
    """Dollars per second the pool's nodes cost now."""
    on_demand, spot = capacity.node_gpus()
    return (on_demand * prices.on_demand_per_gpu_hour + spot * prices.spot_per_gpu_hour) / 3600.0


class BatchQueue:
    """The batch pool's queue as a fluid, with its KEDA loop."""

    def __init__(
        self,
        pool: BatchPool,
        capacity: PoolCapacity,
        keda: KedaScaler | None,
        windows: list[tuple[float, float]] | None = None,
        lookahead_until: float = -math.inf,
    ) -> None:
        self.pool = pool
        self.capacity = capacity
        self.keda = keda
        self.windows = windows
        self.lookahead_until = lookahead_until
        """Steps ending before this may be planned ahead (see `_plan_quiet`): only where nothing
        else draws from the generator between the queue's steps, as in the fast mode."""
        self._planned: deque[tuple[float, float, float]] = deque()
        """(start, length, items arriving) of the steps known to change no replica count."""
        self._span = QUEUE_QUIET_MIN_STEPS
        self._retry_at = -math.inf
        """The scheduled runs' (start, end) seconds; None: arrivals around the clock."""
        self.backlog = 0.0
        self.in_flight = 0.0
        self.stats = BatchStats()
        self._cohorts: deque[list[float]] = deque()
        """[arrived at, items left] of the backlog, oldest first: tracked only when the queue
        deletes old items (a finite retention), to know which are old enough."""

    def _serve_oldest(self, served: float) -> None:
        while served > 0 and self._cohorts:
            taken = min(served, self._cohorts[0][1])
            self._cohorts[0][1] -= taken
            served -= taken
            if self._cohorts[0][1] <= 0:
                self._cohorts.popleft()

    def _expire(self, end: float) -> None:
        """Delete the items that have waited longer than the queue keeps them."""
        while self._cohorts and end - self._cohorts[0][0] > self.pool.retention_s:
            items = self._cohorts.popleft()[1]
            self.backlog = max(0.0, self.backlog - items)
            self.stats.expired_items += items

    def step(self, now: float, dt: float, rng: np.random.Generator) -> None:
        """Advance the queue `dt` seconds from `now` and run KEDA's loops that fall inside."""
        noticed = self.capacity.step(now, dt)
        self.stats.drained_pods += len(noticed)
        if not self._planned and self._retry_at <= now < self.lookahead_until:
            self._plan_quiet(now, dt, rng)
        quiet = bool(self._planned) and self._planned[0][:2] == (now, dt)
        if quiet:
            arrived = self._planned.popleft()[2]
        else:
            self._planned.clear()
            arrived = float(rng.poisson(self._arrivals(now, dt)))
        self.stats.items += arrived
        self.backlog += arrived
        ages = math.isfinite(self.pool.retention_s)
        if ages and arrived:
            self._cohorts.append([now, arrived])
        workers = self.capacity.ready_count(now)
        served = min(self.backlog, workers * self.pool.replica_items_per_second * dt)
        self.backlog -= served
        if ages:
            self._serve_oldest(served)
            self._expire(now + dt)
        self.in_flight = served / dt if dt else 0.0
        self.stats.processed += served
        self.stats.max_backlog = max(self.stats.max_backlog, self.backlog)
        self.stats.backlog_seconds += self.backlog * dt
        if self.keda is not None and not quiet:
            self._control(now, now + dt)

    def _plan_quiet(self, now: float, dt: float, rng: np.random.Generator) -> None:
        """Plan the coming steps of `dt` through which KEDA and the HPA change nothing.

        The queue's arrivals for the next steps are drawn ahead, its backlog followed step by
        step with the same arithmetic as `step`, and KEDA's and the HPA's decisions on the
        resulting metric evaluated at once (`quiet.settled_ends`, which also keeps their state
        through the planned steps). The generator is rewound and only the planned steps' draws
        taken again, so it stands where step-by-step draws would leave it.
        """
        capacity = self.capacity
        if self.keda is None or math.isfinite(self.pool.retention_s):
            self.lookahead_until = -math.inf  # never plannable: stop asking
            return
        if capacity.pending or capacity.on_fallback():
            return
        starts = capacity.serving_starts()
        replicas = len(starts)
        if replicas != capacity.spec_replicas or (starts and starts[-1] > now):
            return
        count = int(min(self._span, (self.lookahead_until - now) // dt))
        ends = now + dt * np.arange(1, count + 1, dtype=np.float64)
        ends = ends[ends < capacity.next_node_event()]
        if not len(ends):
            return
        expected = np.array([self._arrivals(float(end) - dt, dt) for end in ends])
        state = rng.bit_generator.state
        draws = rng.poisson(expected).astype(np.float64)
        rng.bit_generator.state = state
        backlog = self.backlog
        rate = replicas * self.pool.replica_items_per_second * dt
        gauge = np.empty(len(ends))
        for index, arrived in enumerate(draws.tolist()):
            backlog += arrived
            served = min(backlog, rate)
            backlog -= served
            gauge[index] = backlog + (served / dt if dt else 0.0)
        polls = crossings(ends, dt, self.keda.params.polling_seconds)
        syncs = crossings(ends, dt, HPA_SYNC_SECONDS)
        kept = settled_ends(self.keda, replicas, ends, gauge, np.zeros(len(ends)), polls, syncs)
        if not kept:
            self._retry_at = now + dt * QUEUE_QUIET_RETRY_STEPS
            self._span = QUEUE_QUIET_MIN_STEPS
            return
        arrivals = rng.poisson(expected[:kept]).astype(np.float64)
        for index, arrived in enumerate(arrivals.tolist()):
            self._planned.append((float(ends[index]) - dt, dt, arrived))
        grown = min(QUEUE_QUIET_MAX_STEPS, 2 * self._span)
        self._span = grown if kept == len(ends) else max(QUEUE_QUIET_MIN_STEPS, 2 * kept)

    def _arrivals(self, now: float, dt: float) -> float:
        """Items expected in [now, now + dt): the steady rate, or the share inside a run."""
        schedule = self.pool.schedule
        if schedule is None or self.windows is None:
            return self.pool.items_per_second * dt
        inside = sum(max(0.0, min(now + dt, b) - max(now, a)) for a, b in self.windows)
        return schedule.rps * inside

    def _control(self, now: float, end: float) -> None:
        assert self.keda is not None
        metric = self.backlog + self.in_flight
        polling = self.keda.params.polling_seconds
        current = self.capacity.spec_replicas
        if math.floor(end / polling) > math.floor(now / polling):
            current = self.keda.poll(end, current, metric, 0)
            self.capacity.scale_to(current, end)
        if math.floor(end / HPA_SYNC_SECONDS) > math.floor(now / HPA_SYNC_SECONDS):
            desired = self.keda.hpa_sync(end, self.capacity.spec_replicas, metric, 0.0)
            self.capacity.scale_to(desired, end)


def batch_queue(
    scenario: Scenario,
    start: datetime,
    seconds: int,
    rng: np.random.Generator,
    *,
    lookahead: bool = False,
) -> BatchQueue | None:
    """The scenario's batch queue, settled and warm; None without a batch pool.

    `lookahead`: the queue may plan its quiet steps ahead (see `BatchQueue._plan_quiet`); only
    when nothing else draws from `rng` while the run goes on.
    """
    pool = scenario.batch
    if pool is None:
        return None
    capacity = batch_capacity(scenario, pool, rng)
    keda = keda_for(pool, start, seconds)
    windows = None
    opening = pool.items_per_second
    if pool.schedule is not None:
        windows = spike_windows(pool.schedule, start, seconds)
        # The opening rate is the schedule's at the first second: a run, or none.
        opening = pool.schedule.rps if any(a <= 0 < b for a, b in windows) else 0.0
    # Planned steps stop short of the run's last (shorter) step.
    until = float(seconds - seconds % HPA_SYNC_SECONDS) if lookahead else -math.inf
    queue = BatchQueue(pool, capacity, keda, windows, until)
    start_warm(capacity, batch_opening(scenario, pool, keda, opening))
    return queue


class RealtimeModel(Protocol):
    """How one mode serves the realtime pool: the only part the two modes do differently."""

    @property
    def pool(self) -> RealtimePool:
        """The pool as the scenario configures it."""

    @property
    def capacity(self) -> PoolCapacity:
        """Its nodes and pods."""

    @property
    def held_total(self) -> int:
        """Requests held by the HTTP add-on while the pool was at zero."""

    def advance(self, t0: int, t1: int) -> int:
        """Serve seconds t0..t1-1, then run the control loops at t1; returns the second reached.

        That is t1, or later when the pool is settled and the control loops provably change
        nothing for a while (the fast mode's quiet stretches, see `quiet`): every tick up to
        the returned second is then done, the pool unchanged through it.
        """

    def ready_at(self, second: int) -> int:
        """Ready replicas at the end of `second` (after `advance` passed it)."""

    def finish(self, minutes: int) -> tuple[Recorder, list[float], int]:
        """The latency record, the per-minute p99 and the arrivals, once the run is over."""


@dataclass(frozen=True)
class Steps:
    """How the outer loop steps: every `tick` seconds, the batch queue every `queue_every`."""

    tick: int
    queue_every: int


def _minute_means(rates: Floats) -> list[float]:
    """Each minute's mean rate (the last minute may be partial), all at once: the same numbers as
    one `mean` per minute (numpy sums each 60-second row as it sums a 60-second slice)."""
    full = len(rates) // 60
    means = rates[: full * 60].reshape(full, 60).mean(axis=1).tolist()
    if len(rates) % 60:
        means.append(float(rates[full * 60 :].mean()))
    return [float(mean) for mean in means]


def _append_minute(
    timeline: Timeline,
    rps: float,
    last: int,
    realtime: RealtimeModel | None,
    queue: BatchQueue | None,
    cost: float,
) -> None:
    timeline.rps.append(rps)
    timeline.realtime_ready.append(realtime.ready_at(last) if realtime is not None else 0)
    if queue is not None:
        ready = queue.capacity.ready_pods(float(last))
        spot = sum(1 for p in ready if queue.capacity.capacity_of(p) == "spot")
        timeline.batch_ready_spot.append(spot)
        timeline.batch_ready_on_demand.append(len(ready) - spot)
        timeline.batch_backlog.append(queue.backlog)
    timeline.cost_usd.append(cost)


def drive(
    rates: Floats,
    realtime: RealtimeModel | None,
    queue: BatchQueue | None,
    rng: np.random.Generator,
    steps: Steps,
    progress: Progress | None = None,
) -> Timeline:
    """Advance both pools over `rates`, bill their nodes, and record each minute."""
    seconds = len(rates)
    minutes = math.ceil(seconds / 60)
    timeline = Timeline()
    rps = _minute_means(rates)
    cost = 0.0
    queue_from = 0
    queue_rate = 0.0
    realtime_done = 0
    realtime_rate = 0.0
    for t0 in range(0, seconds, steps.tick):
        t1 = min(seconds, t0 + steps.tick)
        dt = float(t1 - t0)
        if realtime is not None:
            if t0 >= realtime_done:
                # A quiet stretch returns beyond t1; its pool (and price) held through it.
                realtime_done = realtime.advance(t0, t1)
                realtime_rate = cost_rate(realtime.capacity, realtime.pool.prices)
            cost += realtime_rate * dt
        if queue is not None:
            # The queue is a fluid: one step per `queue_every` is as exact as one per tick.
            if t1 % steps.queue_every == 0 or t1 == seconds:
                queue.step(float(queue_from), float(t1 - queue_from), rng)
                queue_from = t1
                queue_rate = cost_rate(queue.capacity, queue.pool.prices)
            cost += dt * queue_rate
        while len(timeline.rps) < t1 // 60 or (t1 == seconds and len(timeline.rps) < minutes):
            last = min(seconds, (len(timeline.rps) + 1) * 60) - 1
            _append_minute(timeline, rps[len(timeline.rps)], last, realtime, queue, cost)
            if progress is not None:
                progress(t1 / seconds)
    return timeline


def run_result(
    scenario: Scenario,
    mode: str,
    rates: Floats,
    realtime: RealtimeModel | None,
    queue: BatchQueue | None,
    timeline: Timeline,
    idle: Callable[[int], Recorder],
) -> RunResult:
    """The run's result: the realtime pool's record (or `idle(minutes)`'s), both pools' usage."""
    seconds = len(rates)
    minutes = math.ceil(seconds / 60)
    if realtime is not None:
        recorder, timeline.p99_s, arrivals = realtime.finish(minutes)
    else:
        recorder, timeline.p99_s, arrivals = idle(minutes), [math.nan] * minutes, 0
    return RunResult(
        scenario=scenario,
        mode=mode,
        seconds=seconds,
        arrivals=arrivals,
        recorder=recorder,
        timeline=timeline,
        realtime_usage=realtime.capacity.usage if realtime is not None else None,
        batch_usage=queue.capacity.usage if queue is not None else None,
        batch=queue.stats if queue is not None else None,
        held=realtime.held_total if realtime is not None else 0,
    )


__all__ = [
    "BatchQueue",
    "BatchStats",
    "RealtimeModel",
    "RunResult",
    "Steps",
    "Timeline",
    "batch_capacity",
    "batch_queue",
    "cost_rate",
    "drive",
    "keda_for",
    "realtime_capacity",
    "run_result",
    "start_warm",
]
