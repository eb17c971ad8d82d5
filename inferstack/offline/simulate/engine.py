"""The exact mode: every request through a replica's batcher, the control loops in between.

One step per simulated second:
1. capacity advances (pods become ready, spot notices, node consolidation) and is billed;
2. the second's arrivals (Poisson at the second's rate) are spread over the ready replicas. The
   assumption: a Kubernetes Service picks a ready endpoint uniformly at random per connection
   (kube-proxy's iptables/nftables mode), with one request per connection or many short-lived
   ones, so each of n ready replicas sees an independent Poisson stream at rate / n. At zero
   replicas, requests are held by the HTTP add-on (scale-to-zero) up to its timeout, and
   released to the first ready replica; without it they are refused (no endpoints);
3. each replica's batcher runs to the end of the second (see `replica`); replicas removed by a
   scale-down leave the Service at once and drain what they queued;
4. Prometheus scrapes the runtime's gauges every `scrape_s`; KEDA polls for activity every
   `pollingInterval`; the HPA syncs every 15 s on the last scraped value (see `autoscaler`);
5. the batch pool's queue is a fluid: items arrive (Poisson), each ready worker takes its
   measured items per second, the backlog (plus in-flight) is KEDA's queue-length metric.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt

from inferstack.offline.simulate.arrivals import poisson_second
from inferstack.offline.simulate.autoscaler import HPA_SYNC_SECONDS, CronSchedule, KedaScaler
from inferstack.offline.simulate.capacity import PoolCapacity, Usage
from inferstack.offline.simulate.config import (
    RATE_WINDOW_SECONDS,
    BatchPool,
    RealtimePool,
    Scenario,
)
from inferstack.offline.simulate.replica import (
    COARSE_RATIO,
    REJECTED,
    TIMEOUTS,
    KernelTables,
    Recorder,
    Replica,
    advance,
    percentile,
)

Floats = npt.NDArray[np.float64]
Progress = Callable[[float], None]


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
    scaler = params_pool.scaler
    if scaler is None:
        return None
    schedules = [CronSchedule(trigger, start, seconds + 60) for trigger in scaler.crons]
    return KedaScaler(scaler, schedules)


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
        fallback_on_demand=pool.fallback_on_demand,
        notice_s=pool.notice_s,
        interruptions_per_node_hour=scenario.spot_interruptions_per_node_hour,
        shortage_mean_s=scenario.spot_shortage_mean_s,
        consolidation_s=scenario.consolidation_s,
        rng=rng,
    )


def initial_replicas(pool: RealtimePool | BatchPool) -> int:
    """What the pool starts the run with: its floor (a run begins in steady state)."""
    if pool.scaler is None:
        return pool.fixed_replicas
    return pool.scaler.min_replicas


def cost_rate(capacity: PoolCapacity, on_demand: float, spot: float) -> float:
    """Dollars per second the pool's nodes cost now."""
    total = 0.0
    for node in capacity.nodes:
        price = spot if node.capacity == "spot" else on_demand
        total += price * capacity.gpus_per_node
    return total / 3600.0


class BatchQueue:
    """The batch pool's queue as a fluid, with its KEDA loop."""

    def __init__(self, pool: BatchPool, capacity: PoolCapacity, keda: KedaScaler | None) -> None:
        self.pool = pool
        self.capacity = capacity
        self.keda = keda
        self.backlog = 0.0
        self.in_flight = 0.0
        self.stats = BatchStats()

    def step(self, now: float, dt: float, rng: np.random.Generator) -> None:
        """Advance the queue `dt` seconds from `now` and run KEDA's loops that fall inside."""
        noticed = self.capacity.step(now, dt)
        self.stats.drained_pods += len(noticed)
        arrived = float(rng.poisson(self.pool.items_per_second * dt))
        self.stats.items += arrived
        self.backlog += arrived
        workers = len(self.capacity.ready_pods(now))
        served = min(self.backlog, workers * self.pool.replica_items_per_second * dt)
        self.backlog -= served
        self.in_flight = served / dt if dt else 0.0
        self.stats.processed += served
        self.stats.max_backlog = max(self.stats.max_backlog, self.backlog)
        self.stats.backlog_seconds += self.backlog * dt
        if self.keda is None:
            return
        end = now + dt
        metric = self.backlog + self.in_flight
        polling = self.keda.params.polling_seconds
        current = self.capacity.spec_replicas
        if math.floor(end / polling) > math.floor(now / polling):
            current = self.keda.poll(end, current, metric, 0)
            self.capacity.scale_to(current, end)
        if math.floor(end / HPA_SYNC_SECONDS) > math.floor(now / HPA_SYNC_SECONDS):
            desired = self.keda.hpa_sync(end, self.capacity.spec_replicas, metric, 0.0)
            self.capacity.scale_to(desired, end)


