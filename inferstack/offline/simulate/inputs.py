"""The simulator's one adapter to the rest of inferstack: stack -> plan -> rendered manifests.

Everything the simulator knows about a stack comes through here, so that the planning and
Kubernetes modules can move without touching the engine. A stack is found as `inferstack preview`
finds it (`inferstack.offline.discovery`: Pulumi.yaml, the stack file, the same flags) and read
by the one stack-config reader (`inferstack.offline.stack_config.from_values`) that the stack
program uses, so the spec, every target's options and the plan (the service sized once with its
prices) are what `pulumi up` would get, without running the Pulumi program. The KEDA
ScaledObjects are rendered by the same pure functions the Kubernetes component calls, then read
back (polling interval, cooldown, bounds, HPA behaviour, thresholds, cron floors, the HTTP
add-on's wake trigger); the target's queue retention comes from its options (SQS's
`message_retention_seconds` on AWS), so the simulator runs what `pulumi up` would deploy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from inferstack.components.kubernetes.bindings import KubernetesBindings
from inferstack.components.kubernetes.options import parse_options
from inferstack.components.kubernetes.scaling import pool_concurrency_target, scaled_object
from inferstack.components.planning.clouds import Target
from inferstack.components.planning.plan import DECLARATION_OUTPUT, ServicePlan, plan_service
from inferstack.components.planning.pricing import machine_price
from inferstack.components.planning.sizing import TARGET_UTILISATION, Sizing
from inferstack.components.planning.spec import CONFIG_KEY as SERVICE_KEY
from inferstack.components.planning.spec import BatchPool as BatchPoolSpec
from inferstack.components.planning.spec import InferenceServiceSpec, parse_spec
from inferstack.errors import SpecError
from inferstack.offline.capture import Capture, capture_program, integral_floats_to_int
from inferstack.offline.discovery import CaptureError, ProgramLocation, engine_config, read_project
from inferstack.offline.simulate.arrivals import DeclaredTraffic, Spike
from inferstack.offline.simulate.autoscaler import (
    DEFAULT_BEHAVIOR,
    KEDA_DEFAULT_COOLDOWN_SECONDS,
    KEDA_DEFAULT_POLLING_SECONDS,
    Behavior,
    CronTrigger,
    ScaledObjectParams,
    ScalingPolicy,
    ScalingRules,
)
from inferstack.offline.simulate.cloudrun import TARGET as CLOUDRUN
from inferstack.offline.simulate.cloudrun import cloudrun_realtime, cloudrun_scenario
from inferstack.offline.simulate.config import (
    BatchPool,
    ColdStart,
    Facts,
    Prices,
    RealtimePool,
    Scenario,
)
from inferstack.offline.simulate.errors import SimulateError
from inferstack.offline.simulate.replica import BatcherParams, ComputeModel
from inferstack.offline.simulate.sagemaker import TARGET as SAGEMAKER
from inferstack.offline.simulate.sagemaker import (
    sagemaker_batch,
    sagemaker_realtime,
    sagemaker_scenario,
)
from inferstack.offline.stack_config import (
    AVAILABLE_TARGETS,
    KUBERNETES_KEY,
    NAMESPACE,
    TARGET_KEY,
    StackConfig,
    engine_values,
    from_values,
)
from inferstack.profile import Profile, resolve_profile


@dataclass(frozen=True)
class StackInputs:
    """A stack, resolved: what it declares, what sizing made of it, what it would deploy."""

    stack: str
    plan: ServicePlan
    spec: InferenceServiceSpec
    profile: Profile
    sizing: Sizing
    traffic: DeclaredTraffic
    configured: Scenario
    facts: Facts
    price_source: str
    warnings: tuple[str, ...] = ()
    """What the user should know before trusting the figures (see `pod_start_warnings`)."""


def _behavior(manifest: dict[str, Any]) -> Behavior:
    raw = (
        manifest.get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior")
    ) or {}

    def rules(key: str, default: ScalingRules) -> ScalingRules:
        section = raw.get(key)
        if not section:
            return default
        policies = (
            tuple(
                ScalingPolicy(p["type"], int(p["value"]), int(p["periodSeconds"]))
                for p in section.get("policies", [])
            )
            or default.policies
        )
        return ScalingRules(
            int(section.get("stabilizationWindowSeconds", default.stabilization_seconds)),
            section.get("selectPolicy", "Max"),
            policies,
        )

    return Behavior(
        rules("scaleUp", DEFAULT_BEHAVIOR.scale_up),
        rules("scaleDown", DEFAULT_BEHAVIOR.scale_down),
    )


_THRESHOLD_KEYS = ("threshold", "queueLength", "lagCount", "value")
_ACTIVATION_KEYS = ("activationThreshold", "activationQueueLength", "activationLagCount")


def scaled_object_params(
    manifest: dict[str, Any], *, concurrency: float = 1.0
) -> ScaledObjectParams:
    """Read a rendered KEDA ScaledObject back into what the simulator runs."""
    spec = manifest["spec"]
    threshold, activation = 1.0, 0.0
    crons: list[CronTrigger] = []
    http_wake = False
    for trigger in spec.get("triggers", []):
        meta = trigger.get("metadata", {})
        if trigger["type"] == "cron":
            crons.append(
                CronTrigger(
                    trigger.get("name", "cron"),
                    meta["timezone"],
                    meta["start"],
                    meta["end"],
                    int(meta["desiredReplicas"]),
                )
            )
        elif trigger["type"] == "external-push":
            http_wake = True
        else:
            threshold = float(next(meta[k] for k in _THRESHOLD_KEYS if k in meta))
            activation = float(next((meta[k] for k in _ACTIVATION_KEYS if k in meta), 0))
    return ScaledObjectParams(
        polling_seconds=float(spec.get("pollingInterval", KEDA_DEFAULT_POLLING_SECONDS)),
        cooldown_seconds=float(spec.get("cooldownPeriod", KEDA_DEFAULT_COOLDOWN_SECONDS)),
        min_replicas=int(spec.get("minReplicaCount", 0)),
        max_replicas=int(spec.get("maxReplicaCount", 100)),
        behavior=_behavior(spec),
        demand_threshold=threshold,
        activation_threshold=activation,
        crons=tuple(crons),
        http_wake=http_wake,
        http_concurrency_target=concurrency,
    )


def _prices(plan: ServicePlan, gpu: str) -> Prices:
    price = machine_price(gpu, plan.price_cloud.name, plan.spec.prices)
    return Prices(
        price.on_demand_per_gpu_hour,
        price.spot_per_gpu_hour,
        price.gpus_per_instance,
        price.source,
    )


def _batcher(spec: InferenceServiceSpec, gpus: int) -> BatcherParams:
    batching = spec.batching
    return BatcherParams(
        max_batch_size=batching.max_batch_size,
        preferred_batch_sizes=tuple(batching.preferred_batch_sizes),
        max_queue_delay_s=batching.max_queue_delay_ms / 1000,
        queue_limit=batching.queue_limit,
        request_timeout_s=(
            batching.request_timeout_ms / 1000 if batching.request_timeout_ms else None
        ),
        instances=batching.instances_per_gpu * gpus,
    )


def compute_model(profile: Profile) -> ComputeModel:
    """The profile's batch compute, plus its server overhead, as the replica kernel samples it."""
    overhead = profile.server_overhead
    return ComputeModel(
        sizes=tuple(p.batch_size for p in profile.batches),
        p50_s=tuple(p.latency_ms.p50 / 1000 for p in profile.batches),
        p99_s=tuple(p.latency_ms.p99 / 1000 for p in profile.batches),
        overhead_per_batch_s=overhead.per_batch_ms / 1000 if overhead else 0.0,
        overhead_per_request_s=overhead.per_request_ms / 1000 if overhead else 0.0,
        overhead_points_s=tuple(
            sorted((p.batch_size, p.overhead_ms / 1000) for p in overhead.points)
        )
        if overhead
        else (),
        answer_spacing_points_s=tuple(
            sorted(
                (p.batch_size, p.answer_spacing_ms / 1000)
                for p in overhead.points
                if p.answer_spacing_ms is not None
            )
        )
        if overhead
        else (),
    )


