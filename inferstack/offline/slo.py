"""The declared day, simulated: does the stack meet its SLO, and what does it really cost?

`inferstack preview` and `inferstack check` both run the stack's configured scenario through
the simulator (`inferstack.offline.simulate`) on one day of its declared traffic, in fast mode
with a fixed seed, so the verdict is the same on every run and costs about a second of CPU
once the fast mode's queueing table is on disk (the first run on a new replica configuration
builds it, about 3 s more; see `simulate.fast.table_for`). The
simulate command that reproduces the figures is part of the verdict, and is the very command
line this module parses for the traffic, so the two cannot drift apart.

Two questions, one run:
- the SLO: the share of requests answered within `latency_budget_ms` against `slo.attainment`;
- the cost: the preview's formula multiplies sized replicas by hours, while the simulator bills
  capacity from launch to removal through the target's own scaling loop (on Kubernetes, KEDA's
  cooldown and the node autoscaler's removal delay).
  Where they differ, the simulated figure is the one to trust (see `TRUSTED_REASON`).

The service is the stack config's (`inferstack:service`) or, for a team's own program that
builds its spec in code, the one its component declared (`DECLARATION_OUTPUT`, planned again as
`inferstack simulate` does, from the same run of the program under mocks that found it: the
program runs once). A program service the check cannot simulate - several services in one
stack (simulate runs one per stack), or a component that registers no declaration to plan
again - is never passed over in silence: the result is an `UncheckedDay`, a warning that names
each service and why.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass
from typing import Any

from inferstack.components.planning.plan import DECLARATION_OUTPUT
from inferstack.components.planning.spec import CONFIG_KEY as SERVICE_KEY
from inferstack.offline.capture import Capture, service_outputs
from inferstack.offline.discovery import ProgramLocation
from inferstack.offline.simulate.cli import (
    DEFAULT_START,
    add_arguments,
    parse_start,
    simulate,
    traffic_rates,
)
from inferstack.offline.simulate.inputs import load_location, program_capture
from inferstack.offline.simulate.report import summarize
from inferstack.offline.stack_config import engine_values

SEED = 0
"""The simulation's seed: fixed, so preview and check print the same figures on every run."""
MODE = "fast"
"""Fast mode: queueing from the batcher's exact tables, kept on disk after the first build (a
day of the dev stack's 345 million requests in about a second of CPU; exact mode takes
minutes)."""
SLO_FIELD = "slo.attainment"
"""The spec field the verdict is judged against, named in every message about it."""
TRUSTED = "simulated"
"""Which monthly cost the preview trusts when the formula's and the simulated one differ."""
TRUSTED_REASON = (
    "the simulator bills capacity from launch to removal through the target's own scaling loop "
    "(on Kubernetes KEDA's cooldown and the node removal delay; on SageMaker and Cloud Run "
    "their scalers) with cold starts, which keep a pool up after traffic falls; the formula "
    "prices the sized replicas' hours from averages"
)
"""Why the simulated monthly cost is trusted over the formula's."""


