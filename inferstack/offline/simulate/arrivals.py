"""Traffic: a per-second arrival rate for the whole run, and Poisson arrivals at that rate.

Two sources:
- declared: the spec's baseline, with each spike at its rate from its cron start (in its
  timezone, so it follows local time across DST) for its duration; `diurnal` adds a daily curve
  between baseline and peak (lowest at 04:00 UTC, highest at 16:00 UTC), `bursts` adds
  undeclared bursts (a Poisson number per day, 30 s to 10 min each, between halfway to the peak
  and the peak) so that the unplanned case is exercised too;
- a trace, read by the one trace reader `fit-traffic` uses too
  (`inferstack.components.planning.traces`: column, time format, delimiter and order detected,
  a sampled log weighted by its sample rate). Its per-second counts, averaged over `window_s`
  (a sparse trace scaled up a thousand times would otherwise turn every lone request into a
  burst), times `rate_scale`, give the rate; `loop` repeats a short trace to fill the run.

Arrivals within each second are Poisson at that second's rate: the count is Poisson, the times
uniform and sorted.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
from croniter import croniter

from inferstack.components.planning import traces
from inferstack.offline.simulate.errors import SimulateError

Floats = npt.NDArray[np.float64]
BURSTS_PER_DAY = 6.0
BURST_SECONDS = (30.0, 600.0)
TRACE_WINDOW_SECONDS = 10


@dataclass(frozen=True)
class Spike:
    """A declared spike: start (cron in a timezone), duration, rate."""

    cron: str
    timezone: str
    duration_s: float
    rps: float


@dataclass(frozen=True)
class DeclaredTraffic:
    """The spec's traffic block."""

    baseline_rps: float
    peak_rps: float
    spikes: tuple[Spike, ...] = ()


def spike_windows(spike: Spike, start: datetime, seconds: float) -> list[tuple[float, float]]:
    """The spike's occurrences within the run, as (start, end) seconds from `start`."""
    zone = ZoneInfo(spike.timezone)
    end = start + timedelta(seconds=seconds)
    runs = croniter(spike.cron, (start - timedelta(seconds=spike.duration_s)).astimezone(zone))
    windows: list[tuple[float, float]] = []
    while True:
        at: datetime = runs.get_next(datetime)
        if at.astimezone(UTC) >= end:
            return windows
        begin = (at.astimezone(UTC) - start).total_seconds()
        windows.append((begin, begin + spike.duration_s))


def declared_rates(
    traffic: DeclaredTraffic,
    start: datetime,
    seconds: int,
    *,
    diurnal: bool = False,
    bursts: bool = False,
    rng: np.random.Generator | None = None,
) -> Floats:
    """Per-second rates of the declared traffic over `seconds` from `start`."""
    rates = np.full(seconds, traffic.baseline_rps, dtype=np.float64)
    swing = traffic.peak_rps - traffic.baseline_rps
    if diurnal:
        hours = (start.astimezone(UTC).hour * 3600 + np.arange(seconds)) / 3600.0
        shape = (1 - np.cos(2 * math.pi * (hours - 4.0) / 24.0)) / 2
        rates = traffic.baseline_rps + swing * shape
    for spike in traffic.spikes:
        for begin, end in spike_windows(spike, start, seconds):
            lo, hi = max(0, math.floor(begin)), min(seconds, math.ceil(end))
            if lo < hi:
                rates[lo:hi] = np.maximum(rates[lo:hi], spike.rps)
    if bursts:
        rng = rng or np.random.default_rng(0)
        count = int(rng.poisson(BURSTS_PER_DAY * seconds / 86400))
        for _ in range(count):
            begin = int(rng.integers(0, max(1, seconds)))
            length = int(rng.uniform(*BURST_SECONDS))
            height = traffic.baseline_rps + swing * rng.uniform(0.5, 1.0)
            rates[begin : begin + length] = np.maximum(rates[begin : begin + length], height)
    return rates