def _cold_start(profile: Profile) -> ColdStart:
    cold = profile.cold_start
    return ColdStart(
        cold.node_provision.seconds,
        cold.image_pull.seconds,
        cold.model_load.seconds,
        cold.warmup.seconds,
        model_download_s=cold.download_seconds,
    )


def _realtime(config: StackConfig, compute: ComputeModel) -> RealtimePool | None:
    """The realtime pool as the Kubernetes component renders its ScaledObject."""
    plan, pool = config.plan, config.plan.realtime
    if pool is None:
        return None
    spec, section = plan.spec, pool.spec
    options = config.kubernetes
    manifest = scaled_object(
        spec, plan.sizing, pool, options, KubernetesBindings.from_options(options)
    )
    concurrency = float(pool_concurrency_target(spec, pool)) if section.scale_to_zero else 1.0
    hold = pool.sizing.request_hold_timeout_seconds
    built = RealtimePool(
        batcher=_batcher(spec, section.gpu.count),
        compute=compute,
        gpus_per_replica=section.gpu.count,
        prices=_prices(plan, section.gpu.type),
        latency_budget_s=spec.latency_budget_ms / 1000,
        metric=section.scaling.metric,
        scaler=scaled_object_params(manifest, concurrency=concurrency),
        scale_to_zero=section.scale_to_zero,
        hold_timeout_s=float(hold.value) if hold else 0.0,
    )
    # SageMaker runs its own loop (target tracking, wake alarm), not KEDA's: see `sagemaker`.
    if config.target == CLOUDRUN:  # Cloud Run's concurrency scaling: see `cloudrun`
        return cloudrun_realtime(config, built)
    return sagemaker_realtime(config, built) if config.target == SAGEMAKER else built


