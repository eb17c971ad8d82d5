"""The `inferstack` command.

Each subcommand lives in its own module, imported only when that subcommand runs, so that
`inferstack serve` in the runtime image never imports Pulumi and `inferstack preview` in a team
repo never imports torch. A subcommand module exposes `add_arguments(parser)` and
`run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NamedTuple

from inferstack import __version__


class Subcommand(NamedTuple):
    """One `inferstack` subcommand: the module that runs it, what it does, what it needs."""

    module: str
    summary: str
    extra: str | None
    """The distribution extra whose packages the subcommand imports (None: only the base)."""


EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "infra": (
        "pulumi",
        "pulumi_kubernetes",
        "pulumi_policy",
        "grpc",
        "google.protobuf",
        "jsonschema",
    ),
    "runtime": ("torch", "numpy", "prometheus_client", "orjson", "httptools", "uvloop"),
    "simulate": ("numpy", "numba", "ruamel"),
    "worker": ("redis", "boto3", "botocore", "google.cloud"),
}
"""Top-level modules each extra of pyproject.toml installs (import names, not distributions)."""
EXTRA_INCLUDES = {"worker": ("runtime",), "infra": ("simulate",)}
"""Extras that install other extras (`inferstack[worker]` depends on `inferstack[runtime]`)."""


SUBCOMMANDS: dict[str, Subcommand] = {
    "preview": Subcommand(
        "inferstack.offline.preview",
        "show every resource `pulumi up` would create, the derived sizing and the cost (offline)",
        "infra",
    ),
    "fit-traffic": Subcommand(
        "inferstack.components.planning.traffic_fit",
        "propose the spec's traffic block (baseline, peak, recurring spikes) from a request trace",
        None,
    ),
    "simulate": Subcommand(
        "inferstack.offline.simulate.cli",
        "simulate autoscaling, cold starts and spot on traffic: p99, SLO and cost (offline)",
        "simulate",
    ),
    "tune": Subcommand(
        "inferstack.offline.tune.cli",
        "search the cheapest configuration that meets the spec's SLO, with the price of each nine",
        "simulate",
    ),
    "check": Subcommand(
        "inferstack.offline.check",
        "run the policy pack against a stack offline and exit 1 on mandatory violations",
        "infra",
    ),
    "schema": Subcommand(
        "inferstack.offline.schema",
        "print the JSON Schema of a stack file (Pulumi.<stack>.yaml), for your editor",
        None,
    ),
    "serve": Subcommand(
        "inferstack.runtime.server.command",
        "serve a model over the KServe v2 protocol with dynamic batching",
        "runtime",
    ),
    "profile": Subcommand(
        "inferstack.runtime.profiler",
        "measure a model's latency, throughput and cold start on this hardware",
        "runtime",
    ),
    "work": Subcommand(
        "inferstack.runtime.worker.command",
        "consume a queue (SQS, Pub/Sub, Redis Streams) and write results durably",
        "worker",
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
    try:
        module = importlib.import_module(SUBCOMMANDS[name].module)
        parser = argparse.ArgumentParser(
            prog=f"inferstack {name}", description=SUBCOMMANDS[name].summary
        )
        module.add_arguments(parser)
        code: int = module.run(parser.parse_args(rest))
        sys.stdout.flush()  # here, not at exit, so that a closed pipe is reported below
    except ModuleNotFoundError as error:
        extra = _extra_providing(error.name or "", SUBCOMMANDS[name].extra)
        if extra is None:
            raise  # not an optional dependency: a bug, and its traceback is the report
        sys.stderr.write(
            f"inferstack {name}: needs the {extra!r} extra (module {error.name!r} is not "
            f"installed): pip install 'inferstack[{extra}]'\n"
        )
        return 2
    except BrokenPipeError:
        # The reader went away (`inferstack preview | head`): stop writing, and keep the
        # interpreter's final flush of stdout from raising again on the closed pipe.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.stderr.write(f"inferstack {name}: output closed before it was all written\n")
        return 2
    return code


def _provides(extra: str, module: str) -> bool:
    extras = (extra, *EXTRA_INCLUDES.get(extra, ()))
    return any(
        module == top or module.startswith(f"{top}.")
        for name in extras
        for top in EXTRA_MODULES.get(name, ())
    )


def _extra_providing(module: str, preferred: str | None) -> str | None:
    """The extra to install for a missing `module`: the subcommand's own when it has it."""
    if preferred is not None and _provides(preferred, module):
        return preferred
    return next((extra for extra in EXTRA_MODULES if _provides(extra, module)), None)


if __name__ == "__main__":
    sys.exit(main())
