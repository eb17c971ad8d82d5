"""Reading a stack's config, once: the target, the spec, the target's options, and the plan.

`from_values` is the one reader. It takes the `inferstack:*` keys of a stack's config as plain
values (the stack program collects them from Pulumi config; `preview`, `check` and `simulate`
from the stack file, see `inferstack.offline.discovery`) and returns everything typed and
validated, with the service planned once. What differs between targets is one row of
`TARGETS`: the config key of the target's own options, their parser, what they find wrong
with the spec, which Kubernetes options stay the user's to get right (a cloud target binds the
queue itself), and how long the target's queue keeps a message. Every problem (spec, profile,
options, a GPU the target cannot provide) is reported at once, before any resource exists.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final, TypeVar, get_args

from pydantic import BaseModel

from inferstack.components.aws import options as aws_options
from inferstack.components.aws.options import AwsOptions, parse_aws_options
from inferstack.components.cloudrun import options as cloudrun_options
from inferstack.components.cloudrun.options import CloudRunOptions, parse_cloudrun_options
from inferstack.components.gcp import options as gcp_options
from inferstack.components.gcp.options import GcpOptions, parse_gcp_options
from inferstack.components.gcp.pubsub import QUEUE_RETENTION_SECONDS as PUBSUB_RETENTION_SECONDS
from inferstack.components.kubernetes import options as kubernetes_options
from inferstack.components.kubernetes.bindings import KubernetesBindings
from inferstack.components.kubernetes.options import KubernetesOptions, parse_options
from inferstack.components.planning.clouds import Target
from inferstack.components.planning.plan import ServicePlan, plan_service
from inferstack.components.planning.spec import CONFIG_KEY as SERVICE_KEY
from inferstack.components.planning.spec import InferenceServiceSpec, parse_spec
from inferstack.components.sagemaker import options as sagemaker_options
from inferstack.components.sagemaker.options import SageMakerOptions, parse_sagemaker_options
from inferstack.errors import Problem, SpecError
from inferstack.profile import resolve_profile

NAMESPACE: Final = "inferstack"
"""The config namespace of every key read here (`inferstack:<key>`)."""
TARGET_KEY: Final = "target"
KUBERNETES_KEY: Final = kubernetes_options.CONFIG_KEY.removeprefix(f"{NAMESPACE}:")
SOURCE: Final = "stack config"

TargetOptions = AwsOptions | GcpOptions | SageMakerOptions | CloudRunOptions
"""A cloud target's own options; each judges the spec with the one `problems(spec)`."""
Parser = Callable[[Mapping[str, object] | None, str, InferenceServiceSpec], TargetOptions]


def _kubernetes_problems(options: KubernetesOptions, spec: InferenceServiceSpec) -> list[Problem]:
    """A plain-Kubernetes stack binds the queue itself: its options are judged as the wiring."""
    return options.problems(spec) + KubernetesBindings.from_options(options).problems(spec)


def _options_problems(options: KubernetesOptions, spec: InferenceServiceSpec) -> list[Problem]:
    """A cloud target creates and binds the queue: only the rest of the options is the user's."""
    return options.problems(spec)


@dataclass(frozen=True)
class TargetRow:
    """What one target reads besides the spec, and how its options reach the layers below."""

    config_key: str | None
    """`inferstack:<target>`, the key of the target's own options; None: it has none."""
    model: type[BaseModel] | None
    """The pydantic model of those options (what `inferstack schema` describes)."""
    parse: Parser | None
    """Options from the key's value; `SpecError` naming each bad field as `<key>.<field>`, and
    what the valid rest finds wrong with the spec. The options' `problems(spec)` judges a valid
    value against the spec."""
    kubernetes_problems: Callable[[KubernetesOptions, InferenceServiceSpec], list[Problem]]
    """Which of the Kubernetes options' problems stay the user's on this target."""
    queue_retention_seconds: Callable[[TargetOptions | None], float | None]
    """How long the target's batch queue keeps an unread message before it deletes it; None:
    not known here (the user's own queue), taken as forever. The simulator expires a backlog
    older than this."""


def _no_kubernetes_problems(
    options: KubernetesOptions, spec: InferenceServiceSpec
) -> list[Problem]:
    """SageMaker and Cloud Run run no Kubernetes: nothing of those options reaches a resource."""
    return []


SAGEMAKER_REQUEST_TTL_SECONDS: Final = 6 * 3600
"""InvokeEndpointAsync's RequestTTLSeconds default: a queued request expires after 6 hours
(https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_runtime_InvokeEndpointAsync.html)."""


def _aws_retention(options: TargetOptions | None) -> float | None:
    if isinstance(options, AwsOptions):
        return float(options.message_retention_seconds)
    return None