def _batch(config: StackConfig) -> BatchPool | None:
    """The batch pool as rendered, on its target's queue (its retention included)."""
    plan, pool = config.plan, config.plan.batch
    if pool is None:
        return None
    section, options = pool.spec, config.kubernetes
    manifest = scaled_object(
        plan.spec, plan.sizing, pool, options, KubernetesBindings.from_options(options)
    )
    retention = config.queue_retention_seconds
    built = BatchPool(
        items_per_second=(section.expected_items_per_day or 0.0) / 86400,
        replica_items_per_second=pool.sizing.replica_items_per_second.value,
        gpus_per_replica=section.gpu.count,
        prices=_prices(plan, section.gpu.type),
        scaler=scaled_object_params(manifest),
        spot=section.capacity.spot,
        spot_share=pool.sizing.spot_share.value,
        fallback_on_demand=section.capacity.fallback == "on_demand",
        notice_s=float(plan.price_cloud.spot_notice_seconds),
        grace_s=float(pool.sizing.termination_grace_seconds.value),
        max_job_s=float(section.max_job_seconds),
        retention_s=math.inf if retention is None else retention,
        schedule=_schedule(section),
    )
    # SageMaker's async endpoint runs its own loop (backlog tracking, wake alarm): see `sagemaker`.
    return sagemaker_batch(config, built) if config.target == SAGEMAKER else built


def _schedule(section: BatchPoolSpec) -> Spike | None:
    """The spec's `batch.schedule` as the arrivals' window: a day's items per run."""
    schedule = section.schedule
    if schedule is None:
        return None
    seconds = schedule.duration_minutes * 60.0
    items = section.expected_items_per_day or 0.0
    return Spike(schedule.cron, schedule.timezone, seconds, items / seconds)


