"""Where a run starts: each pool at the replica count its autoscaler holds for the opening rate.

A run used to open with each pool at its floor, warm. When the opening rate needs more replicas
(the diurnal day opens at 7,234 rps on a floor of 2), the first minutes were an overload that no
running stack has, and a larger floor (the competent default's) hid it. A real stack at that
hour has been serving that rate for a while: its HPA has settled. So a run starts there, with no
warm-up excluded from the figures (a warm-up would need a rate to warm up on that the trace does
not give, and would cost simulated time on every run):

- the count is the fixed point the HPA reaches from the floor under a constant opening rate (the
  mean of the first minute): the largest per-metric proposal of `GetExternalPerPodMetricReplicas`
  (tolerance included) for the per-replica gauges at that rate, repeated until it stops growing,
  within the bounds, with the cron floors active at the start;
- a pool that may scale to zero starts awake when the opening rate brings at least one request
  per cooldown period (KEDA would not have let it go back to zero), else at zero;
- the HPA remembers that count as its recommendation at the start, so its scale-down window
  holds it as it would after minutes at that rate; KEDA counts the pool as just active.

`Scenario.opening = "floor"` keeps the old start, for what it models: a fresh deploy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from inferstack.offline.simulate.autoscaler import KedaScaler, external_average_value_replicas
from inferstack.offline.simulate.config import (
    RATE_WINDOW_SECONDS,
    BatchPool,
    RealtimePool,
    Scenario,
)
from inferstack.offline.simulate.replica import KernelTables, Recorder, Replica, advance

Floats = npt.NDArray[np.float64]
Gauge = Callable[[float], float]
"""A per-replica gauge (queue depth, in-flight, rps) at a per-replica arrival rate."""

PROBE_SECONDS = 30.0
PROBE_STEPS = 300
PROBE_SEED = 20_261_207
"""The exact mode's steady-state probes draw from their own generator, so the run's own random
stream (and every number of a run that opens at its floor) is unchanged."""


def opening_rate(rates: Floats) -> float:
    """The rate a run opens with: the mean of its first rate window."""
    if len(rates) == 0:
        return 0.0
    return float(np.mean(rates[: int(RATE_WINDOW_SECONDS)]))


def _awake_floor(keda: KedaScaler, rate: float) -> int:
    params = keda.params
    if params.min_replicas > 0:
        return params.min_replicas
    awake = rate * params.cooldown_seconds >= 1.0 and rate > params.activation_threshold
    return 1 if awake or keda.cron_metric(0.0) > 0 else 0


def settled_replicas(
    keda: KedaScaler, rate: float, gauges: Sequence[tuple[Gauge, float]], floor: int
) -> int:
    """The count the HPA settles at from `floor` under a constant total `rate`.

    `gauges`: per-replica gauge and per-pod target, one per metric the HPA reads.
    """
    current = max(floor, keda.cron_metric(0.0)) if floor > 0 else 0
    current = min(current, keda.params.max_replicas)
    if current == 0:
        return 0
    while True:
        per_replica = rate / current
        usages = [(current * gauge(per_replica), target) for gauge, target in gauges]
        usages.append((float(keda.cron_metric(0.0)), 1.0))
        proposal = max(
            external_average_value_replicas(current, usage, target) for usage, target in usages
        )
        following = min(keda.params.max_replicas, max(current, proposal))
        if following == current:
            return current
        current = following


def realtime_opening(
    scenario: Scenario,
    pool: RealtimePool,
    keda: KedaScaler | None,
    rate: float,
    gauges: tuple[Gauge, Gauge],
) -> int:
    """The realtime pool's opening count; `gauges`: its scaling metric's, and in-flight's."""
    if keda is None:
        return pool.fixed_replicas
    if scenario.opening == "floor":
        return keda.params.min_replicas
    demand, in_flight = gauges
    metrics: list[tuple[Gauge, float]] = [(demand, keda.params.demand_threshold)]
    if keda.params.http_wake:
        metrics.append((in_flight, keda.params.http_concurrency_target))
    replicas = settled_replicas(keda, rate, metrics, _awake_floor(keda, rate))
    keda.settle(0.0, replicas)
    return replicas


def batch_opening(
    scenario: Scenario, pool: BatchPool, keda: KedaScaler | None, rate: float | None = None
) -> int:
    """The queue pool's opening count: enough workers for the arrivals, as the HPA holds them.

    The queue metric is backlog plus items in flight; with enough workers the backlog stays
    near zero and the metric is the arrival rate, so the count starts where the workers keep up.
    `rate` is the arrival rate at the first second (default: the steady `items_per_second`).
    """
    if keda is None:
        return pool.fixed_replicas
    if scenario.opening == "floor":
        return keda.params.min_replicas
    if rate is None:
        rate = pool.items_per_second
    floor = _awake_floor(keda, rate)
    if floor > 0:
        floor = max(floor, math.ceil(rate / pool.replica_items_per_second))
    replicas = settled_replicas(keda, rate, [(rps_gauge, keda.params.demand_threshold)], floor)
    keda.settle(0.0, replicas)
    return replicas


def rps_gauge(per_replica: float) -> float:
    """The rps metric's gauge: the per-replica rate itself."""
    return per_replica


class KernelProbe:
    """Steady-state gauges of one replica at a rate, from short runs of the batcher kernel."""

    def __init__(self, pool: RealtimePool, tables: KernelTables) -> None:
        self.pool = pool
        self.tables = tables
        self._cache: dict[float, tuple[float, float]] = {}

    def _run(self, rate: float) -> tuple[float, float]:
        if rate not in self._cache:
            rng = np.random.default_rng(PROBE_SEED)
            replica = Replica(self.pool.batcher, 0.0)
            recorder = Recorder.empty(1)
            step = PROBE_SECONDS / PROBE_STEPS
            depths, flights = [], []
            for index in range(PROBE_STEPS):
                now = index * step
                times = now + np.sort(rng.random(int(rng.poisson(rate * step)))) * step
                advance(replica, self.tables, times, times, now + step, rng, recorder)
                if index >= PROBE_STEPS // 3:  # past the transient from an empty queue
                    depths.append(replica.queue_depth)
                    flights.append(replica.in_flight(now + step))
            self._cache[rate] = (float(np.mean(depths)), float(np.mean(flights)))
        return self._cache[rate]

    def queue_depth(self, rate: float) -> float:
        """Mean queue depth at `rate` requests per second."""
        return self._run(rate)[0]

    def in_flight(self, rate: float) -> float:
        """Mean requests admitted and not answered at `rate`."""
        return self._run(rate)[1]


__all__ = [
    "KernelProbe",
    "batch_opening",
    "opening_rate",
    "realtime_opening",
    "rps_gauge",
    "settled_replicas",
]
