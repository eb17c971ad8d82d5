"""How long `inferstack tune` takes on one simulated day of the dev stack (the issue's goal: under
5 minutes on the project's 2-core machine), and what it found, before and after, in one run.

Runs the search exactly as `inferstack tune --stack dev --days 1 --seeds 4 [--diurnal --bursts]`
does (`cli.run`, in a fresh interpreter) on the source of `--before` (a commit, exported with
`git archive`) and then on the working tree, one after the other, each with an empty queueing
table cache of its own (so both build the tables they need: the cold case). Prints, side by side:
wall seconds, CPU seconds (the process and its worker processes), the load average around each
run (wall time on a shared machine is mostly the neighbours'), the number of simulations, and
the price of each nine, which must be the same on both sides when only speed changed.

    .venv/bin/python benchmarks/tune.py [--before REF] [--days 1] [--seeds 4] [--diurnal]
        [--bursts] [--knobs LIST]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))

from checkout import REPO, describe, export, run_on  # noqa: E402

REPO_ARGS = ("--stack", "dev")


def _flags(options: argparse.Namespace) -> list[str]:
    flags = [*REPO_ARGS, "--days", options.days, "--seeds", options.seeds]
    if options.knobs:
        flags += ["--knobs", options.knobs]
    return flags + [f"--{name}" for name in ("diurnal", "bursts") if getattr(options, name)]


def _cpu() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def measure(flags: list[str]) -> dict[str, Any]:
    """One tuning run in this interpreter: times, load and what it found."""
    from inferstack.offline.tune import cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    load_before = os.getloadavg()[0]
    wall = time.perf_counter()
    own, children = _cpu()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.run(parser.parse_args([*flags, "--json"]))
    gc.collect()  # the search's worker processes stop with it: reap them to count their CPU
    for child in multiprocessing.active_children():
        child.join()
    own_after, children_after = _cpu()
    doc = json.loads(out.getvalue())
    return {
        "exit": code,
        "wall_s": time.perf_counter() - wall,
        "cpu_s": own_after - own,
        "workers_cpu_s": children_after - children,
        "load": [load_before, os.getloadavg()[0]],
        "simulations": doc["simulations"],
        "frontier": [
            [row["attainment_target"], row["monthly_usd"], row["slo_attainment"]]
            for row in doc["frontier"]
        ],
        "means": {
            s["scenario"]: s["mean_over_seeds"] for s in doc["scenarios"] if "mean_over_seeds" in s
        },
        # At the competent default's attainment (searched there since the versus search; an
        # older commit's document has no "searched").
        "versus": doc.get("versus_competent_default"),
    }


def _side(tree: Path, options: list[str], cache: Path) -> dict[str, Any]:
    sys.stderr.write(f"tune on {tree} ...\n")
    return run_on(tree, HERE, ["--measure", *options], env={"INFERSTACK_CACHE_DIR": str(cache)})


def _row(name: str, side: dict[str, Any]) -> str:
    cpu = side["cpu_s"] + side["workers_cpu_s"]
    return (
        f"  {name:<8} {side['wall_s']:7.1f} s wall  {cpu:7.1f} s CPU "
        f"({side['cpu_s']:.1f} main + {side['workers_cpu_s']:.1f} workers)  load "
        f"{side['load'][0]:.1f} -> {side['load'][1]:.1f}  {side['simulations']} simulations"
    )


def _versus(row: dict[str, Any] | None) -> str:
    """The cheapest configuration at the competent default's attainment, against it."""
    if not row:
        return "versus the competent default: -"
    competent = row["competent_default"]
    head = (
        f"versus the competent default ({competent['slo_attainment']:.4%} at "
        f"${competent['monthly_usd']:,.0f}): "
    )
    how = {True: "searched", False: "not searched", None: "read from the nines' runs"}[
        row.get("searched")
    ]
    if not row["found"]:
        return head + f"none found ({how})"
    return head + (
        f"${row['monthly_usd']:,.0f} at {row['slo_attainment']:.4%} "
        f"(saves ${row['saving_usd']:,.0f}; {how})"
    )


def main() -> int:
    """Time the tuning run before and after; print both and the ratios."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--before", default=None, help="a commit to measure first (e.g. HEAD~5)")
    parser.add_argument("--days", default="1")
    parser.add_argument("--seeds", default="4")
    parser.add_argument("--diurnal", action="store_true")
    parser.add_argument("--bursts", action="store_true")
    parser.add_argument(
        "--knobs",
        default=None,
        help="tune's --knobs (default all): the same list on both sides when --before's commit "
        "searched fewer knobs, so both search the same space",
    )
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    flags = _flags(options)
    if options.measure:
        sys.stdout.write(json.dumps(measure(flags)) + "\n")
        return 0
    # The measuring interpreter gets this script's own options back (it rebuilds tune's flags).
    own = ["--days", options.days, "--seeds", options.seeds]
    own += [f"--{name}" for name in ("diurnal", "bursts") if getattr(options, name)]
    own += ["--knobs", options.knobs] if options.knobs else []
    with tempfile.TemporaryDirectory() as scratch:
        sides: dict[str, dict[str, Any]] = {}
        if options.before:
            tree = export(options.before, Path(scratch) / "before")
            sides["before"] = _side(tree, own, Path(scratch) / "cache-before")
        sides["after"] = _side(REPO, own, Path(scratch) / "cache-after")
    print(f"inferstack tune {' '.join(flags)}, cold table cache, {os.cpu_count()} cores")
    if options.before:
        print(f"  before: {describe(options.before)}")
    print("  after:  the working tree")
    for name, side in sides.items():
        print(_row(name, side))
    after = sides["after"]
    for level, usd, share in after["frontier"]:
        print(f"    {level:g}%: ${usd:,.0f}/month ({share:.4%})" if usd else f"    {level:g}%: -")
    for name, side in sides.items():
        print(f"  {name:<8} {_versus(side.get('versus'))}")
    if "before" in sides:
        before = sides["before"]
        cpu = [s["cpu_s"] + s["workers_cpu_s"] for s in (before, after)]
        print(
            f"  after/before: wall x{after['wall_s'] / before['wall_s']:.2f}, "
            f"CPU x{cpu[1] / cpu[0]:.2f}; same price of each nine: "
            f"{before['frontier'] == after['frontier']}"
        )
    print(f"  goal under 300 s wall: {'met' if after['wall_s'] < 300 else 'missed'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
