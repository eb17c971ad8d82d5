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
from datetime import datetime

import numpy as np
import numpy.typing as npt

from inferstack.offline.simulate.arrivals import poisson_second
from inferstack.offline.simulate.autoscaler import HPA_SYNC_SECONDS
from inferstack.offline.simulate.config import RATE_WINDOW_SECONDS, RealtimePool, Scenario
from inferstack.offline.simulate.loop import (
    Progress,
    RunResult,
    Steps,
    batch_queue,
    drive,
    keda_for,
    realtime_capacity,
    run_result,
    start_warm,
)
from inferstack.offline.simulate.opening import (
    KernelProbe,
    opening_rate,
    realtime_opening,
    rps_gauge,
)
from inferstack.offline.simulate.replica import (
    COARSE_RATIO,
    REFUSED,
    TIMEOUTS,
    KernelTables,
    Recorder,
    Replica,
    advance,
    percentile,
)

Floats = npt.NDArray[np.float64]


class ExactRealtime:
    """The realtime pool, request by request."""

    def __init__(
        self,
        scenario: Scenario,
        pool: RealtimePool,
        start: datetime,
        rates: Floats,
        rng: np.random.Generator,
        bucket_s: float = 60.0,
        arrival_times: Floats | None = None,
    ) -> None:
        seconds = len(rates)
        self.pool = pool
        self.rates = rates
        self.arrival_times = arrival_times
        self._edges = (
            np.searchsorted(arrival_times, np.arange(seconds + 1, dtype=np.float64))
            if arrival_times is not None
            else None
        )
        self.bucket_s = bucket_s
        self.rng = rng
        self.recorder = Recorder.empty(math.ceil(seconds / bucket_s))
        self.tables = KernelTables.build(pool.batcher, pool.compute, pool.latency_budget_s)
        self.capacity = realtime_capacity(scenario, pool, rng)
        self.keda = keda_for(pool, start, seconds)
        self.scrape_s = scenario.scrape_s
        self.replicas: dict[int, Replica] = {}
        self.held: list[float] = []
        self.held_total = 0
        self.scraped = 0.0
        self.per_second = np.zeros(seconds + 1, dtype=np.float64)
        probe = KernelProbe(pool, self.tables)
        gauges = {"queue_depth": probe.queue_depth, "in_flight": probe.in_flight, "rps": rps_gauge}
        opening = realtime_opening(
            scenario, pool, self.keda, opening_rate(rates), (gauges[pool.metric], probe.in_flight)
        )
        start_warm(self.capacity, opening)

    def advance(self, t0: int, t1: int) -> int:
        """Serve seconds t0..t1-1 at their rates (or the trace's own arrival times)."""
        for s in range(t0, t1):
            given = None
            if self.arrival_times is not None and self._edges is not None:
                given = self.arrival_times[self._edges[s] : self._edges[s + 1]]
            self.second(s, float(self.rates[s]), given)
        return t1

    def ready_at(self, second: int) -> int:
        """Ready replicas at the end of `second`."""
        return len(self.capacity.ready_pods(float(second)))

    def finish(self, minutes: int) -> tuple[Recorder, list[float], int]:
        """Drain every replica's queue, time out what is still held, and read the record."""
        self._drain(list(self.replicas))
        self.recorder.counters[TIMEOUTS] += len(self.held)
        p99 = [
            percentile(self.recorder.coarse[bucket], 0.99, COARSE_RATIO)
            for bucket in range(len(self.recorder.coarse))
        ]
        return self.recorder, p99, int(self.per_second.sum())

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
            self.recorder.counters[REFUSED] += len(times)
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
    realtime = None
    if scenario.realtime is not None:
        realtime = ExactRealtime(
            scenario, scenario.realtime, start, rates, rng, bucket_s, arrival_times
        )
    queue = batch_queue(scenario, start, seconds, rng)
    timeline = drive(rates, realtime, queue, rng, Steps(tick=1, queue_every=1), progress)
    return run_result(
        scenario, "exact", rates, realtime, queue, timeline, lambda _: Recorder.empty(buckets)
    )
