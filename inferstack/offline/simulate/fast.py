"""The fast mode: two time scales, for days and months of traffic.

Outside, the control loops run tick by tick exactly as in the exact mode (capacity, KEDA polls,
HPA syncs, scrapes, the batch queue), with a tick the greatest common divisor of the polling,
sync and scrape periods (5 s for the dev stack). Inside each tick no request is simulated: a
replica's queueing is read from a table built by the exact batcher kernel itself (once per
replica configuration, on its own generator, and kept on disk: see `table_for`),
one steady-state run of a single replica per arrival rate on a grid from near zero to three
times its capacity (latency histogram, rejected, timed-out and within-budget shares, mean
queue depth and in-flight count). Each second's arrivals (Poisson counts at the second's rate)
are weighted onto the two grid rates around its per-replica rate (rate / ready replicas, the
same random spread as the exact mode), and the histograms are mixed by those weights at the end
in one matrix product, so the cost of a second does not grow with its request count.

What it gives up: the transient of a queue filling or draining within a second (the table is
steady state; at these rates a queue reaches it in well under a second), and the spread of the
scraped gauge (the autoscaler reads the table's mean queue depth, not one sample of it).
Requests held at zero replicas (scale-to-zero) are released together when the first replica is
ready, as the HTTP add-on releases them: each goes to a ready replica picked at random, and each
replica's burst runs through the exact kernel (its queue takes `queue_limit` of them and refuses
the rest, as in the exact mode); only the second's own arrivals, which meet that burst in the
exact mode, are still read from the table. `benchmarks/simulate_modes.py` measures the agreement
with the exact mode on a day of the dev stack.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from inferstack.offline.simulate import replica as replica_module
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
from inferstack.offline.simulate.opening import opening_rate, realtime_opening, rps_gauge
from inferstack.offline.simulate.quiet import settled_ends
from inferstack.offline.simulate.replica import (
    COARSE_BINS,
    COARSE_RATIO,
    FINE_BINS,
    N_COUNTERS,
    REFUSED,
    REJECTED,
    SERVED,
    TIMEOUTS,
    WITHIN_BUDGET,
    KernelTables,
    Recorder,
    Replica,
    advance,
    percentile,
    percentiles,
)

Floats = npt.NDArray[np.float64]
TABLE_REQUESTS = 60_000
"""Requests simulated per grid rate."""
TABLE_SAMPLES = 600
"""Gauge samples per grid rate (queue depth, in-flight)."""
TABLE_MAX_SECONDS = 900.0
QUIET_MIN_TICKS = 12
"""Ticks a quiet stretch looks ahead at first (it doubles while the pool stays settled)."""
QUIET_MAX_TICKS = 720
QUIET_RETRY_TICKS = 4
"""Ticks to wait before looking for a quiet stretch again after the pool moved."""


@dataclass(frozen=True)
class QueueingTable:
    """One replica's steady state per arrival rate, from the exact kernel."""

    rates: Floats
    fine: Floats
    coarse: Floats
    served: Floats
    rejected: Floats
    timeouts: Floats
    within: Floats
    queue_depth: Floats
    in_flight: Floats
    median_s: Floats

    def weights(self, per_replica: Floats) -> tuple[npt.NDArray[np.int64], Floats]:
        """Lower grid index and the weight of the upper one, for each rate."""
        clipped = np.clip(per_replica, self.rates[0], self.rates[-1])
        upper = np.clip(np.searchsorted(self.rates, clipped, side="left"), 1, len(self.rates) - 1)
        lower = upper - 1
        span = self.rates[upper] - self.rates[lower]
        weight = (clipped - self.rates[lower]) / span
        return lower, weight

    def at(self, column: Floats, rate: float) -> float:
        """A gauge (queue depth, in-flight) interpolated at the per-replica `rate`."""
        return float(self.gauge(column, np.float64(rate)))

    def gauge(self, column: Floats, rates: Floats | np.float64) -> Floats:
        """A gauge at each per-replica rate: from the grid, and falling linearly to zero below
        its first rate (a replica with no traffic queues nothing and has nothing in flight;
        holding the first grid point's value there kept an idle pool "active" for KEDA, so a
        scale-to-zero pool on in_flight or queue_depth never slept in the fast mode)."""
        first = self.rates[0]
        values = np.interp(rates, self.rates, column)
        below = column[0] * np.maximum(rates, 0.0) / first
        return np.asarray(np.where(rates < first, below, values), dtype=np.float64)


