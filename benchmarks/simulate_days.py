"""How long `inferstack simulate` takes on a month (the issue's goal: 30 simulated days under 30 s
on the project's 2-core machine), and what makes it fast, measured side by side in one run.

1. The queueing table: built (a cold cache) against read back from the disk cache, which is
   what every later `simulate`, `preview`, `check` and tune run finds.
2. `--days` simulated days (default 30) of the three scenarios `inferstack simulate --stack dev
   --diurnal --bursts --days 30` runs (configured, naive, competent default), fast mode, with
   the quiet stretches (the default) and the same on `--stepped-days` days decided tick by tick
   (`run_fast(quiet=False)`): the ratio of CPU seconds per simulated day, and the numbers of
   both on the shared days (they agree to the last bits of float sums).
3. With `--before REF`, the month again on that commit's source (exported with `git archive`,
   run in a fresh interpreter, alone), then on the working tree the same way: wall and CPU
   seconds side by side with the load average around each, and whether the figures are equal.

Wall time on a shared machine is noisy (the neighbours' load); CPU seconds of the process are
printed beside it, and the ratios are of CPU seconds.

    .venv/bin/python benchmarks/simulate_days.py [--days 30] [--stepped-days 2] [--stack dev]
        [--before REF]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))

from checkout import REPO, describe, export, run_on  # noqa: E402

T = TypeVar("T")


def _timed(work: Callable[[], T]) -> tuple[T, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    value = work()
    return value, time.perf_counter() - wall, time.process_time() - cpu


class _Month:
    """The stack's three scenarios on declared traffic with diurnal and bursts."""

    def __init__(self, stack: str, root: Path) -> None:
        from inferstack.offline.simulate.cli import DEFAULT_START
        from inferstack.offline.simulate.inputs import load_stack
        from inferstack.offline.simulate.scenarios import competent_default, naive

        self.start = datetime.fromisoformat(DEFAULT_START)
        inputs = load_stack(stack, root, self.start)
        self.inputs = inputs
        configured = inputs.configured
        self.scenarios = [
            configured,
            naive(configured, inputs.facts),
            competent_default(configured, inputs.facts),
        ]

    def rates(self, days: float) -> np.ndarray:
        from inferstack.offline.simulate.arrivals import declared_rates

        return declared_rates(
            self.inputs.traffic,
            self.start,
            round(days * 86400),
            diurnal=True,
            bursts=True,
            rng=np.random.default_rng(7919),
        )

    def run(self, rates: np.ndarray, *, quiet: bool) -> list[dict[str, Any]]:
        from inferstack.offline.simulate import fast
        from inferstack.offline.simulate.report import summarize

        return [
            summarize(fast.run_fast(s, rates, self.start, seed=0, quiet=quiet), timeline=False)
            for s in self.scenarios
        ]


def _figures(runs: list[dict[str, Any]]) -> list[list[Any]]:
    return [
        [r["scenario"], r["slo_attainment"], r["latency_ms"]["p99"], r["monthly_usd"]] for r in runs
    ]


def measure(stack: str, days: float) -> dict[str, Any]:
    """The month in this interpreter (tables warmed first): times, load and figures."""
    from inferstack.offline.simulate import fast

    month = _Month(stack, Path.cwd())
    for scenario in month.scenarios:
        if scenario.realtime is not None:
            fast.table_for(scenario.realtime)
    rates = month.rates(days)
    load_before = os.getloadavg()[0]
    runs, wall, cpu = _timed(lambda: month.run(rates, quiet=True))
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "load": [load_before, os.getloadavg()[0]],
        "figures": _figures(runs),
    }


def _tables_and_stepping(args: argparse.Namespace) -> None:
    from inferstack.offline.simulate import fast

    month = _Month(args.stack, REPO)
    pools = [s.realtime for s in month.scenarios if s.realtime is not None]
    with tempfile.TemporaryDirectory() as cache:
        os.environ[fast.CACHE_ENV] = cache
        fast._TABLES.clear()
        _, build_wall, build_cpu = _timed(lambda: [fast.table_for(pool) for pool in pools])
        fast._TABLES.clear()
        _, read_wall, read_cpu = _timed(lambda: [fast.table_for(pool) for pool in pools])
        tables = len({fast.table_key(pool) for pool in pools})
        print(
            f"  queueing tables ({tables} for {len(pools)} scenarios): built {build_wall:.2f} s "
            f"wall / {build_cpu:.2f} s CPU; read from disk {read_wall * 1000:.0f} ms wall / "
            f"{read_cpu * 1000:.0f} ms CPU (x{build_cpu / max(read_cpu, 1e-6):.0f})"
        )
        short = month.rates(args.stepped_days)
        quick, q_wall, q_cpu = _timed(lambda: month.run(short, quiet=True))
        stepped, s_wall, s_cpu = _timed(lambda: month.run(short, quiet=False))
    print(
        f"  {args.stepped_days:g} days x {len(month.scenarios)} scenarios: quiet {q_wall:.1f} s "
        f"wall / {q_cpu:.1f} s CPU, tick by tick {s_wall:.1f} s wall / {s_cpu:.1f} s CPU: "
        f"x{s_cpu / max(q_cpu, 1e-9):.1f} by CPU time"
    )
    same = all(
        a["slo_attainment"] == b["slo_attainment"] and a["served"] == b["served"]
        for a, b in zip(quick, stepped, strict=True)
    )
    print(f"  same attainment and served requests both ways: {same}")


def _month_row(name: str, side: dict[str, Any], days: float) -> str:
    return (
        f"  {name:<8} {days:g} days x 3 scenarios: {side['wall_s']:6.1f} s wall "
        f"{side['cpu_s']:6.1f} s CPU  load {side['load'][0]:.1f} -> {side['load'][1]:.1f}"
    )


def main() -> None:
    """Time the table, the month (before and after) and the tick-by-tick path; print ratios."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--stepped-days", type=float, default=2.0)
    parser.add_argument("--before", default=None, help="a commit to measure first (e.g. HEAD~5)")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        sys.stdout.write(json.dumps(measure(args.stack, args.days)) + "\n")
        return
    print(
        f"stack {args.stack}: declared traffic with diurnal and bursts, fast mode, "
        f"{os.cpu_count()} cores"
    )
    _tables_and_stepping(args)
    flags = ["--measure", "--stack", args.stack, "--days", f"{args.days:g}"]
    sides: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        if args.before:
            tree = export(args.before, Path(scratch) / "before")
            sides["before"] = run_on(tree, HERE, flags)
        sides["after"] = run_on(REPO, HERE, flags)
    if args.before:
        print(f"  before: {describe(args.before)}")
    print("  after:  the working tree")
    for name, side in sides.items():
        print(_month_row(name, side, args.days))
    for scenario, share, p99, usd in sides["after"]["figures"]:
        print(f"    {scenario:<18} SLO {share:.4%}  p99 {p99:.1f} ms  ${usd:,.0f}/month")
    after = sides["after"]
    if "before" in sides:
        before = sides["before"]
        print(
            f"  after/before: CPU x{after['cpu_s'] / before['cpu_s']:.2f}, wall "
            f"x{after['wall_s'] / before['wall_s']:.2f}; same figures: "
            f"{before['figures'] == after['figures']}"
        )
    print(f"  goal under 30 s: {'met' if after['cpu_s'] < 30 else 'missed'} by CPU time")


if __name__ == "__main__":
    main()
