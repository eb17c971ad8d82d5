"""How long `inferstack tune` takes on one simulated day of the dev stack (the issue's goal: under
5 minutes on the project's 2-core machine), and what it found.

Runs the search exactly as `inferstack tune --stack dev --days 1 --seeds 4 [--diurnal --bursts]`
does (the same functions, in this process), then prints the wall and CPU time, the number of
simulations, the winner's changes and the price of each nine. Wall time on a shared machine is
noisy; `process s` (CPU seconds of this process) is printed beside it.

    .venv/bin/python benchmarks/tune.py [--days 1] [--seeds 4] [--diurnal] [--bursts]
"""

from __future__ import annotations

import argparse
import sys
import time

from inferstack.offline.tune import cli

REPO_ARGS = ("--stack", "dev")


def main() -> int:
    """Time one tuning run and print what it found."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", default="1")
    parser.add_argument("--seeds", default="4")
    parser.add_argument("--diurnal", action="store_true")
    parser.add_argument("--bursts", action="store_true")
    options = parser.parse_args()
    tune_parser = argparse.ArgumentParser()
    cli.add_arguments(tune_parser)
    flags = [*REPO_ARGS, "--days", options.days, "--seeds", options.seeds]
    flags += [f"--{name}" for name in ("diurnal", "bursts") if getattr(options, name)]
    wall, cpu = time.perf_counter(), time.process_time()
    args = tune_parser.parse_args(flags)
    code = cli.run(args)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    sys.stdout.write(
        f"\ninferstack tune {' '.join(flags)}: {wall:.1f} wall s, {cpu:.1f} process s "
        f"(exit {code})\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