def _capacity(pool: RealtimePool, tables: KernelTables) -> float:
    batch = pool.batcher.max_batch_size
    return batch * pool.batcher.instances / float(tables.median[batch])


def rate_grid(capacity: float) -> Floats:
    """Grid of per-replica rates: dense near capacity, where latency changes fastest."""
    low = np.linspace(0.01, 0.7, 24)
    mid = np.linspace(0.72, 1.1, 28)
    high = np.linspace(1.15, 3.0, 10)
    return capacity * np.concatenate([low, mid, high])


def build_table(pool: RealtimePool, rng: np.random.Generator) -> QueueingTable:
    """Steady-state runs of one replica on the rate grid."""
    tables = KernelTables.build(pool.batcher, pool.compute, pool.latency_budget_s)
    grid = rate_grid(_capacity(pool, tables))
    size = len(grid)
    fine = np.zeros((size, FINE_BINS))
    coarse = np.zeros((size, COARSE_BINS))
    columns = {name: np.zeros(size) for name in ("served", "rejected", "timeouts", "within")}
    depth, in_flight, median = np.zeros(size), np.zeros(size), np.zeros(size)
    for index, rate in enumerate(grid):
        seconds = min(TABLE_MAX_SECONDS, max(20.0, TABLE_REQUESTS / rate))
        step = seconds / TABLE_SAMPLES
        replica = Replica(pool.batcher, 0.0)
        warm = Recorder.empty(1)
        now = 0.0
        for _ in range(50):  # warm up into the steady state, then start counting
            times = now + np.sort(rng.random(int(rng.poisson(rate * step)))) * step
            advance(replica, tables, times, times, now + step, rng, warm)
            now += step
        recorder = Recorder.empty(1)
        arrivals = 0
        depths = np.zeros(TABLE_SAMPLES)
        flights = np.zeros(TABLE_SAMPLES)
        for sample in range(TABLE_SAMPLES):
            count = int(rng.poisson(rate * step))
            arrivals += count
            times = now + np.sort(rng.random(count)) * step
            advance(replica, tables, times, times, now + step, rng, recorder)
            now += step
            depths[sample] = replica.queue_depth
            flights[sample] = replica.in_flight(now)
        total = max(arrivals, 1)
        fine[index] = recorder.fine / total
        coarse[index] = recorder.coarse[0] / total
        counters = recorder.counters
        # Requests still queued at the end are neither served nor refused yet: count them
        # as served at the same distribution (they are a sliver of a steady-state run).
        columns["served"][index] = 1.0 - (counters[REJECTED] + counters[TIMEOUTS]) / total
        columns["rejected"][index] = counters[REJECTED] / total
        columns["timeouts"][index] = counters[TIMEOUTS] / total
        served = max(int(counters[SERVED]), 1)
        columns["within"][index] = counters[WITHIN_BUDGET] / served * columns["served"][index]
        fine[index] *= columns["served"][index] / max(fine[index].sum(), 1e-12)
        coarse[index] *= columns["served"][index] / max(coarse[index].sum(), 1e-12)
        depth[index] = depths.mean()
        in_flight[index] = flights.mean()
        median[index] = percentile(recorder.fine, 0.5) if counters[SERVED] else 0.0
    return QueueingTable(
        grid,
        fine,
        coarse,
        columns["served"],
        columns["rejected"],
        columns["timeouts"],
        columns["within"],
        depth,
        in_flight,
        median,
    )


