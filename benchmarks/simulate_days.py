"""How long `inferstack simulate` takes on a month (the issue's goal: 30 simulated days under 30 s
on the project's 2-core machine), and what makes it fast, measured side by side in one run.

1. The queueing table: built (a cold cache) against read back from the disk cache, which is
   what every later `simulate`, `preview`, `check` and tune run finds.
2. `--days` simulated days (default 30) of the three scenarios `inferstack simulate --stack dev
   --diurnal --bursts --days 30` runs (configured, naive, competent default), fast mode, with
   the quiet stretches (the default) and the same on `--stepped-days` days decided tick by tick
   (`run_fast(quiet=False)`): the ratio of process seconds per simulated day, and the numbers of
   both on the shared days (they agree to the last bits of float sums).

Wall time on a shared machine is noisy; `process s` (CPU seconds of this process) is printed
beside it, and the ratio is of process seconds.

    .venv/bin/python benchmarks/simulate_days.py [--days 30] [--stepped-days 2] [--stack dev]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from inferstack.offline.simulate import fast
from inferstack.offline.simulate.arrivals import declared_rates
from inferstack.offline.simulate.cli import DEFAULT_START
from inferstack.offline.simulate.inputs import load_stack
from inferstack.offline.simulate.report import summarize
from inferstack.offline.simulate.scenarios import competent_default, naive

REPO = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def _timed(work: Callable[[], T]) -> tuple[T, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    value = work()
    return value, time.perf_counter() - wall, time.process_time() - cpu


def _month(scenarios: list[Any], rates: np.ndarray, start: datetime, quiet: bool) -> list[Any]:
    return [
        summarize(fast.run_fast(s, rates, start, seed=0, quiet=quiet), timeline=False)
        for s in scenarios
    ]


def main() -> None:
    """Time the table and the month; print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--stepped-days", type=float, default=2.0)
    args = parser.parse_args()
    start = datetime.fromisoformat(DEFAULT_START)
    inputs = load_stack(args.stack, REPO, start)
    configured = inputs.configured
    scenarios = [
        configured,
        naive(configured, inputs.facts),
        competent_default(configured, inputs.facts),
    ]
    pools = [s.realtime for s in scenarios if s.realtime is not None]
    print(f"stack {args.stack}: declared traffic with diurnal and bursts from {start.isoformat()}")

    with tempfile.TemporaryDirectory() as cache:
        os.environ[fast.CACHE_ENV] = cache
        fast._TABLES.clear()
        _, build_wall, build_cpu = _timed(lambda: [fast.table_for(pool) for pool in pools])
        fast._TABLES.clear()
        _, read_wall, read_cpu = _timed(lambda: [fast.table_for(pool) for pool in pools])
        tables = len({fast.table_key(pool) for pool in pools})
        print(
            f"  queueing tables ({tables} for {len(pools)} scenarios): built {build_wall:.2f} s "
            f"wall / {build_cpu:.2f} s process; read from disk {read_wall * 1000:.0f} ms wall / "
            f"{read_cpu * 1000:.0f} ms process (x{build_cpu / max(read_cpu, 1e-6):.0f})"
        )

        def rates_for(days: float) -> np.ndarray:
            return declared_rates(
                inputs.traffic,
                start,
                round(days * 86400),
                diurnal=True,
                bursts=True,
                rng=np.random.default_rng(7919),
            )

        month = rates_for(args.days)
        runs, wall, cpu = _timed(lambda: _month(scenarios, month, start, quiet=True))
        short = rates_for(args.stepped_days)
        quick, q_wall, q_cpu = _timed(lambda: _month(scenarios, short, start, quiet=True))
        stepped, s_wall, s_cpu = _timed(lambda: _month(scenarios, short, start, quiet=False))
    print(
        f"  {args.days:g} days x {len(scenarios)} scenarios, quiet stretches: {wall:.1f} s wall, "
        f"{cpu:.1f} s process (goal: under 30 s)"
    )
    for run in runs:
        print(
            f"    {run['scenario']:<18} SLO {run['slo_attainment']:.4%}  "
            f"p99 {run['latency_ms']['p99']:.1f} ms  ${run['monthly_usd']:,.0f}/month"
        )
    per_day_quiet = q_cpu / args.stepped_days
    per_day_stepped = s_cpu / args.stepped_days
    print(
        f"  {args.stepped_days:g} days x {len(scenarios)} scenarios: quiet {q_wall:.1f} s wall / "
        f"{q_cpu:.1f} s process, tick by tick {s_wall:.1f} s wall / {s_cpu:.1f} s process: "
        f"x{per_day_stepped / max(per_day_quiet, 1e-9):.1f} by process time"
    )
    same = all(
        a["slo_attainment"] == b["slo_attainment"] and a["served"] == b["served"]
        for a, b in zip(quick, stepped, strict=True)
    )
    print(f"  same attainment and served requests both ways: {same}")


if __name__ == "__main__":
    main()