TARGETS: Final[Mapping[Target, TargetRow]] = {
    "kubernetes": TargetRow(
        config_key=None,
        model=None,
        parse=None,
        kubernetes_problems=_kubernetes_problems,
        queue_retention_seconds=lambda options: None,
    ),
    "aws": TargetRow(
        config_key=aws_options.CONFIG_KEY,
        model=AwsOptions,
        parse=lambda data, key, spec: parse_aws_options(data, source=key, spec=spec),
        kubernetes_problems=_options_problems,
        queue_retention_seconds=_aws_retention,
    ),
    "gcp": TargetRow(
        config_key=gcp_options.CONFIG_KEY,
        model=GcpOptions,
        parse=lambda data, key, spec: parse_gcp_options(data, source=key, spec=spec),
        kubernetes_problems=_options_problems,
        # The GCP component creates the subscription with this retention, whatever the options.
        queue_retention_seconds=lambda options: float(PUBSUB_RETENTION_SECONDS),
    ),
    "sagemaker": TargetRow(
        config_key=sagemaker_options.CONFIG_KEY,
        model=SageMakerOptions,
        parse=lambda data, key, spec: parse_sagemaker_options(data, source=key, spec=spec),
        kubernetes_problems=_no_kubernetes_problems,
        queue_retention_seconds=lambda options: float(SAGEMAKER_REQUEST_TTL_SECONDS),
    ),
    "cloudrun": TargetRow(
        config_key=cloudrun_options.CONFIG_KEY,
        model=CloudRunOptions,
        parse=lambda data, key, spec: parse_cloudrun_options(data, source=key, spec=spec),
        kubernetes_problems=_no_kubernetes_problems,
        # The worker pool reads the GCP target's Pub/Sub subscription, kept as long.
        queue_retention_seconds=lambda options: float(PUBSUB_RETENTION_SECONDS),
    ),
}
"""One row per target whose component exists; the others of `Target` are planned."""
AVAILABLE_TARGETS: Final[tuple[Target, ...]] = tuple(TARGETS)
CONFIG_KEYS: Final[tuple[str, ...]] = (
    TARGET_KEY,
    SERVICE_KEY,
    KUBERNETES_KEY,
    *(row.config_key.removeprefix(f"{NAMESPACE}:") for row in TARGETS.values() if row.config_key),
)
"""Every key of the `inferstack` namespace `from_values` reads."""


def config_models() -> dict[str, type[BaseModel]]:
    """Each `inferstack:*` key whose value a pydantic model reads, and that model."""
    models: dict[str, type[BaseModel]] = {
        f"{NAMESPACE}:{SERVICE_KEY}": InferenceServiceSpec,
        kubernetes_options.CONFIG_KEY: KubernetesOptions,
    }
    for row in TARGETS.values():
        if row.config_key is not None and row.model is not None:
            models[row.config_key] = row.model
    return models


@dataclass(frozen=True)
class StackConfig:
    """Everything a stack program needs, typed and validated."""

    target: Target
    spec: InferenceServiceSpec
    plan: ServicePlan
    kubernetes: KubernetesOptions
    """Cluster-side options (`inferstack:kubernetes`); the cloud targets bind the rest."""
    gcp: GcpOptions | None = None
    """The GCP target's options (`inferstack:gcp`); None on other targets."""
    aws: AwsOptions | None = None
    """The AWS target's options (`inferstack:aws`); None on other targets."""
    sagemaker: SageMakerOptions | None = None
    """The SageMaker target's options (`inferstack:sagemaker`); None on other targets."""
    cloudrun: CloudRunOptions | None = None
    """The Cloud Run target's options (`inferstack:cloudrun`); None on other targets."""

    @property
    def target_options(self) -> TargetOptions | None:
        """The target's own options, whichever target it is; None on plain Kubernetes."""
        return self.aws or self.gcp or self.sagemaker or self.cloudrun

    @property
    def queue_retention_seconds(self) -> float | None:
        """How long the target's batch queue keeps an unread message (see `TargetRow`)."""
        return TARGETS[self.target].queue_retention_seconds(self.target_options)


def _target(raw: object) -> Target:
    target = raw or "kubernetes"
    for available in AVAILABLE_TARGETS:
        if target == available:
            return available
    planned = [t for t in get_args(Target) if t not in AVAILABLE_TARGETS]
    raise SpecError(
        [
            Problem(
                f"{NAMESPACE}:{TARGET_KEY}",
                f"{target!r} is not available; use one of {', '.join(AVAILABLE_TARGETS)}"
                + (f" ({', '.join(planned)} planned)" if planned else ""),
            )
        ],
        source=SOURCE,
    )


