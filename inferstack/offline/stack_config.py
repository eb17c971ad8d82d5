"""Reading a stack's config, once: the target, the spec, the target's options, and the plan.

The stack program is the only reader of Pulumi config; it calls `load_stack_config` and hands
the typed result to the components. Every problem (spec, profile, options, a GPU the target
cannot provide) is reported at once, before any resource exists.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Final, get_args

from inferstack.components.aws.options import AwsOptions, parse_aws_options
from inferstack.components.gcp import checks as gcp_checks
from inferstack.components.gcp.options import GcpOptions, parse_gcp_options
from inferstack.components.gcp.storage import results_location
from inferstack.components.kubernetes.options import KubernetesOptions, parse_options
from inferstack.components.planning.clouds import Target
from inferstack.components.planning.plan import ServicePlan, plan_service
from inferstack.components.planning.spec import InferenceServiceSpec, load_spec_from_config
from inferstack.errors import Problem, SpecError
from inferstack.profile import resolve_profile

NAMESPACE: Final = "inferstack"
TARGET_KEY: Final = "target"
KUBERNETES_KEY: Final = "kubernetes"
GCP_KEY: Final = "gcp"
AWS_KEY: Final = "aws"
AVAILABLE_TARGETS: Final[tuple[Target, ...]] = ("kubernetes", "gcp", "aws")
"""Targets whose component exists; the others of `Target` are planned."""


@dataclass(frozen=True)
class StackConfig:
    """Everything a stack program needs, typed and validated."""

    target: Target
    spec: InferenceServiceSpec
    plan: ServicePlan
    kubernetes: KubernetesOptions
    """Cluster-side options (`inferstack:kubernetes`); the cloud targets fill in the rest."""
    gcp: GcpOptions | None = None
    """The GCP target's options (`inferstack:gcp`); None on other targets."""
    aws: AwsOptions | None = None
    """The AWS target's options (`inferstack:aws`); None on other targets."""


def _target(raw: str | None) -> Target:
    target = raw or "kubernetes"
    if target not in AVAILABLE_TARGETS:
        planned = [t for t in get_args(Target) if t not in AVAILABLE_TARGETS]
        raise SpecError(
            [
                Problem(
                    f"{NAMESPACE}:{TARGET_KEY}",
                    f"{target!r} is not available; use one of {', '.join(AVAILABLE_TARGETS)}"
                    + (f" ({', '.join(planned)} planned)" if planned else ""),
                )
            ],
            source="stack config",
        )
    return target


def load_stack_config(project_dir: Path, *, now: datetime | None = None) -> StackConfig:
    """Read `inferstack:*` from the stack config and plan the service; `SpecError` lists all.

    `project_dir` is where relative profile paths start (the folder of Pulumi.yaml).
    """
    import pulumi  # deferred: planning and tests import this module without Pulumi

    config = pulumi.Config(NAMESPACE)
    target = _target(config.get(TARGET_KEY))
    spec = load_spec_from_config(NAMESPACE)
    options = parse_options(
        config.get_object(KUBERNETES_KEY), source=f"{NAMESPACE}:{KUBERNETES_KEY}"
    )
    gcp: GcpOptions | None = None
    option_problems = []
    if target == "gcp":
        gcp, gcp_problems = _gcp_options(config.get_object(GCP_KEY), spec)
        option_problems += gcp_problems
        if gcp is not None:
            # What the GCP component fills in from the resources it creates.
            options = _as_filled_by_gcp(options, gcp, spec)
    aws: AwsOptions | None = None
    if target == "aws":
        aws_source = f"{NAMESPACE}:{AWS_KEY}"
        aws = parse_aws_options(config.get_object(AWS_KEY), source=aws_source)
        option_problems += aws.problems(spec, source=aws_source)
        # The AWS target binds the queue itself (its URL, region, identity and result store) from
        # the resources it creates, so only the rest of the Kubernetes options are the user's.
        option_problems += [
            p for p in options.problems(spec) if not p.path.startswith("options.queue.")
        ]
    else:
        option_problems += options.problems(spec)
    try:
        profile = resolve_profile(spec.model.uri, spec.model.profile, base_dir=project_dir)
        plan = plan_service(spec, profile, target=target, now=now)
    except SpecError as error:
        raise SpecError(error.problems + option_problems, source=error.source) from None
    if option_problems:
        key = AWS_KEY if target == "aws" else KUBERNETES_KEY
        raise SpecError(option_problems, source=f"{NAMESPACE}:{key}")
    return StackConfig(target=target, spec=spec, plan=plan, kubernetes=options, gcp=gcp, aws=aws)


def _gcp_options(
    data: dict[str, object] | None, spec: InferenceServiceSpec
) -> tuple[GcpOptions | None, list[Problem]]:
    source = f"{NAMESPACE}:{GCP_KEY}"
    try:
        options = parse_gcp_options(data, source=source)
    except SpecError as error:
        return None, error.problems + gcp_checks.spec_problems(spec)
    return options, gcp_checks.spec_problems(spec)


def _as_filled_by_gcp(
    options: KubernetesOptions, gcp: GcpOptions, spec: InferenceServiceSpec
) -> KubernetesOptions:
    if spec.batch is None:
        return options
    queue = replace(
        options.queue,
        gcp_project=gcp.project,
        results_uri=results_location(spec.name, gcp).uri,
    )
    return replace(options, queue=queue)


__all__ = ["AVAILABLE_TARGETS", "StackConfig", "load_stack_config"]
