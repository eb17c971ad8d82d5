"""The simulator's two modes side by side: speed (simulated requests per second) and p99 agreement.

Runs the dev stack's configured scenario on its declared traffic (which includes the 09:00 New
York spike) for one simulated day in the exact mode (every request through the batcher kernel)
and in the fast mode (two time scales), with the same seed, and prints each mode's wall time,
simulated requests per second and latency percentiles, and the fast/exact p99 ratio. Then the
fast mode alone on `--long-days` days (the issue's 30-day goal: under 60 s on this machine).

Wall times on a shared machine are noisy; compare the ratio, and `process s` (CPU seconds of
this process) beside `wall s`.

    .venv/bin/python benchmarks/simulate_modes.py [--days 1] [--long-days 30] [--seed 0]
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from inferstack.offline.simulate.arrivals import declared_rates
from inferstack.offline.simulate.cli import DEFAULT_START
from inferstack.offline.simulate.engine import run_exact
from inferstack.offline.simulate.fast import run_fast
from inferstack.offline.simulate.inputs import load_stack
from inferstack.offline.simulate.loop import RunResult
from inferstack.offline.simulate.report import summarize

REPO = Path(__file__).resolve().parents[1]


def _timed(runner: Any, *args: Any, **kwargs: Any) -> tuple[RunResult, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    run = runner(*args, **kwargs)
    return run, time.perf_counter() - wall, time.process_time() - cpu


def _row(name: str, run: RunResult, wall: float, cpu: float) -> dict[str, Any]:
    summary = summarize(run, timeline=False)
    latency = summary["latency_ms"]
    print(
        f"  {name:<6} {run.seconds / 86400:>5.1f} d  {summary['requests']:>14,} req  "
        f"wall {wall:7.1f} s  process {cpu:7.1f} s  {summary['requests'] / wall:>10.3g} req/s  "
        f"p50 {latency['p50']:.2f}  p99 {latency['p99']:.2f}  max {latency['max']:.2f} ms  "
        f"SLO {summary['slo_attainment']:.4%}  ${summary['monthly_usd']:,.0f}/month"
    )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--days", type=float, default=1.0, help="days for the side-by-side run")
    parser.add_argument("--long-days", type=float, default=30.0, help="days for fast mode alone")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = datetime.fromisoformat(DEFAULT_START)
    inputs = load_stack(args.stack, REPO, start)
    scenario = inputs.configured
    rates = declared_rates(inputs.traffic, start, round(args.days * 86400))
    print(f"stack {args.stack}, declared traffic from {start.isoformat()}, seed {args.seed}")
    fast_run, fast_wall, fast_cpu = _timed(run_fast, scenario, rates, start, seed=args.seed)
    exact_run, exact_wall, exact_cpu = _timed(run_exact, scenario, rates, start, seed=args.seed)
    fast = _row("fast", fast_run, fast_wall, fast_cpu)
    exact = _row("exact", exact_run, exact_wall, exact_cpu)
    ratio = fast["latency_ms"]["p99"] / exact["latency_ms"]["p99"]
    print(
        f"  fast/exact: p99 {ratio:.3f} ({abs(ratio - 1):.1%} apart; goal within 5%), "
        f"speed x{exact_wall / fast_wall:.0f} by wall time, x{exact_cpu / fast_cpu:.0f} by "
        "process time"
    )
    if args.long_days > 0:
        long_rates = declared_rates(inputs.traffic, start, round(args.long_days * 86400))
        run, wall, cpu = _timed(run_fast, scenario, long_rates, start, seed=args.seed)
        _row("fast", run, wall, cpu)
        print(f"  {args.long_days:g} simulated days in {wall:.1f} s wall (goal: under 60 s)")


if __name__ == "__main__":
    main()
