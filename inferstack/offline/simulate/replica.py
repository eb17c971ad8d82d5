"""One replica of the realtime pool: the runtime's dynamic batcher, request by request.

The kernel reproduces `inferstack.runtime.batcher.DynamicBatcher` for single-row requests:
- an arrival finding `queue_limit` requests waiting is rejected at once (429);
- a free model instance takes a batch as soon as the queue holds `max_batch_size` requests or
  one of the `preferred_batch_sizes` (the largest preferred size the queue can fill), or when the
  oldest request has waited `max_queue_delay`; while every instance computes, requests wait;
- a request older than `request_timeout` is dropped before it reaches the model (a timeout);
- `instances` batches compute at once; a draining replica dispatches without waiting.

Batch compute time for size b is log-normal with the profile's p50 and p99 at b (interpolated
linearly between measured sizes): `median = p50`, `sigma = ln(p99 / p50) / z(0.99)`, so a
simulated batch matches both measured percentiles. A format-3 profile's server overhead (what
`inferstack serve` adds: HTTP parse, decode, batcher hand-off, encode) is added to each batch as
`per_batch + per_request * b` before the log-normal is fitted, so a batch occupies its replica
for compute plus that path. A format-4 profile's answer spacing (the time between consecutive
answers of one batch) delays the answer of a batch's i-th request (from 0) by (i + 1) spacings
after the batch ends: the server encodes and writes a batch's answers one after another on its
event loop while the replica already computes the next batch, so the spacing adds to latency,
not to the replica's occupancy. Not modelled: the answers waiting while the loop dispatches the
next batch, requests waiting to be read and decoded while the loop is busy, the event loop's
CPU shared with other replicas and the client, the path's variance beyond the fitted line, and
TCP/connection effects.

Latencies land in log-spaced histograms (1 % wide bins for the totals, 5 % for the per-minute
timeline), so a day of 10^8 requests needs no per-request storage. The kernel is compiled with
numba when it is installed (the `simulate` extra) and runs as plain Python otherwise: same
numbers, since every random draw comes from the caller's numpy Generator.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

Z99 = 2.3263478740408408
"""The standard normal's 0.99 quantile."""
HIST_MIN_SECONDS = 1e-5
FINE_RATIO = 1.01
FINE_BINS = 2000
COARSE_RATIO = 1.05
COARSE_BINS = 400

# Indices into the counters array. REJECTED: met a full queue (the kernel's 429); REFUSED: no
# ready endpoint to take it (a pool at zero without the HTTP add-on), counted outside the kernel.
SERVED, REJECTED, TIMEOUTS, WITHIN_BUDGET, BATCHES, REFUSED = 0, 1, 2, 3, 4, 5
N_COUNTERS = 6


def bin_edges(ratio: float, bins: int) -> Floats:
    """Lower edges of the latency histogram's bins, in seconds."""
    return HIST_MIN_SECONDS * ratio ** np.arange(bins + 1, dtype=np.float64)


def bin_index(seconds: Floats, ratio: float, bins: int) -> Ints:
    """Histogram bins of latencies (vectorised form of the kernel's own arithmetic)."""
    scaled = np.log(np.maximum(seconds, HIST_MIN_SECONDS) / HIST_MIN_SECONDS) / math.log(ratio)
    return np.minimum(scaled.astype(np.int64), bins - 1)


def percentile(hist: npt.NDArray[Any], q: float, ratio: float = FINE_RATIO) -> float:
    """The q-quantile (0..1) of a latency histogram, in seconds: the bin's geometric middle."""
    total = float(hist.sum())
    if total <= 0:
        return math.nan
    cumulative = np.cumsum(hist)
    index = int(np.searchsorted(cumulative, q * total, side="left"))
    index = min(index, len(hist) - 1)
    return float(HIST_MIN_SECONDS * ratio ** (index + 0.5))


def percentiles(hists: npt.NDArray[Any], q: float, ratio: float = FINE_RATIO) -> Floats:
    """`percentile` of each row of `hists` at once (NaN for an empty row), the same numbers."""
    totals = hists.sum(axis=1)
    cumulative = np.cumsum(hists, axis=1)
    reached = cumulative >= (q * totals)[:, None]
    last = hists.shape[1] - 1
    index = np.where(reached.any(axis=1), reached.argmax(axis=1), last)
    values = HIST_MIN_SECONDS * ratio ** (np.minimum(index, last) + 0.5)
    return np.where(totals > 0, values, math.nan)