class ExactRealtime:
    """The realtime pool, request by request."""

    def __init__(
        self,
        scenario: Scenario,
        pool: RealtimePool,
        start: datetime,
        seconds: int,
        recorder: Recorder,
        rng: np.random.Generator,
        bucket_s: float = 60.0,
    ) -> None:
        self.pool = pool
        self.bucket_s = bucket_s
        self.rng = rng
        self.recorder = recorder
        self.tables = KernelTables.build(pool.batcher, pool.compute, pool.latency_budget_s)
        self.capacity = realtime_capacity(scenario, pool, rng)
        self.keda = keda_for(pool, start, seconds)
        self.scrape_s = scenario.scrape_s
        self.replicas: dict[int, Replica] = {}
        self.held: list[float] = []
        self.held_total = 0
        self.scraped = 0.0
        self.per_second = np.zeros(seconds + 1, dtype=np.float64)
        self.capacity.scale_to(initial_replicas(pool), 0.0)
        for pod in self.capacity.pods:  # the run starts warm
            pod.ready_at = 0.0
            if pod.node is not None:
                pod.node.image_at = 0.0

    def _drain(self, pod_ids: list[int]) -> None:
        empty = np.empty(0, dtype=np.float64)
        for pod_id in pod_ids:
            replica = self.replicas.pop(pod_id, None)
            if replica is not None and replica.queue_depth:
                advance(
                    replica,
                    self.tables,
                    empty,
                    empty,
                    math.inf,
                    self.rng,
                    self.recorder,
                    draining=True,
                    bucket_s=self.bucket_s,
                )

    def _hold(self, times: Floats, now: float) -> None:
        if self.pool.scale_to_zero:
            self.held.extend(times.tolist())
            self.held_total += len(times)
        else:
            self.recorder.counters[REJECTED] += len(times)
        if self.held:
            timeout = self.pool.hold_timeout_s
            keep = [t for t in self.held if t + timeout > now + 1.0]
            expired = len(self.held) - len(keep)
            self.recorder.counters[TIMEOUTS] += expired
            self.held = keep

    def second(self, s: int, rate: float, given: Floats | None = None) -> None:
        """Serve second `s` at `rate` requests per second, then run the control loops.

        `given`: this second's arrival times (a trace's own timestamps) instead of Poisson
        ones; each goes to a ready replica picked uniformly at random.
        """
        now = float(s)
        self.capacity.step(now, 1.0)
        ready = self.capacity.ready_pods(now)
        if not ready:
            times = poisson_second(rate, now, self.rng) if given is None else given
            self.per_second[s] = len(times)
            self._hold(times, now)
        else:
            for pod in ready:
                if pod.id not in self.replicas:
                    self.replicas[pod.id] = Replica(self.pool.batcher, now)
            released: list[list[float]] = [[] for _ in ready]
            if self.held:
                picks = self.rng.integers(0, len(ready), len(self.held))
                for held_at, pick in zip(self.held, picks, strict=True):
                    released[int(pick)].append(held_at)
                self.held = []
            count = 0
            share = rate / len(ready)
            routes = None if given is None else self.rng.integers(0, len(ready), len(given))
            for index, pod in enumerate(ready):
                if given is None or routes is None:
                    times = poisson_second(share, now, self.rng)
                else:
                    times = given[routes == index]
                count += len(times)
                if released[index]:
                    origin = np.concatenate([np.array(released[index]), times])
                    arrive = np.concatenate([np.full(len(released[index]), now), times])
                else:
                    origin = arrive = times
                advance(
                    self.replicas[pod.id],
                    self.tables,
                    arrive,
                    origin,
                    now + 1.0,
                    self.rng,
                    self.recorder,
                    bucket_s=self.bucket_s,
                )
            self.per_second[s] = count
        self._control(s + 1)

    def _demand(self, now: float) -> float:
        metric = self.pool.metric
        ready = self.capacity.ready_pods(now)
        if metric == "queue_depth":
            return float(
                sum(self.replicas[p.id].queue_depth for p in ready if p.id in self.replicas)
            )
        if metric == "in_flight":
            return float(
                sum(self.replicas[p.id].in_flight(now) for p in ready if p.id in self.replicas)
            )
        end = int(now)
        window = int(RATE_WINDOW_SECONDS)
        return float(self.per_second[max(0, end - window) : end].sum() / window)

    def _control(self, end: int) -> None:
        now = float(end)
        if end % int(self.scrape_s) == 0:
            self.scraped = self._demand(now)
        if self.keda is None:
            return
        current = self.capacity.spec_replicas
        if end % int(self.keda.params.polling_seconds) == 0:
            wanted = self.keda.poll(now, current, self.scraped, len(self.held))
            self._drain([p.id for p in self.capacity.scale_to(wanted, now)])
        if end % int(HPA_SYNC_SECONDS) == 0:
            in_flight = float(len(self.held)) + sum(
                self.replicas[p.id].in_flight(now)
                for p in self.capacity.ready_pods(now)
                if p.id in self.replicas
            )
            desired = self.keda.hpa_sync(now, self.capacity.spec_replicas, self.scraped, in_flight)
            self._drain([p.id for p in self.capacity.scale_to(desired, now)])
        live = {p.id for p in self.capacity.pods}
        gone = [pod_id for pod_id in self.replicas if pod_id not in live]
        self._drain(gone)


