"""`inferstack fit-traffic`: right-size from a request trace instead of a guess.

Reads a request trace through the one trace reader `simulate` and `tune` use too
(`inferstack.components.planning.traces`: the column, time format, delimiter and order detected,
a sampled log scaled by `--sample-rate`) and proposes the spec's `traffic` block:

- the baseline is the trough, a low percentile of the per-minute rates: `min_replicas` is sized
  from it, so it must be what the service carries at its quietest, not its typical level (the
  median is printed beside it, with the daily shape; autoscaling carries everything above);
- the peak is the busiest 60-second rolling window (the autoscaler acts on signals of about a
  minute; shorter bursts are absorbed by the batcher's bounded queue);
- spikes are bursts well above the median that recur at the same time of day on at least two
  days of the trace (on every day, or on the same days of the week), proposed as cron entries in
  `--timezone` so that pre-warm starts from the user's own history. A burst seen once is reported
  and not proposed: one occurrence says nothing about a calendar.
"""

from __future__ import annotations

import argparse
import bisect
import math
import statistics
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from pathlib import Path

import yaml

from inferstack.components.planning.schedule import compress_days_of_week
from inferstack.components.planning.traces import (
    DEFAULT_TIMEZONE,
    Trace,
    TraceError,
    add_trace_arguments,
    from_arguments,
    read_trace,
    zone,
)

PEAK_WINDOW_SECONDS = 60
BASELINE_PERCENTILE = 10
"""The baseline is this percentile of the per-minute rates: the trough, not the typical level."""
SPIKE_BIN_MINUTES = 5
"""Spikes are found on clock-aligned bins of this many minutes (cron starts land on them)."""
SPIKE_FACTOR = 3.0
"""A bin is part of a spike when its rate is at least this many times the median bin rate..."""
SPIKE_SIGMA = 5.0
"""...and above the median by more than this many standard deviations of Poisson noise."""
SAME_TIME_MINUTES = 15
"""Bursts on different days whose starts are this close in local time are one recurring spike."""
MIN_OCCURRENCES = 2

_CRON_DAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")


@dataclass(frozen=True)
class ProposedSpike:
    """A recurring burst, as a spec `traffic.spikes[]` entry, with its evidence."""

    cron: str
    timezone: str
    duration_minutes: int
    rps: float
    reason: str

    def entry(self) -> dict[str, object]:
        """The spec's spike entry."""
        return {
            "cron": self.cron,
            "timezone": self.timezone,
            "duration_minutes": self.duration_minutes,
            "rps": self.rps,
        }


@dataclass(frozen=True)
class TrafficFit:
    """The fitted rates and the evidence behind them."""

    requests: int
    span_seconds: float
    mean_rps: float
    baseline_rps: float
    median_rps: float
    peak_rps: float
    busiest_second_rps: float
    peak_window_start: datetime
    timezone: str = DEFAULT_TIMEZONE
    hourly_rps: dict[int, float] = field(default_factory=dict)
    spikes: list[ProposedSpike] = field(default_factory=list)
    spike_notes: list[str] = field(default_factory=list)
    weight: float = 1.0
    """Requests each row stands for (a sampled log's `1 / --sample-rate`); rates include it."""

    @property
    def baseline_value(self) -> float:
        """The baseline as the YAML shows it: rounded up, so sizing errs toward capacity."""
        return _round_up(self.baseline_rps)

    @property
    def peak_value(self) -> float:
        """The peak as the YAML shows it: rounded up, so sizing errs toward capacity."""
        return _round_up(self.peak_rps)

    def traffic_block(self) -> dict[str, object]:
        """The spec's `traffic` section."""
        return {
            "baseline_rps": self.baseline_value,
            "peak_rps": self.peak_value,
            "spikes": [spike.entry() for spike in self.spikes],
        }

    def reasons(self) -> list[str]:
        """One line per fitted number (each number exactly as the YAML shows it)."""
        counted = f"{self.requests} requests"
        if self.weight != 1.0:
            counted = (
                f"{self.requests} sampled rows, each {self.weight:.4g} requests (about "
                f"{self.requests * self.weight:,.0f})"
            )
        lines = [
            f"{counted} over {_span_text(self.span_seconds)} (mean {self.mean_rps:.2f} rps)",
            f"baseline_rps {self.baseline_value!r}: the trough, {_ordinal(BASELINE_PERCENTILE)} "
            f"percentile of the per-minute rates (median {self.median_rps:.2f} rps); "
            "min_replicas is sized from it and autoscaling carries the rest",
            f"peak_rps {self.peak_value!r}: busiest {PEAK_WINDOW_SECONDS} s window, starting "
            f"{self.peak_window_start.isoformat()}",
            f"busiest single second: {self.busiest_second_rps:g} requests (absorbed by the queue, "
            "not by scaling)",
        ]
        if self.hourly_rps:
            lines.append(f"daily shape, mean rps by hour of day ({self.timezone}):")
            hours = sorted(self.hourly_rps)
            for row in range(0, len(hours), 8):
                lines.append(
                    "  "
                    + "  ".join(
                        f"{hour:02d}h {self.hourly_rps[hour]:.2f}" for hour in hours[row:][:8]
                    )
                )
        lines.extend(f"spikes[{i}]: {spike.reason}" for i, spike in enumerate(self.spikes))
        lines.extend(self.spike_notes)
        return lines