def _mapping(value: object, key: str) -> tuple[Mapping[str, object] | None, list[Problem]]:
    if value is None or isinstance(value, Mapping):
        return value, []
    return None, [Problem(key, f"expected a mapping of options, got {type(value).__name__}")]


Parsed = TypeVar("Parsed")


class _Problems:
    """Every problem found so far, gathered so that one run reports them all."""

    def __init__(self) -> None:
        self.found: list[Problem] = []

    def parse(self, parse: Callable[[], Parsed]) -> Parsed | None:
        """`parse()`, or None with its problems noted."""
        try:
            return parse()
        except SpecError as error:
            self.found += error.problems
            return None


def _spec(values: Mapping[str, object]) -> InferenceServiceSpec:
    key = f"{NAMESPACE}:{SERVICE_KEY}"
    raw = values.get(SERVICE_KEY)
    if raw is None:
        raise SpecError(
            [Problem(key, "missing from the stack config; add the spec there")], source=SOURCE
        )
    if not isinstance(raw, Mapping):
        raise SpecError(
            [Problem(key, f"expected a mapping of fields, got {type(raw).__name__}")],
            source=SOURCE,
        )
    return parse_spec(raw, source=f"{SOURCE} {key}", prefix=key)


def _kubernetes(values: Mapping[str, object], problems: _Problems) -> KubernetesOptions | None:
    key = kubernetes_options.CONFIG_KEY
    data, wrong = _mapping(values.get(KUBERNETES_KEY), key)
    problems.found += wrong
    return problems.parse(lambda: parse_options(data, source=key))


def _target_options(
    row: TargetRow, values: Mapping[str, object], spec: InferenceServiceSpec, problems: _Problems
) -> TargetOptions | None:
    parse, key = row.parse, row.config_key
    if parse is None or key is None:
        return None
    data, wrong = _mapping(values.get(key.removeprefix(f"{NAMESPACE}:")), key)
    problems.found += wrong
    options = problems.parse(lambda: parse(data, key, spec))
    if options is not None:
        problems.found += options.problems(spec)
    return options


def engine_values(config: Mapping[str, str]) -> dict[str, object]:
    """The `inferstack:*` keys of engine-form config, by key, decoded as Pulumi decodes them.

    `pulumi.Config.get_object` parses a value as JSON; a plain string that is not JSON (a name,
    a target) stays the string it is. Keys of other namespaces are left out.
    """
    prefix = f"{NAMESPACE}:"
    values: dict[str, object] = {}
    for key, text in config.items():
        if key.startswith(prefix):
            try:
                values[key.removeprefix(prefix)] = json.loads(text)
            except ValueError:
                values[key.removeprefix(prefix)] = text
    return values


def from_values(
    values: Mapping[str, object], *, project_dir: Path, now: datetime | None = None
) -> StackConfig:
    """The stack's target, spec, options and plan from its `inferstack:*` config values.

    `values` maps each key without its namespace (`target`, `service`, `kubernetes`, `aws`,
    `gcp`, `sagemaker`, `cloudrun`) to its value as YAML or `pulumi.Config.get_object` gives it.
    `project_dir` is where relative profile paths start (the folder of Pulumi.yaml); `now`
    fixes the clock pre-warm schedules start from. `SpecError` lists every problem at once.
    """
    target = _target(values.get(TARGET_KEY))
    row = TARGETS[target]
    problems = _Problems()
    # The spec's problems and the options' are listed together: one run shows everything.
    spec = problems.parse(lambda: _spec(values))
    kubernetes = _kubernetes(values, problems)
    if spec is None:
        raise SpecError(problems.found, source=SOURCE)
    options = _target_options(row, values, spec, problems)
    if kubernetes is not None:
        problems.found += row.kubernetes_problems(kubernetes, spec)
    try:
        profile = resolve_profile(spec.model.uri, spec.model.profile, base_dir=project_dir)
        plan = plan_service(spec, profile, target=target, now=now)
    except SpecError as error:
        raise SpecError(error.problems + problems.found, source=error.source) from None
    if problems.found or kubernetes is None:
        raise SpecError(problems.found, source=SOURCE)
    return StackConfig(
        target=target,
        spec=spec,
        plan=plan,
        kubernetes=kubernetes,
        aws=options if isinstance(options, AwsOptions) else None,
        gcp=options if isinstance(options, GcpOptions) else None,
        sagemaker=options if isinstance(options, SageMakerOptions) else None,
        cloudrun=options if isinstance(options, CloudRunOptions) else None,
    )


__all__ = [
    "AVAILABLE_TARGETS",
    "CONFIG_KEYS",
    "NAMESPACE",
    "TARGETS",
    "StackConfig",
    "TargetRow",
    "config_models",
    "engine_values",
    "from_values",
]
