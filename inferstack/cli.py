"""The `inferstack` command.

Each subcommand lives in its own module, imported only when that subcommand runs, so that
`inferstack serve` in the runtime image never imports Pulumi and `inferstack preview` in a team
repo never imports torch. A subcommand module exposes `add_arguments(parser)` and
`run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NamedTuple

from inferstack import __version__


class Subcommand(NamedTuple):
    module: str
    summary: str


SUBCOMMANDS: dict[str, Subcommand] = {
    "preview": Subcommand(
        "inferstack.offline.preview",
        "show every resource `pulumi up` would create, the derived sizing and the cost (offline)",
    ),
    "fit-traffic": Subcommand(
        "inferstack.components.planning.traffic_fit",
        "propose the spec's traffic block (baseline, peak, recurring spikes) from a request trace",
    ),
    "simulate": Subcommand(
        "inferstack.components.simulate.cli",
        "simulate autoscaling, cold starts and spot on traffic: p99, SLO and cost (offline)",
    ),
    "check": Subcommand(
        "inferstack.policies.check",
        "run the policy pack against a stack offline and exit 1 on mandatory violations",
    ),
    "serve": Subcommand(
        "inferstack.runtime.serve",
        "serve a model over the KServe v2 protocol with dynamic batching",
    ),
    "profile": Subcommand(
        "inferstack.runtime.profiler",
        "measure a model's latency, throughput and cold start on this hardware",
    ),
    "work": Subcommand(
        "inferstack.runtime.work",
        "consume a queue (SQS, Pub/Sub, Redis Streams) and write results durably",
    ),
}


def _top_level_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inferstack",
        description="Cheap GPU inference without breaking latency budgets.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="subcommands:\n"
        + "\n".join(f"  {name:<12} {sub.summary}" for name, sub in SUBCOMMANDS.items()),
    )
    parser.add_argument("--version", action="version", version=f"inferstack {__version__}")
    parser.add_argument("subcommand", choices=sorted(SUBCOMMANDS), metavar="SUBCOMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `inferstack` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in SUBCOMMANDS:
        # Lets argparse print help, the version, or "invalid choice" with the list.
        _top_level_parser().parse_args(args[:1])
        return 2
    name, rest = args[0], args[1:]
    module = importlib.import_module(SUBCOMMANDS[name].module)
    parser = argparse.ArgumentParser(
        prog=f"inferstack {name}", description=SUBCOMMANDS[name].summary
    )
    module.add_arguments(parser)
    code: int = module.run(parser.parse_args(rest))
    return code


if __name__ == "__main__":
    sys.exit(main())