TABLE_SEED = 20_260_105
"""The tables' own generator seed. A table describes the replica (its batcher, compute and
budget), not one run: built from its own stream, one table serves every seed, day count and
configuration that shares the replica, and can be kept on disk."""
TABLE_FORMAT = 1
"""Bumped when the table's content or layout changes (the code's digest also keys the files)."""
CACHE_ENV = "INFERSTACK_CACHE_DIR"
"""Where tables are kept on disk (default: $XDG_CACHE_HOME/inferstack, or ~/.cache/inferstack);
an empty value keeps them in memory only."""

_TABLES: dict[str, QueueingTable] = {}
"""Tables built or read in this process, by `table_key`."""
TABLES_KEPT = 32
_COLUMNS = (
    "rates",
    "fine",
    "coarse",
    "served",
    "rejected",
    "timeouts",
    "within",
    "queue_depth",
    "in_flight",
    "median_s",
)


def _code_digest() -> str:
    """The kernel's and the table builder's source: a changed model never reads an old table."""
    digest = hashlib.sha256()
    for module in (Path(__file__), Path(replica_module.__file__)):
        digest.update(module.read_bytes())
    return digest.hexdigest()[:16]


def table_key(pool: RealtimePool) -> str:
    """What a table depends on: the replica's batcher, compute model and budget, the format."""
    text = repr((TABLE_FORMAT, TABLE_SEED, pool.batcher, pool.compute, pool.latency_budget_s))
    return hashlib.sha256(f"{text}|{_code_digest()}".encode()).hexdigest()[:32]


def cache_dir() -> Path | None:
    """The on-disk table cache (see `CACHE_ENV`); None when disabled."""
    configured = os.environ.get(CACHE_ENV)
    if configured is not None:
        return Path(configured) / "simulate-tables" if configured else None
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = str(Path.home() / ".cache")
        except RuntimeError:
            return None  # no home directory to keep them in: memory only
    return Path(base) / "inferstack" / "simulate-tables"


def _read(path: Path) -> QueueingTable | None:
    try:
        with np.load(path) as stored:
            return QueueingTable(*(np.asarray(stored[name]) for name in _COLUMNS))
    except (OSError, KeyError, ValueError):
        return None  # absent, unreadable or from another layout: build it again


def _write(path: Path, table: QueueingTable) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.npz")
        np.savez(partial, **{name: getattr(table, name) for name in _COLUMNS})
        os.replace(partial, path)  # atomic: a reader sees a whole table or none
    except OSError:
        pass  # a read-only or full disk only costs the next run the build


def table_for(pool: RealtimePool) -> QueueingTable:
    """The replica's queueing table: remembered in this process, else read from the disk cache,
    else built (`build_table` on its own generator) and stored in both.

    The build is seconds of CPU (about 2.5 s for the dev stack's replica); every `simulate`,
    `preview`, `check` and each of `tune`'s runs needs it. A hit is exactly the built table.
    """
    key = table_key(pool)
    table = _TABLES.get(key)
    if table is not None:
        return table
    folder = cache_dir()
    path = folder / f"{key}.npz" if folder is not None else None
    table = _read(path) if path is not None and path.exists() else None
    if table is None:
        table = build_table(pool, np.random.default_rng(TABLE_SEED))
        if path is not None:
            _write(path, table)
    if len(_TABLES) >= TABLES_KEPT:
        _TABLES.pop(next(iter(_TABLES)))
    _TABLES[key] = table
    return table


@dataclass
class _Held:
    second: int
    count: int


