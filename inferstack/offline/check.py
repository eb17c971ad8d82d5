"""`inferstack check`: the policy pack against a stack offline, as `pulumi preview --policy-pack`.

The program runs under the Pulumi SDK's mock monitor (no CLI, no cloud, no credentials); the
pack runs as its real `pulumi_policy` process, started and driven as the engine does it
(`inferstack.offline.analyzer`). Then the stack's declared day is simulated
(`inferstack.offline.slo`) and judged against the spec's `slo.attainment`. Exit status: 0 when
no mandatory policy is violated and the SLO is met, 1 when a mandatory policy is violated or the
simulated attainment misses the SLO, 2 when the check itself could not run (bad config, the
program failed, the pack failed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

from inferstack.offline.analyzer.pack_config import ConfigEntry, PackConfigError, load_config_file
from inferstack.offline.analyzer.pack_process import (
    PackProcess,
    PolicyRunError,
    StackContext,
    read_pack,
)

# Only light modules at import time: gRPC and the Pulumi SDK are imported while the pack boots
# and the program runs, so the three overlap instead of queueing (see `run`).
from inferstack.offline.capture import Capture, capture_program, service_outputs
from inferstack.offline.discovery import (
    CaptureError,
    ProgramLocation,
    add_program_arguments,
    locate_program,
)
from inferstack.offline.simulate import SimulateError
from inferstack.offline.slo import SLO_FIELD, DeclaredDay, declared_day

DEFAULT_PACK_DIR = Path(str(resources.files("inferstack.policies"))).resolve()
"""The inferstack pack: `PulumiPolicy.yaml` and `__main__.py` live in the policies package."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `inferstack check`: those of `inferstack preview`, plus the pack's."""
    add_program_arguments(parser)
    parser.add_argument(
        "--policy-pack",
        type=Path,
        default=DEFAULT_PACK_DIR,
        help="policy pack directory (default: the inferstack pack)",
    )
    parser.add_argument(
        "--policy-pack-config",
        type=Path,
        help='JSON file: {"<policy>": "<level>" | {"enforcementLevel": ..., "<setting>": ...}, '
        '"all": "<level>"}, as for `pulumi preview --policy-pack-config`',
    )
    parser.add_argument(
        "--json", action="store_true", help="print the violations as a JSON list instead"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="also print the RPC sequence and timings"
    )


def _error(message: str) -> int:
    sys.stderr.write(f"inferstack check: error: {message}\n")
    return 2


def run(args: argparse.Namespace) -> int:
    """Capture the program, run the pack over it, print the verdict; 1 on mandatory violations."""
    started = time.perf_counter()
    try:
        user_config: dict[str, ConfigEntry] = (
            load_config_file(args.policy_pack_config) if args.policy_pack_config else {}
        )
        pack = read_pack(args.policy_pack)
        location = locate_program(args)
    except (CaptureError, PackConfigError, PolicyRunError) as error:
        return _error(str(error))
    project, config = location.project, location.config
    program_dir, project_dir = location.program_dir, location.project_dir

    context = StackContext(project=project.name, stack=args.stack, config=config)
    # The pack boots and the program runs (each in its own process) while this one imports the
    # RPC driver: all three spend most of their time importing.
    with PackProcess(pack, context) as process, ThreadPoolExecutor(1) as pool:
        capturing = pool.submit(
            capture_program, program_dir, stack=args.stack, config=config, project_dir=project_dir
        )
        from inferstack.offline.analyzer.report import as_json, render_text, summary
        from inferstack.offline.analyzer.session import analyze

        try:
            capture: Capture = capturing.result()
            captured = time.perf_counter()
            result = analyze(
                process,
                capture.resources,
                context,
                user_config,
                user_config_source=str(args.policy_pack_config or "policy pack config"),
            )
        except CaptureError as error:
            return _error(f"the program failed under the mock monitor:\n{error}")
        except (PackConfigError, PolicyRunError) as error:
            return _error(str(error))
    try:
        day = declared_day(location, args, capture)
    except SimulateError as error:
        return _error(str(error))
    missed = isinstance(day, DeclaredDay) and day.met is False

    if args.json:
        violations = as_json(result) + (
            [_slo_violation(day)] if isinstance(day, DeclaredDay) and missed else []
        )
        sys.stdout.write(json.dumps(violations, indent=2) + "\n")
    else:
        label = f"local: {_display_path(pack.directory)}"
        sys.stdout.write(render_text(result, label) + "\n\n")
        # Sizing warnings (a profile from other hardware, a profile accepted from another
        # model) are not policy violations, but whoever reads the check must see them too.
        for service in service_outputs(capture):
            for warning in (service.sizing or {}).get("warnings") or []:
                sys.stdout.write(f"warning: {service.name}: {warning}\n")
        # An add-on nobody installs or states is a `pulumi up` that succeeds and never serves.
        for warning in addon_warnings(location):
            sys.stdout.write(f"warning: {warning}\n")
        sys.stdout.write(summary(result) + "\n")
        if day is not None:
            sys.stdout.write(day.slo_line() + "\n")
        if isinstance(day, DeclaredDay) and missed:
            sys.stdout.write(f"check failed: {day.miss_message()}\n")
    if args.verbose:
        sys.stdout.flush()
        finished = time.perf_counter()
        sys.stderr.write("\n".join(result.rpc_log) + "\n")
        sys.stderr.write(
            f"timings: capture {captured - started:.2f} s, policies "
            f"{finished - captured:.2f} s, total {finished - started:.2f} s\n"
        )
    return 1 if result.mandatory or missed else 0


def addon_warnings(location: ProgramLocation) -> list[str]:
    """A line for each cluster add-on the located stack needs that it neither installs nor
    states present (`inferstack.components.kubernetes.addons`); none for a program that
    declares no service in its config, or whose config the capture already refused."""
    from inferstack.components.kubernetes.addons import missing_addons, needed_addons
    from inferstack.components.kubernetes.scraping import TARGET_DEFAULTS
    from inferstack.errors import SpecError
    from inferstack.offline.stack_config import engine_values, from_values

    values = engine_values(location.config)
    if "service" not in values:
        return []
    try:
        stack = from_values(values, project_dir=location.project_dir)
    except SpecError:
        return []
    options = stack.kubernetes
    mode = options.metrics or TARGET_DEFAULTS.get(stack.target, "podmonitor")
    aws = stack.aws
    needs = needed_addons(
        stack.spec, stack.target, mode, ami_family=aws.ami_family if aws else None
    )
    missing = missing_addons(
        needs, options.addons, karpenter_installed=bool(aws and aws.install_karpenter)
    )
    return [
        f"cluster add-on {need.name} ({need.reason}) is neither installed by this stack nor "
        f"stated present; set inferstack:kubernetes.addons.{need.name}.install: true, or "
        f".present: '<version>' for the one on the cluster"
        + (" (Karpenter: inferstack:aws.install_karpenter)" if need.name == "karpenter" else "")
        for need in missing
    ]


def _slo_violation(day: DeclaredDay) -> dict[str, str]:
    """A missed SLO in the shape of a policy violation, so `--json` readers need no new case."""
    return {
        "policy": SLO_FIELD,
        "level": "mandatory",
        "severity": "high",
        "resource_type": "inferstack:service",
        "resource_name": day.service,
        "urn": "",
        "message": day.miss_message(),
    }


def _display_path(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