def _round_up(value: float) -> float:
    # The epsilon keeps an exact 2.0 from becoming 2.01 through float noise (e.g. 120/60).
    return math.ceil(value * 100 - 1e-9) / 100


def _ordinal(number: int) -> str:
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(number % 10 if number % 100 not in (11, 12, 13) else 0)
    return f"{number}{suffix or 'th'}"


def _span_text(seconds: float) -> str:
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _percentile(values: Sequence[float], percent: float) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * percent / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _local(stamp: datetime, zone: tzinfo) -> datetime:
    """Wall-clock time in `zone`; a naive stamp is taken as already local."""
    return stamp.astimezone(zone).replace(tzinfo=None) if stamp.tzinfo else stamp


@dataclass(frozen=True)
class _Bins:
    """Per-minute counts on clock-aligned minutes, and which minutes the trace fully covers."""

    origin: datetime
    counts: list[int]
    first_whole: int
    last_whole: int

    def whole(self) -> range:
        return range(self.first_whole, self.last_whole + 1)

    def start(self, index: int) -> datetime:
        return self.origin + timedelta(minutes=index)


def _minute_bins(stamps: Sequence[datetime]) -> _Bins:
    # Aligned to SPIKE_BIN_MINUTES on the stamps' own clock, so that bins start on round times.
    first, last = stamps[0], stamps[-1]
    origin = first.replace(second=0, microsecond=0)
    origin -= timedelta(minutes=origin.minute % SPIKE_BIN_MINUTES)
    counts = [0] * (int((last - origin).total_seconds() // 60) + 1)
    for stamp in stamps:
        counts[int((stamp - origin).total_seconds() // 60)] += 1
    first_whole = math.ceil((first - origin).total_seconds() / 60)
    last_whole = len(counts) - 2  # the last minute is partial: it ends at the last request
    if last_whole < first_whole:  # a trace shorter than two minutes: use what there is
        first_whole, last_whole = 0, len(counts) - 1
    return _Bins(origin, counts, first_whole, last_whole)


def _hourly_shape(bins: _Bins, zone: tzinfo, weight: float) -> dict[int, float]:
    counts: dict[int, int] = defaultdict(int)
    minutes: dict[int, int] = defaultdict(int)
    for index in bins.whole():
        hour = _local(bins.start(index), zone).hour
        counts[hour] += bins.counts[index]
        minutes[hour] += 1
    return {hour: weight * counts[hour] / (minutes[hour] * 60) for hour in sorted(minutes)}


@dataclass(frozen=True)
class _Burst:
    start: datetime  # local wall clock
    minutes: int
    peak_minute_rps: float
    mean_rps: float


def _bursts(bins: _Bins, zone: tzinfo, weight: float) -> tuple[list[_Burst], float]:
    """Runs of spike bins, and the median bin rate they were judged against.

    Judged on the rows counted (Poisson noise is the sample's), reported as request rates.
    """
    width = SPIKE_BIN_MINUTES
    whole = set(bins.whole())
    first_bin = math.ceil(bins.first_whole / width)
    bin_ids = [b for b in range(first_bin, len(bins.counts) // width + 1) if b * width in whole]
    bin_ids = [b for b in bin_ids if all(b * width + i in whole for i in range(width))]
    if len(bin_ids) < 2:
        return [], 0.0
    totals = {b: sum(bins.counts[b * width : (b + 1) * width]) for b in bin_ids}
    median = statistics.median(totals.values())
    threshold = max(SPIKE_FACTOR * median, median + SPIKE_SIGMA * math.sqrt(max(median, 1.0)))
    hot = [b for b in bin_ids if totals[b] >= threshold]
    runs: list[list[int]] = []
    for b in hot:
        if runs and b == runs[-1][-1] + 1:
            runs[-1].append(b)
        else:
            runs.append([b])
    bursts = []
    for run in runs:
        minutes = range(run[0] * width, (run[-1] + 1) * width)
        bursts.append(
            _Burst(
                start=_local(bins.start(minutes[0]), zone),
                minutes=len(minutes),
                peak_minute_rps=weight * max(bins.counts[m] for m in minutes) / 60,
                mean_rps=weight * sum(bins.counts[m] for m in minutes) / (60 * len(minutes)),
            )
        )
    return bursts, weight * median / (width * 60)


def _cron_weekday(day: date) -> int:
    return (day.weekday() + 1) % 7


def _covered_days(bins: _Bins, zone: tzinfo, minute_of_day: int) -> set[date]:
    """Local dates on which the trace covers the time of day `minute_of_day`."""
    days = set()
    for index in bins.whole():
        local = _local(bins.start(index), zone)
        if local.hour * 60 + local.minute == minute_of_day:
            days.add(local.date())
    return days


def _recurring_spikes(
    bursts: list[_Burst],
    bins: _Bins,
    zone: tzinfo,
    timezone: str,
    baseline: float,
    median: float,
    peak_cap: float,
) -> tuple[list[ProposedSpike], list[str]]:
    ordered = sorted(bursts, key=lambda b: (b.start.hour * 60 + b.start.minute, b.start))
    groups: list[list[_Burst]] = []
    for burst in ordered:
        minute = burst.start.hour * 60 + burst.start.minute
        if groups:
            head = groups[-1][0].start
            if minute - (head.hour * 60 + head.minute) <= SAME_TIME_MINUTES:
                groups[-1].append(burst)
                continue
        groups.append([burst])
    spikes: list[ProposedSpike] = []
    notes: list[str] = []
    for group in groups:
        dates = sorted({burst.start.date() for burst in group})
        start = min(burst.start.time() for burst in group)
        rps = min(_round_up(max(burst.peak_minute_rps for burst in group)), peak_cap)
        level = max(burst.mean_rps for burst in group)
        if len(dates) < MIN_OCCURRENCES:
            burst = group[0]
            notes.append(
                f"not proposed: a burst on {burst.start:%Y-%m-%d} at {burst.start:%H:%M} "
                f"{timezone} ({burst.peak_minute_rps:.2f} rps for {burst.minutes} min) did not "
                "recur on another day; declare it by hand if it is on a calendar"
            )
            continue
        minute_of_day = start.hour * 60 + start.minute
        covered = _covered_days(bins, zone, minute_of_day) | set(dates)
        seen_days = {_cron_weekday(day) for day in dates}
        covered_days = {_cron_weekday(day) for day in covered}
        field = "*" if seen_days >= covered_days else compress_days_of_week(seen_days)
        duration = min(1440, max(burst.minutes for burst in group))
        when = (
            "every day"
            if field == "*"
            else "on " + ",".join(_CRON_DAYS[d] for d in sorted(seen_days))
        )
        matching = [day for day in covered if _cron_weekday(day) in seen_days]
        times = baseline and level / baseline
        over = f"{times:.0f}x the baseline {baseline:.2f} rps" if times else "over a zero baseline"
        spikes.append(
            ProposedSpike(
                cron=f"{start.minute} {start.hour} * * {field}",
                timezone=timezone,
                duration_minutes=duration,
                rps=rps,
                reason=(
                    f"recurs at {start:%H:%M} {timezone} {when}: seen on {len(dates)} of the "
                    f"{len(matching)} matching days the trace covers "
                    f"({', '.join(f'{d:%a %Y-%m-%d}' for d in dates)}); up to {duration} min at "
                    f"{level:.2f} rps ({over}, median {median:.2f} rps); rps {rps!r} is its "
                    "busiest minute"
                ),
            )
        )
    return spikes, notes


def fit_traffic(
    stamps: Sequence[datetime], *, timezone: str = DEFAULT_TIMEZONE, weight: float = 1.0
) -> TrafficFit:
    """Fit baseline, peak and recurring spikes to sorted arrival times.

    `weight` is the requests each arrival stands for (a sampled log's `1 / sample rate`).
    """
    if len(stamps) < 2:
        raise TraceError("--trace: needs at least two requests to measure a rate")
    local = zone(timezone)
    start = stamps[0]
    offsets = [(stamp - start).total_seconds() for stamp in stamps]
    span = max(offsets[-1], 1.0)
    per_second = [0] * (math.ceil(span) + 1)
    for offset in offsets:
        per_second[int(offset)] += 1
    bins = _minute_bins(stamps)
    rates = [weight * bins.counts[index] / 60 for index in bins.whole()]
    baseline = _percentile(rates, BASELINE_PERCENTILE)
    median = statistics.median(rates)
    window = min(PEAK_WINDOW_SECONDS, span)
    busiest, busiest_at = 0, 0.0
    for index, offset in enumerate(offsets):
        end = bisect.bisect_left(offsets, offset + window, lo=index)
        if end - index > busiest:
            busiest, busiest_at = end - index, offset
    peak_start = stamps[bisect.bisect_left(offsets, busiest_at)]
    peak = weight * busiest / window
    bursts, median_bin_rps = _bursts(bins, local, weight)
    spikes, notes = _recurring_spikes(
        bursts, bins, local, timezone, baseline, median_bin_rps, _round_up(peak)
    )
    if not spikes and span < 86400:
        notes.append(
            f"spikes: none proposed; recurring spikes need a trace longer than a day "
            f"(this one covers {_span_text(span)})"
        )
    elif not spikes:
        notes.append(
            f"spikes: none proposed; no burst of {SPIKE_FACTOR:g}x the median rate recurred at "
            "the same time of day on two or more days"
        )
    return TrafficFit(
        requests=len(stamps),
        span_seconds=span,
        mean_rps=weight * len(stamps) / span,
        baseline_rps=baseline,
        median_rps=median,
        peak_rps=peak,
        busiest_second_rps=weight * max(per_second),
        peak_window_start=peak_start,
        timezone=timezone,
        hourly_rps=_hourly_shape(bins, local, weight),
        spikes=spikes,
        spike_notes=notes,
        weight=weight,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `inferstack fit-traffic`: the trace flags `simulate` and `tune` share."""
    add_trace_arguments(
        parser,
        required=True,
        timezone_help="IANA timezone of the proposed spikes' crons and of times written "
        "without an offset",
    )


def fit_trace(trace: Trace, *, timezone: str = DEFAULT_TIMEZONE) -> TrafficFit:
    """`fit_traffic` on a trace read by the shared reader, its sample rate applied."""
    return fit_traffic(trace.stamps, timezone=timezone, weight=trace.weight)


def run(args: argparse.Namespace) -> int:
    """Print the fitted `traffic` block as YAML, with its reasons as comments."""
    try:
        trace = from_arguments(args)
        fit = fit_trace(trace, timezone=args.timezone)
    except TraceError as error:
        sys.stderr.write(f"inferstack fit-traffic: {error}\n")
        return 2
    lines = [f"# read {'; '.join(trace.notes())}"]
    lines += [f"# {reason}" for reason in fit.reasons()]
    lines.append(yaml.safe_dump({"traffic": fit.traffic_block()}, sort_keys=False).rstrip())
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def read_timestamps(
    path: Path,
    column: str | None = None,
    *,
    timestamp_format: str = "auto",
    timezone: str = DEFAULT_TIMEZONE,
) -> list[datetime]:
    """Arrival times from the trace at `path`, sorted (see `traces.read_trace`)."""
    return read_trace(path, column, timestamp_format=timestamp_format, timezone=timezone).stamps


__all__ = [
    "ProposedSpike",
    "TraceError",
    "TrafficFit",
    "add_arguments",
    "fit_trace",
    "fit_traffic",
    "read_timestamps",
    "read_trace",
    "run",
]