class FastRealtime:
    """The realtime pool on the outer time scale."""

    def __init__(
        self,
        scenario: Scenario,
        pool: RealtimePool,
        start: datetime,
        counts: npt.NDArray[np.int64],
        rates: Floats,
        rng: np.random.Generator,
        *,
        quiet: bool = True,
    ) -> None:
        self.pool = pool
        self.rates = rates
        self.counts = counts
        self.quiet = quiet
        self.table = table_for(pool)
        self.capacity = realtime_capacity(scenario, pool, rng)
        seconds = len(rates)
        self.keda = keda_for(pool, start, seconds)
        self.scrape_s = int(scenario.scrape_s)
        self.ready = np.zeros(seconds, dtype=np.int64)
        self.held: list[_Held] = []
        self.held_total = 0
        self.refused = 0
        self.held_timeouts = 0
        self.kernel_tables = KernelTables.build(pool.batcher, pool.compute, pool.latency_budget_s)
        self.released = Recorder.empty(math.ceil(seconds / 60))
        """Held requests once released, through the kernel (histograms by minute of arrival)."""
        self._release_rng = rng.spawn(1)[0]
        """Its own stream (spawning does not advance `rng`): a run that never wakes is unchanged."""
        self.scraped = 0.0
        self._cumulative = np.concatenate([[0], np.cumsum(counts)])
        self._span = QUIET_MIN_TICKS
        self._retry_at = 0
        start_warm(self.capacity, self._opening(scenario, opening_rate(rates)))

    def _opening(self, scenario: Scenario, rate: float) -> int:
        """The settled count for the opening rate, read from the table's gauges."""
        table = self.table

        def column(values: Floats) -> Callable[[float], float]:
            return lambda per_replica: table.at(values, per_replica)

        gauges = {
            "queue_depth": column(table.queue_depth),
            "in_flight": column(table.in_flight),
            "rps": rps_gauge,
        }
        return realtime_opening(
            scenario,
            self.pool,
            self.keda,
            rate,
            (gauges[self.pool.metric], column(table.in_flight)),
        )

    def ready_at(self, second: int) -> int:
        """Ready replicas during `second`."""
        return int(self.ready[second])

    def finish(self, minutes: int) -> tuple[Recorder, list[float], int]:
        """The mixed record and per-minute p99 (see `results`), and the arrivals."""
        recorder, p99 = self.results(minutes)
        return recorder, p99, int(self.counts.sum())

    def advance(self, t0: int, t1: int) -> int:
        """Seconds t0..t1-1, then the control loops at t1; or a quiet stretch from t0 (see
        `quiet`). Returns the second reached."""
        reach = self._quiet(t0, t1 - t0)
        if reach > t0:
            return reach
        self.capacity.step(float(t0), float(t1 - t0))
        starts = self.capacity.serving_starts()
        if starts and starts[-1] <= t0:
            # Every pod was ready before the step (the usual case): one count for all of it.
            self.ready[t0:t1] = len(starts)
            if self.held:
                self._zero_seconds(t0, self.ready[t0:t1])
        else:
            seconds = np.arange(t0, t1, dtype=np.float64)
            ready = np.searchsorted(np.array(starts), seconds, side="right")
            self.ready[t0:t1] = ready
            if not ready.all() or self.held:
                self._zero_seconds(t0, ready)
        self._control(t1)
        return t1

    def _quiet(self, t0: int, tick: int) -> int:
        """Advance a settled pool through the ticks whose control loops change nothing.

        Settled: every pod ready, none pending or draining, no request held. Returns the second
        reached (t0 when the next tick may change the pool, or the pool is not settled).
        """
        capacity = self.capacity
        if not self.quiet or tick <= 0 or self.held or t0 < self._retry_at:
            return t0
        if capacity.pending or capacity.spot:
            return t0
        starts = capacity.serving_starts()
        replicas = len(starts)
        if not replicas or starts[-1] > t0 or replicas != capacity.spec_replicas:
            return t0
        last = min(len(self.rates), t0 + tick * self._span)
        ends = t0 + tick * np.arange(1, (last - t0) // tick + 1, dtype=np.int64)
        ends = ends[ends < capacity.next_node_event()]
        if not len(ends):
            return t0
        gauge = self._gauge(ends, replicas)
        if self.keda is None:
            kept = len(ends)
        else:
            in_flight = replicas * self.table.gauge(
                self.table.in_flight, self.rates[ends - 1] / replicas
            )
            polls = ends % int(self.keda.params.polling_seconds) == 0
            syncs = ends % int(HPA_SYNC_SECONDS) == 0
            kept = settled_ends(self.keda, replicas, ends, gauge, in_flight, polls, syncs)
        if not kept:
            # Busy: the next few ticks are likely to move too; try again a little later.
            self._retry_at = t0 + tick * QUIET_RETRY_TICKS
            self._span = QUIET_MIN_TICKS
            return t0
        reach = int(ends[kept - 1])
        capacity.step(float(t0), float(reach - t0))
        self.ready[t0:reach] = replicas
        self.scraped = float(gauge[kept - 1])
        grown = min(QUIET_MAX_TICKS, 2 * self._span)
        self._span = grown if kept == len(ends) else max(QUIET_MIN_TICKS, 2 * kept)
        return reach

    def _gauge(self, ends: npt.NDArray[np.int64], replicas: int) -> Floats:
        """The scraped demand the HPA reads at each end (`_demand` at each scrape, held)."""
        scraped_at = ends[ends % self.scrape_s == 0]
        if self.pool.metric == "rps":
            window = int(RATE_WINDOW_SECONDS)
            totals = (
                self._cumulative[scraped_at] - self._cumulative[np.maximum(0, scraped_at - window)]
            )
            values = totals / window
        else:
            column = (
                self.table.queue_depth
                if self.pool.metric == "queue_depth"
                else self.table.in_flight
            )
            values = replicas * self.table.gauge(column, self.rates[scraped_at - 1] / replicas)
        # Each end reads the latest scrape at or before it (the one before the stretch first).
        latest = np.searchsorted(scraped_at, ends, side="right") - 1
        held = np.concatenate([[self.scraped], values])
        return held[latest + 1]

    def _zero_seconds(self, t0: int, ready: npt.NDArray[np.int64]) -> None:
        for offset, replicas in enumerate(ready.tolist()):
            second = t0 + offset
            count = int(self.counts[second])
            if replicas == 0:
                if self.pool.scale_to_zero:
                    if count:
                        self.held.append(_Held(second, count))
                        self.held_total += count
                else:
                    self.refused += count
                keep = []
                for group in self.held:
                    if second + 1 - group.second > self.pool.hold_timeout_s:
                        self.held_timeouts += group.count
                    else:
                        keep.append(group)
                self.held = keep
            elif self.held:
                self._release(second, replicas)

    def _release(self, second: int, replicas: int) -> None:
        """Release the held requests at `second` to `replicas` fresh replicas, as one burst."""
        rng = self._release_rng
        origin = np.concatenate(
            [group.second + np.sort(rng.random(group.count)) for group in self.held]
        )
        self.held = []
        picks = rng.integers(0, replicas, len(origin))
        for index in range(replicas):
            mine = origin[picks == index]
            if len(mine):
                arrive = np.full(len(mine), float(second))
                replica = Replica(self.pool.batcher, float(second))
                advance(replica, self.kernel_tables, arrive, mine, math.inf, rng, self.released)

    def _demand(self, end: int) -> float:
        replicas = int(self.ready[end - 1])
        metric = self.pool.metric
        if metric == "rps":
            window = int(RATE_WINDOW_SECONDS)
            return float(self.counts[max(0, end - window) : end].sum() / window)
        if replicas == 0:
            return 0.0
        rate = float(self.rates[end - 1]) / replicas
        column = self.table.queue_depth if metric == "queue_depth" else self.table.in_flight
        return replicas * self.table.at(column, rate)

    def _control(self, end: int) -> None:
        now = float(end)
        if end % self.scrape_s == 0:
            self.scraped = self._demand(end)
        if self.keda is None:
            return
        held = sum(group.count for group in self.held)
        if end % int(self.keda.params.polling_seconds) == 0:
            wanted = self.keda.poll(now, self.capacity.spec_replicas, self.scraped, held)
            self.capacity.scale_to(wanted, now)
        if end % int(HPA_SYNC_SECONDS) == 0:
            replicas = int(self.ready[end - 1])
            rate = float(self.rates[end - 1]) / max(replicas, 1)
            in_flight = held + replicas * self.table.at(self.table.in_flight, rate)
            desired = self.keda.hpa_sync(now, self.capacity.spec_replicas, self.scraped, in_flight)
            self.capacity.scale_to(desired, now)

    def results(self, minutes: int) -> tuple[Recorder, list[float]]:
        """Mix the table by each second's weights: the totals and the per-minute p99."""
        table = self.table
        mask = self.ready > 0
        per_replica = np.where(mask, self.rates / np.maximum(self.ready, 1), table.rates[0])
        lower, weight = table.weights(per_replica)
        served_counts = np.where(mask, self.counts, 0).astype(np.float64)
        size = len(table.rates)
        low_w = served_counts * (1 - weight)
        high_w = served_counts * weight
        totals = np.bincount(lower, low_w, size) + np.bincount(lower + 1, high_w, size)
        fine = totals @ table.fine
        within = float(totals @ table.within)
        served = float(totals @ table.served)
        rejected = float(totals @ table.rejected)
        timeouts = (
            float(totals @ table.timeouts) + self.held_timeouts + sum(g.count for g in self.held)
        )
        released = self.released.counters
        fine = fine + self.released.fine
        served += float(released[SERVED])
        rejected += float(released[REJECTED])
        timeouts += float(released[TIMEOUTS])
        within += float(released[WITHIN_BUDGET])
        counters = np.zeros(N_COUNTERS, dtype=np.int64)
        counters[SERVED] = round(served)
        counters[REJECTED] = round(rejected)
        counters[REFUSED] = self.refused
        counters[TIMEOUTS] = round(timeouts)
        counters[WITHIN_BUDGET] = round(within)
        recorder = Recorder(fine, np.zeros((1, COARSE_BINS), dtype=np.int64), counters)
        return recorder, self._minute_p99(minutes, lower, low_w, high_w)

    def _minute_p99(
        self, minutes: int, lower: npt.NDArray[np.int64], low_w: Floats, high_w: Floats
    ) -> list[float]:
        table = self.table
        size = len(table.rates)
        minute_of = np.arange(len(self.rates)) // 60
        flat = minutes * size
        weights = np.bincount(minute_of * size + lower, low_w, flat) + np.bincount(
            minute_of * size + lower + 1, high_w, flat
        )
        weights = weights.reshape(minutes, size)
        released = self.released.coarse
        p99: list[float] = []
        chunk = 1440
        for first in range(0, minutes, chunk):
            hists = weights[first : first + chunk] @ table.coarse
            hists = hists + released[first : first + len(hists)]
            p99.extend(percentiles(hists, 0.99, COARSE_RATIO).tolist())
        return p99


def _tick(scenario: Scenario) -> int:
    periods = [int(HPA_SYNC_SECONDS), int(scenario.scrape_s), 60]
    for pool in (scenario.realtime, scenario.batch):
        if pool is not None and pool.scaler is not None:
            periods.append(int(pool.scaler.polling_seconds))
    return max(1, math.gcd(*periods))


def _idle(minutes: int) -> Recorder:
    return Recorder(
        np.zeros(FINE_BINS),
        np.zeros((1, COARSE_BINS), dtype=np.int64),
        np.zeros(N_COUNTERS, dtype=np.int64),
    )


def run_fast(
    scenario: Scenario,
    rates: Floats,
    start: datetime,
    *,
    seed: int,
    progress: Progress | None = None,
    quiet: bool = True,
) -> RunResult:
    """Simulate `scenario` on per-second `rates` on two time scales (see the module docstring).

    `quiet`: skip the stretches in which no control loop changes a count (see `quiet`), with
    the same numbers; False decides tick by tick (what `benchmarks/simulate_days.py` compares).
    """
    seconds = len(rates)
    rng = np.random.default_rng(seed)
    counts = rng.poisson(rates).astype(np.int64)
    realtime = (
        FastRealtime(scenario, scenario.realtime, start, counts, rates, rng, quiet=quiet)
        if scenario.realtime is not None
        else None
    )
    # The fast realtime pool draws nothing from `rng` once built: the queue may plan ahead.
    queue = batch_queue(scenario, start, seconds, rng, lookahead=quiet)
    steps = Steps(tick=_tick(scenario), queue_every=int(HPA_SYNC_SECONDS))
    timeline = drive(rates, realtime, queue, rng, steps, progress)
    return run_result(scenario, "fast", rates, realtime, queue, timeline, _idle)