@dataclass(frozen=True)
class DeclaredDay:
    """One simulated day of a stack's declared traffic: the SLO verdict and the two costs."""

    stack: str
    service: str
    command: str
    """The `inferstack simulate` command whose `configured` row shows these figures."""
    tune_command: str
    """`inferstack tune` on the same stack: the fix `check` names when the SLO is missed."""
    traffic: str
    latency_budget_ms: float
    slo_percent: float
    attainment_percent: float | None
    """None when the stack has no realtime pool: no request was simulated, nothing to judge."""
    formula_monthly_usd: float
    simulated_monthly_usd: float
    untunable: str | None = None
    """Why `inferstack tune` cannot search this stack (a cloud service its program declares),
    and what to do instead; None: it can, and `miss_message` names it."""

    @property
    def met(self) -> bool | None:
        """Whether the simulated attainment reaches `slo.attainment` (None: nothing to judge)."""
        if self.attainment_percent is None:
            return None
        return self.attainment_percent >= self.slo_percent

    def document(self) -> dict[str, Any]:
        """The `--json` form (the preview sorts its keys)."""
        return {
            "stack": self.stack,
            "service": self.service,
            "command": self.command,
            "tune_command": self.tune_command,
            "traffic": self.traffic,
            "seed": SEED,
            "mode": MODE,
            "days": 1,
            "slo": {
                "field": SLO_FIELD,
                "attainment_percent": self.slo_percent,
                "latency_budget_ms": self.latency_budget_ms,
                "simulated_attainment_percent": self.attainment_percent,
                "met": self.met,
            },
            "cost": {
                "formula_monthly_usd": self.formula_monthly_usd,
                "simulated_monthly_usd": self.simulated_monthly_usd,
                "trusted": TRUSTED,
                "why": TRUSTED_REASON,
            },
        }

    def verdict(self) -> str:
        """Met or missed, with the figures, in a few words."""
        if self.attainment_percent is None:
            return "no realtime pool, so no request latency to judge"
        return (
            f"{'met' if self.met else 'MISSED'}: {self.attainment_percent:.3f}% of requests "
            f"within {self.latency_budget_ms:g} ms, SLO {self.slo_percent:g}%"
        )

    def slo_line(self) -> str:
        """The verdict in one line, with the command that reproduces it (for `check`)."""
        return f"{SLO_FIELD} {self.verdict()} on the declared day (reproduce: {self.command})"

    def miss_message(self) -> str:
        """What `check` prints when the SLO is missed: the field, the figures and the fix."""
        fix = self.untunable or (
            f"run `{self.tune_command}` for the cheapest configuration that meets it (more "
            "replicas, a lower target per replica, a faster scale-up)"
        )
        return (
            f"{SLO_FIELD}: stack {self.stack} ({self.service}) answers "
            f"{self.attainment_percent:.3f}% of its declared day's requests within "
            f"{self.latency_budget_ms:g} ms, below the SLO of {self.slo_percent:g}% "
            f"(reproduce: {self.command}); {fix}, or lower {SLO_FIELD} knowingly"
        )

    def preview_lines(self) -> list[str]:
        """The preview's section: the SLO verdict, then both monthly costs and which to trust."""
        return [
            f"Declared day, simulated ({self.traffic}, 1 day, {MODE} mode, seed {SEED}; "
            f"reproduce: {self.command}):",
            f"  {SLO_FIELD:<23} {self.verdict()}",
            f"  {'monthly cost, formula':<23} {self.formula_monthly_usd:>9,.0f}  "
            "sized replicas x hours",
            f"  {'monthly cost, simulated':<23} {self.simulated_monthly_usd:>9,.0f}  "
            f"trusted: {TRUSTED_REASON}",
        ]


@dataclass(frozen=True)
class UncheckedDay:
    """Services a stack's program declares whose declared day cannot be simulated, and why:
    what `check` and `preview` print instead of a verdict (a warning, never a silent skip)."""

    stack: str
    services: tuple[str, ...]
    """The components' resource names, as the program named them."""
    why: str

    @property
    def met(self) -> None:
        """Nothing was judged."""
        return None

    def warning(self) -> str:
        """The services, and why their declared day was not simulated."""
        named = ", ".join(self.services)
        return (
            f"{SLO_FIELD} is not checked on the declared day for {named} (stack {self.stack}): "
            f"{self.why}"
        )

    def document(self) -> dict[str, Any]:
        """The `--json` form: who was not checked, and why."""
        return {"stack": self.stack, "services": list(self.services), "checked": False,
                "why": self.why, "warning": self.warning()}  # fmt: skip

    def slo_line(self) -> str:
        """The warning in one line (for `check`)."""
        return f"warning: {self.warning()}"

    def preview_lines(self) -> list[str]:
        """The preview's section: the warning in place of the verdict."""
        return ["Declared day, not simulated:", f"  warning: {self.warning()}"]


Day = DeclaredDay | UncheckedDay
"""What the declared-day check gives for a stack that declares a service."""