def highest(hist: npt.NDArray[Any], ratio: float = FINE_RATIO) -> float:
    """The upper edge of the highest occupied bin: the maximum, to the bin's width."""
    occupied = np.nonzero(hist)[0]
    if len(occupied) == 0:
        return math.nan
    return float(HIST_MIN_SECONDS * ratio ** (int(occupied[-1]) + 1))


@dataclass(frozen=True)
class BatcherParams:
    """The batching knobs one replica runs with (the spec's `batching`)."""

    max_batch_size: int
    preferred_batch_sizes: tuple[int, ...]
    max_queue_delay_s: float
    queue_limit: int
    request_timeout_s: float | None
    instances: int

    @property
    def due_count(self) -> int:
        """Queue length at which a batch is due at once: the smallest preferred size, or full."""
        sizes = [s for s in self.preferred_batch_sizes if s <= self.max_batch_size]
        return min([*sizes, self.max_batch_size])


@dataclass(frozen=True)
class ComputeModel:
    """Batch compute time per batch size: log-normal matching the profile's p50 and p99."""

    sizes: tuple[int, ...]
    p50_s: tuple[float, ...]
    p99_s: tuple[float, ...]
    overhead_per_batch_s: float = 0.0
    overhead_per_request_s: float = 0.0
    """The server path's cost (profile format 3), added to every batch."""
    overhead_points_s: tuple[tuple[int, float], ...] = ()
    """The server path's cost as measured at each batch size, ascending. Between the smallest
    and largest measured size the overhead follows these points, so a simulated batch of a
    measured size takes the measured cycle (the path's cost is not a straight line in the batch
    size); beyond the largest, the line's per-request slope continues from its point."""
    answer_spacing_points_s: tuple[tuple[int, float], ...] = ()
    """The time between consecutive answers of one batch, as measured at each batch size
    (profile format 4), ascending. The server answers a batch's requests one after another on
    its event loop, so its i-th request (from 0) is answered `(i + 1) * spacing` after the batch
    ends (its own encode and write included); the replica is free for its next batch before
    then (the overhead above is the occupancy, the spacing only latency)."""

    def tables(self, max_batch: int) -> tuple[Floats, Floats]:
        """Median and sigma for every batch size 0..max_batch (index = size)."""
        sizes = np.array(self.sizes, dtype=np.float64)
        wanted = np.arange(max_batch + 1, dtype=np.float64)
        median = np.interp(wanted, sizes, np.array(self.p50_s))
        p99 = np.interp(wanted, sizes, np.array(self.p99_s))
        # Beyond the largest measured size: per-item time of the largest size.
        beyond = wanted > sizes[-1]
        median[beyond] = self.p50_s[-1] * wanted[beyond] / sizes[-1]
        p99[beyond] = self.p99_s[-1] * wanted[beyond] / sizes[-1]
        overhead = self._overhead(wanted)
        median[1:] += overhead[1:]
        p99[1:] += overhead[1:]
        sigma = np.log(np.maximum(p99, median) / median) / Z99
        return median, sigma

    def _overhead(self, wanted: Floats) -> Floats:
        """The server path's cost for each batch size in `wanted`, in seconds."""
        overhead = self.overhead_per_batch_s + self.overhead_per_request_s * wanted
        if not self.overhead_points_s:
            return overhead
        at = np.array([size for size, _ in self.overhead_points_s], dtype=np.float64)
        measured = np.maximum(np.array([cost for _, cost in self.overhead_points_s]), 0.0)
        inside = (wanted >= at[0]) & (wanted <= at[-1])
        overhead[inside] = np.interp(wanted[inside], at, measured)
        beyond = wanted > at[-1]
        overhead[beyond] = measured[-1] + self.overhead_per_request_s * (wanted[beyond] - at[-1])
        return overhead

    def spacing(self, max_batch: int) -> Floats:
        """The answer spacing for every batch size 0..max_batch (index = size), in seconds.

        Between measured sizes it follows the measured points; below the smallest it is the
        smallest's (a batch of one has no spacing to measure, but its answer still pays one
        encode and write) and beyond the largest the largest's (it fell from 0.2 ms at 4 rows
        to 0.08-0.11 at 32 on this machine, and flattens). Zero without measured points."""
        wanted = np.arange(max_batch + 1, dtype=np.float64)
        if not self.answer_spacing_points_s:
            return np.zeros(max_batch + 1, dtype=np.float64)
        at = np.array([size for size, _ in self.answer_spacing_points_s], dtype=np.float64)
        measured = np.maximum(np.array([gap for _, gap in self.answer_spacing_points_s]), 0.0)
        spacing: Floats = np.interp(wanted, at, measured)
        return spacing

    def throughput(self, batch: int) -> float:
        """Items per second of one instance at batch size `batch` (mean of the log-normal)."""
        median, sigma = self.tables(batch)
        return batch / float(median[batch] * math.exp(sigma[batch] ** 2 / 2))