def _facts(plan: ServicePlan) -> Facts:
    """The sized numbers the naive and competent-default scenarios are built from."""
    single = plan.profile.batches[0].throughput_items_per_s
    realtime, batch, traffic = plan.realtime, plan.batch, plan.spec.traffic
    return Facts(
        baseline_rps=traffic.baseline_rps,
        peak_rps=traffic.peak_rps,
        replica_rps=realtime.sizing.replica_rps.value if realtime else 0.0,
        single_replica_rps=single * (realtime.gpu.count if realtime else 1) * TARGET_UTILISATION,
        realtime_max=realtime.sizing.max_replicas.value if realtime else 0,
        batch_single_items_per_second=single * (batch.gpu.count if batch else 1),
        spikes=_traffic(plan.spec).spikes,
    )


def _traffic(spec: InferenceServiceSpec) -> DeclaredTraffic:
    traffic = spec.traffic
    return DeclaredTraffic(
        traffic.baseline_rps,
        traffic.peak_rps,
        tuple(Spike(s.cron, s.timezone, s.duration_minutes * 60.0, s.rps) for s in traffic.spikes),
    )


def pod_start_warnings(plan: ServicePlan) -> tuple[str, ...]:
    """A warning per pool whose GPU the profile's pod start was not measured on.

    A replica started on a node kept after a scale-down costs the profile's model load plus
    warm-up only (no node, no image pull). Measured on a CPU (the demo model: 0.32 s) or another
    GPU, that figure leaves out what a pod on the pool's GPU also pays before it serves
    (container start, the framework's import, the GPU context, the weights' copy to the GPU), so
    a scale-down followed by a scale-up looks nearly free in the simulation. The simulator has no
    measured figure to put in its place, so it says so rather than guess one.
    """
    profile = plan.profile
    cold = profile.cold_start
    warnings = []
    for name, pool in (("realtime", plan.realtime), ("batch", plan.batch)):
        if pool is None or profile.measured_gpu_type == pool.spec.gpu.type:
            continue
        warnings.append(
            f"the {name} pool's pod start on a kept node is {cold.pod_seconds:.2f} s (model load "
            f"{cold.model_load.seconds:.2f} s + warm-up {cold.warmup.seconds:.2f} s, measured on "
            f"{profile.hardware_label}), not on its {pool.spec.gpu.type}, where a pod also starts "
            "its container, imports the framework and loads the weights onto the GPU: scaling "
            "down and back up looks nearly free here; profile the model on that GPU "
            "(`inferstack profile`) before trusting replica moves"
        )
    return tuple(warnings)


def build_inputs(stack: str, config: StackConfig) -> StackInputs:
    """Render the plan's autoscaling as the Kubernetes component would, and read it back."""
    plan = config.plan
    realtime = _realtime(config, compute_model(plan.profile))
    batch = _batch(config)
    configured = Scenario(
        name="configured",
        description="as the stack renders it: its batching, KEDA/HPA settings, pre-warm, spot",
        realtime=realtime,
        batch=batch,
        cold_start=_cold_start(plan.profile),
    )
    if config.target == SAGEMAKER:
        configured = sagemaker_scenario(configured)
    if config.target == CLOUDRUN:
        configured = cloudrun_scenario(configured)
    pool = realtime or batch
    source = pool.prices.source if pool is not None else ""
    return StackInputs(
        stack,
        plan,
        plan.spec,
        plan.profile,
        plan.sizing,
        _traffic(plan.spec),
        configured,
        _facts(plan),
        source,
        pod_start_warnings(plan),
    )


def program_capture(location: ProgramLocation, capture: Capture | None = None) -> Capture:
    """The located stack's program run under mocks: `capture` when the caller ran it already
    (preview and check have it), else run now, so a program runs once per command."""
    if capture is not None:
        return capture
    return capture_program(
        location.program_dir,
        stack=location.stack,
        config=location.config,
        project_dir=location.project_dir,
    )