def batch_queue(
    scenario: Scenario, start: datetime, seconds: int, rng: np.random.Generator
) -> BatchQueue | None:
    pool = scenario.batch
    if pool is None:
        return None
    capacity = batch_capacity(scenario, pool, rng)
    queue = BatchQueue(pool, capacity, keda_for(pool, start, seconds))
    capacity.scale_to(initial_replicas(pool), 0.0)
    for pod in capacity.pods:
        pod.ready_at = 0.0
        if pod.node is not None:
            pod.node.image_at = 0.0
    return queue


def _minute(
    timeline: Timeline,
    rates: Floats,
    s: int,
    realtime_ready: int,
    queue: BatchQueue | None,
    cost: float,
) -> None:
    timeline.rps.append(float(rates[max(0, s - 59) : s + 1].mean()))
    timeline.realtime_ready.append(realtime_ready)
    if queue is not None:
        ready = queue.capacity.ready_pods(float(s))
        spot = sum(1 for p in ready if queue.capacity.capacity_of(p) == "spot")
        timeline.batch_ready_spot.append(spot)
        timeline.batch_ready_on_demand.append(len(ready) - spot)
        timeline.batch_backlog.append(queue.backlog)
    timeline.cost_usd.append(cost)


def run_exact(
    scenario: Scenario,
    rates: Floats,
    start: datetime,
    *,
    seed: int,
    progress: Progress | None = None,
    bucket_s: float = 60.0,
    arrival_times: Floats | None = None,
) -> RunResult:
    """Simulate `scenario` on per-second `rates` from `start`, request by request.

    `arrival_times` (sorted offsets in seconds) replaces the Poisson arrivals with these.

    `recorder.coarse` holds one latency histogram per `bucket_s` of arrival time (a minute,
    unless a benchmark wants finer windows; the timeline's p99 is per bucket then).
    """
    seconds = len(rates)
    buckets = math.ceil(seconds / bucket_s)
    rng = np.random.default_rng(seed)
    recorder = Recorder.empty(buckets)
    realtime = (
        ExactRealtime(scenario, scenario.realtime, start, seconds, recorder, rng, bucket_s)
        if scenario.realtime is not None
        else None
    )
    queue = batch_queue(scenario, start, seconds, rng)
    timeline = Timeline()
    cost = 0.0
    edges = (
        np.searchsorted(arrival_times, np.arange(seconds + 1, dtype=np.float64))
        if arrival_times is not None
        else None
    )
    for s in range(seconds):
        if realtime is not None:
            given = None
            if arrival_times is not None and edges is not None:
                given = arrival_times[edges[s] : edges[s + 1]]
            realtime.second(s, float(rates[s]), given)
            pool = realtime.pool
            cost += cost_rate(
                realtime.capacity, pool.prices.on_demand_per_gpu_hour, pool.prices.spot_per_gpu_hour
            )
        if queue is not None:
            queue.step(float(s), 1.0, rng)
            prices = queue.pool.prices
            cost += cost_rate(
                queue.capacity, prices.on_demand_per_gpu_hour, prices.spot_per_gpu_hour
            )
        if s % 60 == 59 or s == seconds - 1:
            ready = len(realtime.capacity.ready_pods(float(s))) if realtime else 0
            _minute(timeline, rates, s, ready, queue, cost)
            if progress is not None:
                progress((s + 1) / seconds)
    arrivals = int(realtime.per_second.sum()) if realtime is not None else 0
    if realtime is not None:
        realtime._drain(list(realtime.replicas))
        recorder.counters[TIMEOUTS] += len(realtime.held)
    timeline.p99_s = [
        percentile(recorder.coarse[bucket], 0.99, COARSE_RATIO) for bucket in range(buckets)
    ]
    return RunResult(
        scenario=scenario,
        mode="exact",
        seconds=seconds,
        arrivals=arrivals,
        recorder=recorder,
        timeline=timeline,
        realtime_usage=realtime.capacity.usage if realtime else None,
        batch_usage=queue.capacity.usage if queue else None,
        batch=queue.stats if queue else None,
        held=realtime.held_total if realtime else 0,
    )
