"""`inferstack fit-traffic`: right-size from a request trace instead of a guess.

Reads a CSV of request arrival timestamps (one row per request) and proposes the spec's
`traffic` block: the baseline is the median of per-minute rates (the level the service sits at),
the peak is the busiest 60-second rolling window (the autoscaler acts on signals of about a
minute; shorter bursts are absorbed by the batcher's bounded queue). Spikes recur on a calendar
that a short trace cannot show, so they stay declared by hand.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import math
import statistics
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

from inferstack.errors import Problem, SpecError

PEAK_WINDOW_SECONDS = 60


@dataclass(frozen=True)
class TrafficFit:
    """The fitted rates and the evidence behind them."""

    requests: int
    span_seconds: float
    mean_rps: float
    baseline_rps: float
    peak_rps: float
    busiest_second_rps: int
    peak_window_start: datetime

    def traffic_block(self) -> dict[str, object]:
        """The spec's `traffic` section, rounded up so that sizing errs toward capacity."""
        return {
            "baseline_rps": math.ceil(self.baseline_rps * 100) / 100,
            "peak_rps": math.ceil(self.peak_rps * 100) / 100,
            "spikes": [],
        }

    def reasons(self) -> list[str]:
        """One line per fitted number."""
        return [
            f"{self.requests} requests over {self.span_seconds / 60:.1f} min "
            f"(mean {self.mean_rps:.2f} rps)",
            f"baseline_rps {self.baseline_rps:.2f}: median of the per-minute rates",
            f"peak_rps {self.peak_rps:.2f}: busiest {PEAK_WINDOW_SECONDS} s window, starting "
            f"{self.peak_window_start.isoformat()}",
            f"busiest single second: {self.busiest_second_rps} requests (absorbed by the queue, "
            "not by scaling)",
        ]


def read_timestamps(path: Path, column: str) -> list[datetime]:
    """Arrival times from the CSV column `column`, sorted."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or column not in reader.fieldnames:
                raise SpecError(
                    [
                        Problem(
                            "--timestamp-column",
                            f"{path} has no column {column!r} (columns: {reader.fieldnames}); "
                            "name the arrival-time column",
                        )
                    ],
                    source=str(path),
                )
            stamps = []
            for line, row in enumerate(reader, start=2):
                try:
                    stamps.append(datetime.fromisoformat(row[column]))
                except ValueError:
                    raise SpecError(
                        [Problem(f"{path}:{line}", f"{row[column]!r} is not an ISO 8601 time")],
                        source=str(path),
                    ) from None
    except OSError as error:
        raise SpecError([Problem("--trace", f"cannot read {path}: {error}")]) from None
    return sorted(stamps)


def fit_traffic(stamps: list[datetime]) -> TrafficFit:
    """Fit baseline and peak rates to sorted arrival times."""
    if len(stamps) < 2:
        raise SpecError([Problem("--trace", "needs at least two requests to measure a rate")])
    start = stamps[0]
    offsets = [(stamp - start).total_seconds() for stamp in stamps]
    span = max(offsets[-1], 1.0)
    minutes = max(1, math.ceil(span / 60))
    per_minute = [0] * minutes
    per_second = [0] * (math.ceil(span) + 1)
    for offset in offsets:
        per_minute[min(int(offset // 60), minutes - 1)] += 1
        per_second[int(offset)] += 1
    # Per-minute rates from whole minutes only: a partial last minute would read low.
    whole = per_minute[:-1] if span % 60 and minutes > 1 else per_minute
    baseline = statistics.median(count / 60 for count in whole)
    window = min(PEAK_WINDOW_SECONDS, span)
    busiest, busiest_at = 0, 0.0
    for index, offset in enumerate(offsets):
        end = bisect.bisect_left(offsets, offset + window, lo=index)
        if end - index > busiest:
            busiest, busiest_at = end - index, offset
    peak_start = stamps[bisect.bisect_left(offsets, busiest_at)]
    return TrafficFit(
        requests=len(stamps),
        span_seconds=span,
        mean_rps=len(stamps) / span,
        baseline_rps=baseline,
        peak_rps=busiest / window,
        busiest_second_rps=max(per_second),
        peak_window_start=peak_start,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `inferstack fit-traffic`."""
    parser.add_argument("--trace", type=Path, required=True, help="CSV, one row per request")
    parser.add_argument(
        "--timestamp-column", default="TIMESTAMP", help="arrival-time column (ISO 8601)"
    )


def run(args: argparse.Namespace) -> int:
    """Print the fitted `traffic` block as YAML, with its reasons as comments."""
    try:
        fit = fit_traffic(read_timestamps(args.trace, args.timestamp_column))
    except SpecError as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    lines = [f"# {reason}" for reason in fit.reasons()]
    lines.append(yaml.safe_dump({"traffic": fit.traffic_block()}, sort_keys=False).rstrip())
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
