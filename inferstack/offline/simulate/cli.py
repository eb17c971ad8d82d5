"""`inferstack simulate`: what a configuration costs and what it does to p99, on moving traffic.

Reads the stack offline (see `inputs`), builds the traffic (declared, or a trace), runs the
configured scenario and the two alternatives (see `scenarios`) with the same seed, and prints
the three-way table, or one JSON document with `--json`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from inferstack.components.planning import traces
from inferstack.offline.discovery import CaptureError, add_program_arguments, locate_program
from inferstack.offline.simulate.arrivals import (
    Trace,
    declared_rates,
    from_trace,
    trace_rates,
    trace_times,
)
from inferstack.offline.simulate.config import Scenario
from inferstack.offline.simulate.engine import run_exact
from inferstack.offline.simulate.errors import SimulateError
from inferstack.offline.simulate.fast import run_fast
from inferstack.offline.simulate.inputs import StackInputs, load_location
from inferstack.offline.simulate.loop import RunResult
from inferstack.offline.simulate.report import summarize, table
from inferstack.offline.simulate.scenarios import competent_default, lever_steps, naive

DEFAULT_START = "2026-01-05T00:00:00+00:00"
"""A Monday outside any DST change, as the preview's cost estimate uses."""
EXACT_MAX_REQUESTS = 2e7
"""`--mode auto` simulates every request up to this many per scenario, two time scales above."""
PROGRESS_REQUESTS = 5e7
"""Runs with more simulated requests than this report progress on stderr."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `inferstack simulate`: the stack as for `inferstack preview`, then the traffic."""
    add_program_arguments(parser)
    add_traffic_arguments(parser)
    parser.add_argument("--seed", type=int, default=0, help="random seed: same seed, same numbers")
    parser.add_argument(
        "--mode",
        choices=["auto", "exact", "fast"],
        default="auto",
        help="exact: every request through the batcher; fast: two time scales (queueing from "
        f"exact tables); auto: exact up to {EXACT_MAX_REQUESTS:.0e} requests per scenario",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--plot", type=Path, default=None, help="write a PNG of the runs")


def add_traffic_arguments(parser: argparse.ArgumentParser) -> None:
    """The traffic flags `simulate` and `tune` share (read back by `traffic_rates`).

    The trace flags are `fit-traffic`'s (`traces.add_trace_arguments`): one reader for all three.
    """
    traces.add_trace_arguments(parser, required=False)
    parser.add_argument(
        "--rate-scale",
        default="1",
        help="replay the trace at this multiple of its rate, or 'baseline' to scale its median "
        "per-minute rate to the spec's baseline_rps",
    )
    parser.add_argument("--loop", action="store_true", help="repeat a short trace to fill --days")
    parser.add_argument(
        "--exact-timestamps",
        action="store_true",
        help="replay the trace's own arrival times instead of Poisson arrivals at its rate "
        "(exact mode; --rate-scale at most 1)",
    )
    parser.add_argument("--days", type=float, default=1.0, help="simulated days (default 1)")
    parser.add_argument("--start", default=DEFAULT_START, help="simulated start, ISO 8601")
    parser.add_argument("--diurnal", action="store_true", help="a daily curve baseline..peak")
    parser.add_argument("--bursts", action="store_true", help="random undeclared bursts")
    parser.add_argument(
        "--spot-interruptions-per-hour",
        type=float,
        default=None,
        help="spot interruption rate per node-hour (default 0.05)",
    )


def parse_start(text: str) -> datetime:
    """`--start` as an aware datetime (UTC when the text names no offset)."""
    try:
        start = datetime.fromisoformat(text)
    except ValueError:
        raise SimulateError(
            "--start", f"{text!r} is not ISO 8601; use e.g. {DEFAULT_START}"
        ) from None
    return start if start.tzinfo else start.replace(tzinfo=UTC)


def traffic_rates(
    args: argparse.Namespace, inputs: StackInputs, start: datetime
) -> tuple[np.ndarray, str, np.ndarray | None]:
    """Per-second rates, a description, and the trace's own arrival times if asked for."""
    if args.days <= 0 or not math.isfinite(args.days):
        raise SimulateError("--days", f"{args.days:g} is not a positive number of days")
    seconds = max(60, round(args.days * 86400))
    rng = np.random.default_rng(args.seed + 7919)
    if args.trace is None:
        rates = declared_rates(
            inputs.traffic, start, seconds, diurnal=args.diurnal, bursts=args.bursts, rng=rng
        )
        if args.exact_timestamps:
            raise SimulateError("--exact-timestamps", "needs --trace: declared traffic has none")
        extras = [name for name in ("diurnal", "bursts") if getattr(args, name)]
        note = "declared traffic" + (f" with {' and '.join(extras)}" if extras else "")
        return rates, note, None
    trace = read_trace_arguments(args)
    if args.rate_scale == "baseline":
        median = trace.median_minute_rps()
        if median <= 0:
            raise SimulateError("--rate-scale", "the trace's median per-minute rate is 0")
        scale = inputs.traffic.baseline_rps / median
    else:
        try:
            scale = float(args.rate_scale)
        except ValueError:
            raise SimulateError(
                "--rate-scale", f"{args.rate_scale!r} is neither a number nor 'baseline'"
            ) from None
    note = (
        f"trace {args.trace.name} x {scale:.4g}"
        + (" (looped)" if args.loop else "")
        + f" (read {'; '.join(trace.notes)})"
    )
    if args.exact_timestamps:
        if args.mode == "fast":
            raise SimulateError(
                "--exact-timestamps", "replays every request, so it needs --mode exact or auto"
            )
        times = trace_times(trace, seconds, rate_scale=scale, loop=args.loop)
        span = max(1, min(seconds, math.ceil(float(times[-1])) + 1)) if len(times) else 1
        counts = np.bincount(times.astype(np.int64), minlength=span)[:span]
        return counts.astype(np.float64), note + ", its own timestamps", times
    return trace_rates(trace, seconds, rate_scale=scale, loop=args.loop), note, None


def read_trace_arguments(args: argparse.Namespace) -> Trace:
    """The trace the shared trace flags name, read as `fit-traffic` reads it."""
    try:
        return from_trace(traces.from_arguments(args))
    except traces.TraceError as error:
        raise SimulateError("--trace", str(error)) from None


def check_traffic(args: argparse.Namespace, inputs: StackInputs) -> None:
    """Refuse request traffic for a stack that has no realtime pool to carry it."""
    if inputs.spec.realtime is None and (args.trace or args.diurnal or args.bursts):
        raise SimulateError(
            "--trace/--diurnal/--bursts",
            f"stack {inputs.stack} has no realtime pool, so there is no request latency to "
            "simulate; add a `realtime` section to its spec, or drop these flags to simulate "
            "the batch pool alone",
        )


def simulate(
    inputs: StackInputs,
    rates: np.ndarray,
    start: datetime,
    *,
    seed: int,
    spot_rate: float | None = None,
    progress: bool = False,
    mode: str = "auto",
    scenarios: list[Scenario] | None = None,
    arrival_times: np.ndarray | None = None,
) -> list[RunResult]:
    """Run the configured scenario and both alternatives on the same traffic and seed."""
    configured = inputs.configured
    if scenarios is None:
        scenarios = [
            configured,
            naive(configured, inputs.facts),
            competent_default(configured, inputs.facts),
        ]
    runs = []
    for scenario in scenarios:
        if spot_rate is not None:
            scenario = replace(scenario, spot_interruptions_per_node_hour=spot_rate)
        report = None
        if progress:
            report = _progress_printer(scenario.name)
        exact = (
            mode == "exact"
            or arrival_times is not None
            or (mode == "auto" and float(rates.sum()) <= EXACT_MAX_REQUESTS)
        )
        if exact:
            run = run_exact(
                scenario, rates, start, seed=seed, progress=report, arrival_times=arrival_times
            )
        else:
            run = run_fast(scenario, rates, start, seed=seed, progress=report)
        runs.append(run)
    return runs


def _progress_printer(name: str) -> Callable[[float], None]:
    printed = [-1]

    def report(share: float) -> None:
        decile = int(share * 10)
        if decile > printed[0]:
            printed[0] = decile
            sys.stderr.write(f"simulate: {name} {decile * 10}%\n")

    return report


def levers(runs: list[RunResult], names: list[str]) -> list[dict[str, Any]]:
    """Monthly cost after each lever, and what it saved against the step before."""
    rows: list[dict[str, Any]] = []
    for name, run in zip(names, runs, strict=True):
        monthly = summarize(run, timeline=False)["monthly_usd"]
        saves = rows[-1]["monthly_usd"] - monthly if rows else 0.0
        rows.append({"lever": name, "monthly_usd": monthly, "saves_usd": round(saves, 2)})
    return rows


def document(
    inputs: StackInputs, runs: list[RunResult], traffic: str, start: datetime, seed: int
) -> dict[str, Any]:
    """The `--json` document."""
    return {
        "stack": inputs.stack,
        "service": inputs.spec.name,
        "traffic": traffic,
        "start": start.isoformat(),
        "seed": seed,
        "latency_budget_ms": inputs.spec.latency_budget_ms,
        "price_source": inputs.price_source,
        "warnings": list(inputs.warnings),
        "scenarios": [summarize(run) for run in runs],
    }


def run(args: argparse.Namespace) -> int:
    """Simulate and print; exit 2 on bad input."""
    try:
        start = parse_start(args.start)
        inputs = load_location(locate_program(args), start)
        check_traffic(args, inputs)
        rates, traffic, times = traffic_rates(args, inputs, start)
    except (SimulateError, CaptureError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    requests = float(rates.sum())
    exact = args.mode == "exact" or (args.mode == "auto" and requests <= EXACT_MAX_REQUESTS)
    progress = (exact and 3 * requests > PROGRESS_REQUESTS) or rates.size > 7 * 86400
    runs = simulate(
        inputs,
        rates,
        start,
        seed=args.seed,
        spot_rate=args.spot_interruptions_per_hour,
        progress=progress,
        mode=args.mode,
        arrival_times=times,
    )
    doc = document(inputs, runs, traffic, start, args.seed)
    if args.plot is not None:
        steps = lever_steps(inputs.configured, inputs.facts)
        middle = simulate(
            inputs,
            rates,
            start,
            seed=args.seed,
            spot_rate=args.spot_interruptions_per_hour,
            mode=args.mode,
            arrival_times=times,
            scenarios=steps[1:3],
        )
        doc["levers"] = levers([runs[1], *middle, runs[0]], [s.name for s in steps])
        from inferstack.offline.simulate.plot import write_plot

        write_plot(doc, args.plot)
    if args.json:
        json.dump(doc, sys.stdout)
        sys.stdout.write("\n")
        return 0
    days = len(rates) / 86400
    budget = inputs.spec.latency_budget_ms if inputs.spec.realtime else None
    lines = [
        f"Stack {inputs.stack} ({inputs.spec.name}): {days:g} simulated day(s) from "
        f"{start.isoformat()}, {traffic}, seed {args.seed}, {runs[0].mode} mode",
        table([summarize(r, timeline=False) for r in runs], budget),
        f"prices: {inputs.price_source}",
        *(f"warning: {warning}" for warning in inputs.warnings),
    ]
    if args.plot is not None:
        lines.append(f"plot: {args.plot}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