def program_values(location: ProgramLocation, capture: Capture | None = None) -> dict[str, object]:
    """The located stack's `inferstack:*` values: from its config, or from its program.

    A stack whose config holds no `inferstack:service` (a team's own Pulumi program that builds
    the spec in code) is run under mocks, as `inferstack preview` runs it, and the service is
    read from the declaration its component registered (`DECLARATION_OUTPUT`): the target, the
    spec and the Kubernetes options the program passed. `capture`: the program already run
    under mocks (preview and check have it), so it does not run again.
    """
    values = engine_values(location.config)
    if SERVICE_KEY in values:
        return values
    declared = [
        (resource.name, resource.outputs[DECLARATION_OUTPUT])
        for resource in program_capture(location, capture).resources
        if isinstance(resource.outputs.get(DECLARATION_OUTPUT), dict)
    ]
    if not declared:
        raise SimulateError(
            "--stack",
            f"stack {location.stack!r} has no inferstack:service in its config and its program "
            "declares no inferstack service (no component registered its plan); add the spec "
            "to the stack config, or build the service with inferstack's components",
        )
    if len(declared) > 1:
        names = ", ".join(name for name, _ in declared)
        raise SimulateError(
            "--stack",
            f"stack {location.stack!r} declares {len(declared)} services ({names}); simulate "
            "one at a time: give each its own stack",
        )
    declaration = integral_floats_to_int(declared[0][1])
    return {
        TARGET_KEY: declaration["target"],
        SERVICE_KEY: declaration["spec"],
        KUBERNETES_KEY: declaration.get("kubernetes") or {},
    }


def declared_in_config(location: ProgramLocation) -> bool:
    """Whether the stack's config holds the spec (else its program builds it in code)."""
    return SERVICE_KEY in engine_values(location.config)


def _declared_config(values: Mapping[str, object], project_dir: Path, now: datetime) -> StackConfig:
    """The plan of a service a program declared: planned again from its target and spec.

    The target's own options are not read again (the program passed them to its component,
    which accepted them); the Kubernetes options are the ones the component rendered with.
    """
    target: Target = "kubernetes"
    for available in AVAILABLE_TARGETS:
        if available == values[TARGET_KEY]:
            target = available
    service, kubernetes = values[SERVICE_KEY], values[KUBERNETES_KEY]
    key = f"{NAMESPACE}:{SERVICE_KEY}"
    spec = parse_spec(
        service if isinstance(service, Mapping) else {}, source=f"program {key}", prefix=key
    )
    options = parse_options(
        kubernetes if isinstance(kubernetes, Mapping) else None,
        source=f"program {NAMESPACE}:{KUBERNETES_KEY}",
    )
    profile = resolve_profile(spec.model.uri, spec.model.profile, base_dir=project_dir)
    plan = plan_service(spec, profile, target=target, now=now)
    return StackConfig(target=target, spec=spec, plan=plan, kubernetes=options)


def load_location(
    location: ProgramLocation, now: datetime, capture: Capture | None = None
) -> StackInputs:
    """The located stack's service (see `program_values`, which reads `capture` if given),
    planned and resolved offline."""
    stack = location.stack
    values = program_values(location, capture)
    try:
        if declared_in_config(location):
            config = from_values(values, project_dir=location.project_dir, now=now)
        else:
            config = _declared_config(values, location.project_dir, now)
    except SpecError as error:
        raise SimulateError(f"--stack {stack}", str(error)) from None
    return build_inputs(stack, config)


def load_stack(stack: str, project_dir: Path, now: datetime) -> StackInputs:
    """`Pulumi.<stack>.yaml` of the project in `project_dir`, resolved offline."""
    try:
        project = read_project(project_dir)
        config = engine_config(project, stack)
    except CaptureError as error:
        raise SimulateError("--stack", str(error)) from None
    location = ProgramLocation(project, project_dir, project.program_dir, stack, config)
    return load_location(location, now)