@dataclass(frozen=True)
class Trace:
    """Arrival offsets (seconds from the first request) of a request trace."""

    path: str
    start: datetime
    offsets: Floats
    weight: float = 1.0
    """Requests each row stands for (a sampled log's `1 / --sample-rate`)."""
    notes: tuple[str, ...] = ()
    """How the reader read it (column, format, delimiter, rows sorted, sampling)."""

    @property
    def span_s(self) -> float:
        """Seconds from the first to the last request (at least one)."""
        return max(1.0, float(self.offsets[-1]))

    def median_minute_rps(self) -> float:
        """The median per-minute rate over whole minutes (fit-traffic's baseline)."""
        minutes = max(1, int(self.span_s // 60))
        counts = np.bincount(
            np.minimum((self.offsets // 60).astype(np.int64), minutes - 1), minlength=minutes
        )
        return float(statistics.median(counts * self.weight / 60.0))


def from_trace(trace: traces.Trace) -> Trace:
    """The shared reader's trace as offsets from its first request (at least two requests)."""
    if len(trace.stamps) < 2:
        raise SimulateError(
            "--trace", f"{trace.path} holds {len(trace.stamps)} request(s); need at least 2"
        )
    offsets = np.array(trace.offsets(), dtype=np.float64)
    return Trace(str(trace.path), trace.stamps[0], offsets, trace.weight, tuple(trace.notes()))


def read_trace(
    path: Path,
    column: str | None = None,
    *,
    timestamp_format: str = "auto",
    timezone: str = "UTC",
    sample_rate: float = 1.0,
) -> Trace:
    """Read a trace with the shared reader; its refusals name the row and column."""
    try:
        shared = traces.read_trace(
            path,
            column,
            timestamp_format=timestamp_format,
            timezone=timezone,
            sample_rate=sample_rate,
        )
    except traces.TraceError as error:
        raise SimulateError("--trace", str(error)) from None
    return from_trace(shared)


def trace_rates(
    trace: Trace,
    seconds: int,
    *,
    rate_scale: float = 1.0,
    loop: bool = False,
    window_s: int = TRACE_WINDOW_SECONDS,
) -> Floats:
    """Per-second rates from a trace: windowed counts times `rate_scale`, repeated if `loop`."""
    if rate_scale <= 0 or not math.isfinite(rate_scale):
        raise SimulateError(
            "--rate-scale", f"{rate_scale:g} is not a positive number; use e.g. 2 or 0.5"
        )
    span = math.ceil(trace.span_s)
    counts = np.bincount(trace.offsets.astype(np.int64), minlength=span).astype(np.float64)[:span]
    if window_s > 1:
        kernel = np.ones(window_s) / window_s
        counts = np.convolve(counts, kernel, mode="same")
    counts *= rate_scale * trace.weight
    if seconds <= span:
        return counts[:seconds]
    if not loop:
        return counts
    repeats = math.ceil(seconds / span)
    return np.tile(counts, repeats)[:seconds]


def trace_times(
    trace: Trace, seconds: int, *, rate_scale: float = 1.0, loop: bool = False
) -> Floats:
    """The trace's own arrival offsets over `seconds` (repeated if `loop`).

    A scale below 1 keeps each request with that probability (deterministically: every
    1/scale-th); above 1 the trace would need requests it does not have, so it is refused.
    """
    if not 0 < rate_scale <= 1:
        raise SimulateError(
            "--rate-scale",
            f"{rate_scale:g} with --exact-timestamps: a trace's own timestamps can only be "
            "thinned (a scale in (0, 1]); drop --exact-timestamps to scale it up as Poisson "
            "arrivals",
        )
    if trace.weight != 1.0:
        raise SimulateError(
            "--exact-timestamps",
            f"{trace.path} is a sample (--sample-rate {1 / trace.weight:g}): its own timestamps "
            "hold only the sampled requests; drop --exact-timestamps to replay it at its full "
            "rate as Poisson arrivals",
        )
    span = math.ceil(trace.span_s) + 1
    offsets = trace.offsets
    if loop and seconds > span:
        repeats = math.ceil(seconds / span)
        offsets = np.concatenate([offsets + k * span for k in range(repeats)])
    offsets = offsets[offsets < seconds]
    if rate_scale < 1:
        keep = np.floor(np.arange(1, len(offsets) + 1) * rate_scale)
        offsets = offsets[np.diff(keep, prepend=0) > 0]
    return offsets


def poisson_second(rate: float, second: float, rng: np.random.Generator) -> Floats:
    """Poisson arrivals within one second starting at `second`, sorted."""
    count = int(rng.poisson(rate)) if rate > 0 else 0
    if count == 0:
        return np.empty(0, dtype=np.float64)
    times = rng.random(count)
    times.sort()
    return second + times