# One loop the numba compiler turns into machine code: splitting it into helpers would cost a
# call per request in the hot loop (and numba inlines only what it is told to).
def _kernel(  # noqa: C901
    arrive: Floats,
    origin: Floats,
    z: Floats,
    t_end: float,
    draining: bool,
    q_arrive: Floats,
    q_origin: Floats,
    q_meta: Ints,
    free: Floats,
    running: Ints,
    max_batch: int,
    due_count: int,
    preferred: Ints,
    delay: float,
    queue_limit: int,
    timeout: float,
    median: Floats,
    sigma: Floats,
    spacing: Floats,
    budget: float,
    fine: Ints,
    coarse: Ints,
    bucket_s: float,
    counters: Ints,
) -> int:
    """Advance one replica to `t_end`, admitting `arrive` (sorted); returns the z draws used.

    Queue state is a ring buffer (`q_meta` = head, size); `free[k]` is when instance k finishes,
    `running[k]` its batch size. `origin` is when each request reached the service (earlier than
    `arrive` for requests held while the pool woke up); latency counts from it.
    """
    capacity = q_arrive.shape[0]
    head = q_meta[0]
    size = q_meta[1]
    n = arrive.shape[0]
    i = 0
    used = 0
    log_fine = 1.0 / math.log(1.01)
    log_coarse = 1.0 / math.log(1.05)
    n_fine = fine.shape[0]
    n_coarse = coarse.shape[1]
    n_minutes = coarse.shape[0]
    while True:
        next_arrival = arrive[i] if i < n else math.inf
        due = math.inf
        k = 0
        if size > 0:
            for j in range(free.shape[0]):
                if free[j] < free[k]:
                    k = j
            if draining:
                due = max(free[k], q_arrive[(head + size - 1) % capacity])
            elif size >= due_count:
                pivot = q_arrive[(head + due_count - 1) % capacity]
                due = max(free[k], min(pivot, q_arrive[head] + delay))
            else:
                due = max(free[k], q_arrive[head] + delay)
        if due < math.inf and due <= next_arrival and due <= t_end:
            # Requests past their timeout never reach the model.
            if timeout > 0.0:
                while size > 0 and q_arrive[head] + timeout <= due:
                    counters[2] += 1
                    head = (head + 1) % capacity
                    size -= 1
                if size == 0:
                    continue
            if size >= max_batch:
                take = max_batch
            else:
                take = size
                if not draining:
                    for p in range(preferred.shape[0] - 1, -1, -1):
                        if preferred[p] <= size:
                            take = preferred[p]
                            break
            compute = median[take] * math.exp(sigma[take] * z[used])
            used += 1
            finish = due + compute
            free[k] = finish
            running[k] = take
            counters[4] += 1
            gap = spacing[take]
            for position in range(take):
                # The batch's answers leave one after another (`ComputeModel.spacing`).
                latency = finish + gap * (position + 1) - q_origin[head]
                counters[0] += 1
                if latency <= budget:
                    counters[3] += 1
                scaled = latency / 1e-5
                b = int(math.log(scaled) * log_fine) if scaled > 1.0 else 0
                fine[min(b, n_fine - 1)] += 1
                c = int(math.log(scaled) * log_coarse) if scaled > 1.0 else 0
                minute = int(q_origin[head] // bucket_s)
                if 0 <= minute < n_minutes:
                    coarse[minute, min(c, n_coarse - 1)] += 1
                head = (head + 1) % capacity
                size -= 1
            continue
        if i < n and next_arrival <= t_end:
            if timeout > 0.0:
                while size > 0 and q_arrive[head] + timeout <= next_arrival:
                    counters[2] += 1
                    head = (head + 1) % capacity
                    size -= 1
            if size >= queue_limit:
                counters[1] += 1
            else:
                tail = (head + size) % capacity
                q_arrive[tail] = next_arrival
                q_origin[tail] = origin[i]
                size += 1
            i += 1
            continue
        break
    q_meta[0] = head
    q_meta[1] = size
    return used


def _compile() -> Callable[..., int]:
    try:
        import numba
    except ImportError:  # the plain-Python kernel: same results, slower
        return _kernel
    compiled: Callable[..., int] = numba.njit(cache=True, nogil=True)(_kernel)
    return compiled


kernel: Callable[..., int] = _compile()
"""The batcher kernel, compiled when numba is available."""


class Replica:
    """One realtime replica's batcher state between calls of the kernel."""

    def __init__(self, params: BatcherParams, ready_at: float) -> None:
        self.params = params
        self.q_arrive = np.zeros(params.queue_limit + 1, dtype=np.float64)
        self.q_origin = np.zeros(params.queue_limit + 1, dtype=np.float64)
        self.q_meta = np.zeros(2, dtype=np.int64)
        self.free = np.full(params.instances, ready_at, dtype=np.float64)
        self.running = np.zeros(params.instances, dtype=np.int64)

    @property
    def queue_depth(self) -> int:
        """Requests waiting for a batch (the runtime's queue-depth gauge)."""
        return int(self.q_meta[1])

    def in_flight(self, now: float) -> int:
        """Requests admitted and not answered: waiting plus computing."""
        computing = int(self.running[self.free > now].sum())
        return self.queue_depth + computing


@dataclass
class Recorder:
    """Where the kernel writes: totals histogram, per-minute histogram, counters.

    The fast mode's totals are weights (floats): mixtures of the queueing table's histograms.
    """

    fine: npt.NDArray[Any]
    coarse: Ints
    counters: Ints

    @classmethod
    def empty(cls, minutes: int) -> Recorder:
        """A recorder for a run of `minutes` minutes."""
        return cls(
            fine=np.zeros(FINE_BINS, dtype=np.int64),
            coarse=np.zeros((max(1, minutes), COARSE_BINS), dtype=np.int64),
            counters=np.zeros(N_COUNTERS, dtype=np.int64),
        )


@dataclass(frozen=True)
class KernelTables:
    """Per-size compute parameters and the batching constants, ready for the kernel."""

    params: BatcherParams
    median: Floats
    sigma: Floats
    spacing: Floats
    preferred: Ints
    budget_s: float
    due_count: int

    @classmethod
    def build(cls, params: BatcherParams, compute: ComputeModel, budget_s: float) -> KernelTables:
        """Tables for `params` and `compute`."""
        median, sigma = compute.tables(params.max_batch_size)
        preferred = np.array(
            sorted(s for s in params.preferred_batch_sizes if s <= params.max_batch_size),
            dtype=np.int64,
        )
        spacing = compute.spacing(params.max_batch_size)
        return cls(params, median, sigma, spacing, preferred, budget_s, params.due_count)


def advance(
    replica: Replica,
    tables: KernelTables,
    arrive: Floats,
    origin: Floats,
    t_end: float,
    rng: np.random.Generator,
    recorder: Recorder,
    *,
    draining: bool = False,
    bucket_s: float = 60.0,
) -> None:
    """Run `replica` to `t_end`, admitting `arrive` (sorted, with their `origin` times).

    The per-bucket histogram row of a request is its origin time // `bucket_s`.
    """
    params = tables.params
    z = rng.standard_normal(len(arrive) + replica.queue_depth + 1)
    kernel(
        arrive,
        origin,
        z,
        t_end,
        draining,
        replica.q_arrive,
        replica.q_origin,
        replica.q_meta,
        replica.free,
        replica.running,
        params.max_batch_size,
        tables.due_count,
        tables.preferred,
        params.max_queue_delay_s,
        params.queue_limit,
        params.request_timeout_s or -1.0,
        tables.median,
        tables.sigma,
        tables.spacing,
        tables.budget_s,
        recorder.fine,
        recorder.coarse,
        bucket_s,
        recorder.counters,
    )