def _program_services(capture: Capture) -> tuple[list[str], set[str]]:
    """The program's inferstack services (components with a sizing or a cost), and those of
    them that registered a declaration the simulator can plan again."""
    names = [service.name for service in service_outputs(capture)]
    declared = {
        resource.name
        for resource in capture.resources
        if isinstance(resource.outputs.get(DECLARATION_OUTPUT), dict)
    }
    return names, declared


def _unchecked(location: ProgramLocation, capture: Capture) -> UncheckedDay | None:
    """Why the program's services cannot be simulated (None: exactly one, declared)."""
    names, declared = _program_services(capture)
    if len(names) > 1:
        return UncheckedDay(
            location.stack,
            tuple(names),
            f"the program declares {len(names)} inferstack services and `inferstack simulate` "
            "runs one service per stack; give each service its own stack (or its spec in a "
            "stack config) to have each declared day checked",
        )
    missing = [name for name in names if name not in declared]
    if missing:
        [service] = [s for s in service_outputs(capture) if s.name == missing[0]]
        return UncheckedDay(
            location.stack,
            (service.name,),
            f"its component ({service.type}) registers no declaration (target and spec) for "
            "the simulator to plan again; put its spec in the stack config (inferstack:target, "
            "inferstack:service and the target's options) to have its declared day checked",
        )
    return None


def program_flags(location: ProgramLocation, args: argparse.Namespace) -> list[str]:
    """The flags that found the program (`add_program_arguments`), to hand on to another command."""
    flags = ["--stack", location.stack]
    if getattr(args, "project_dir", None) is not None:
        flags += ["--project-dir", str(args.project_dir)]
    if getattr(args, "program", None) is not None:
        flags += ["--program", str(args.program)]
    for item in getattr(args, "config", None) or []:
        flags += ["--config", item]
    return flags


def declared_day(
    location: ProgramLocation, args: argparse.Namespace, capture: Capture | None = None
) -> Day | None:
    """Simulate the located stack's declared day: its config's service, else the one its
    program declares; an `UncheckedDay` for program services that cannot be simulated; None
    when neither the config nor the program declares any inferstack service.

    `capture`: the program already run under mocks (preview and check have it); without it,
    a stack whose config declares no service is captured here. Raises `SimulateError` on a
    spec the simulator cannot read.
    """
    in_config = SERVICE_KEY in engine_values(location.config)
    if not in_config:
        capture = program_capture(location, capture)
        if not service_outputs(capture):
            return None
        unchecked = _unchecked(location, capture)
        if unchecked is not None:
            return unchecked
    flags = program_flags(location, args)
    parser = argparse.ArgumentParser(prog="inferstack simulate")
    add_arguments(parser)
    arguments = [*flags, "--mode", MODE, "--seed", str(SEED)]
    parsed = parser.parse_args(arguments)
    start = parse_start(DEFAULT_START)
    inputs = load_location(location, start, capture)
    rates, traffic, _ = traffic_rates(parsed, inputs, start)
    run = simulate(inputs, rates, start, seed=SEED, mode=MODE, scenarios=[inputs.configured])[0]
    summary = summarize(run, timeline=False)
    attainment = summary["slo_attainment"] if inputs.spec.realtime is not None else None
    target = inputs.plan.target
    untunable = None
    if not in_config and target != "kubernetes":
        # tune re-plans each candidate from the stack config, which holds no target options.
        untunable = (
            f"`inferstack tune` cannot search a {target} service its program declares (the "
            f"{target} options are not in the stack config); put the spec and the options in "
            "the stack config to tune it, or raise the replicas in the program"
        )
    return DeclaredDay(
        stack=location.stack,
        service=inputs.spec.name,
        command=shlex.join(["inferstack", "simulate", *arguments]),
        tune_command=shlex.join(["inferstack", "tune", *flags]),
        traffic=traffic,
        latency_budget_ms=inputs.spec.latency_budget_ms,
        slo_percent=inputs.spec.slo.attainment,
        attainment_percent=None if attainment is None else round(100 * attainment, 4),
        formula_monthly_usd=round(inputs.plan.cost.configured_monthly_usd, 2),
        simulated_monthly_usd=summary["monthly_usd"],
        untunable=untunable,
    )
