"""The simulator's one adapter to the rest of inferstack: stack -> plan -> rendered manifests.

Everything the simulator knows about a stack comes through here, so that the planning and
Kubernetes modules can move without touching the engine. A stack is read the way `inferstack
preview --stack` reads it (Pulumi.yaml, then `stacks/Pulumi.<stack>.yaml` in the engine's config
form), through the same loaders, but without running the Pulumi program: the spec, the profile
and the plan (`plan_service`, the service sized once with its prices, as `load_stack_config`
builds it for the stack program) are pure functions, and the KEDA ScaledObjects are rendered by
the same pure functions the Kubernetes component calls, then read back (polling interval,
cooldown, bounds, HPA behaviour, thresholds, cron floors, the HTTP add-on's wake trigger), so
the simulator runs what `pulumi up` would deploy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from inferstack.components.kubernetes.options import KubernetesOptions, parse_options
from inferstack.components.kubernetes.scaling import (
    batch_scaled_object,
    concurrency_target,
    realtime_scaled_object,
)
from inferstack.components.planning.clouds import Target
from inferstack.components.planning.plan import ServicePlan, plan_service
from inferstack.components.planning.pricing import machine_price
from inferstack.components.planning.sizing import TARGET_UTILISATION, Sizing
from inferstack.components.planning.spec import InferenceServiceSpec, parse_spec
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
from inferstack.offline.stack_config import AVAILABLE_TARGETS
from inferstack.errors import SpecError
from inferstack.offline.discovery import CaptureError, engine_config, read_project
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


def _stack_documents(
    stack: str, project_dir: Path
) -> tuple[dict[str, Any], dict[str, Any], Target]:
    try:
        project = read_project(project_dir)
        config = engine_config(project, stack)
    except (CaptureError, KeyError) as error:
        raise SimulateError("--stack", str(error)) from None
    raw = config.get("inferstack:service")
    if raw is None:
        raise SimulateError(
            "--stack", f"stack {stack!r} has no inferstack:service; add the spec to its config"
        )
    options = (
        json.loads(config["inferstack:kubernetes"]) if "inferstack:kubernetes" in config else {}
    )
    name = config.get("inferstack:target") or "kubernetes"
    target = next((t for t in AVAILABLE_TARGETS if t == name), None)
    if target is None:
        raise SimulateError(
            f"--stack {stack}",
            f"inferstack:target {name!r} is not available; use one of "
            f"{', '.join(AVAILABLE_TARGETS)}",
        )
    return json.loads(raw), options, target


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
    """The profile's batch compute as the replica kernel samples it."""
    return ComputeModel(
        sizes=tuple(p.batch_size for p in profile.batches),
        p50_s=tuple(p.latency_ms.p50 / 1000 for p in profile.batches),
        p99_s=tuple(p.latency_ms.p99 / 1000 for p in profile.batches),
    )


def build_inputs(stack: str, plan: ServicePlan, options: KubernetesOptions) -> StackInputs:
    """Render the plan's autoscaling as the Kubernetes component would, and read it back."""
    spec, profile, sizing = plan.spec, plan.profile, plan.sizing
    cold = profile.cold_start
    cold_start = ColdStart(
        cold.node_provision.seconds,
        cold.image_pull.seconds,
        cold.model_load.seconds,
        cold.warmup.seconds,
    )
    compute = compute_model(profile)
    realtime = None
    source = ""
    if spec.realtime is not None and sizing.realtime is not None:
        rt = spec.realtime
        manifest = realtime_scaled_object(spec, sizing, options)
        concurrency = float(concurrency_target(spec, sizing)) if rt.scale_to_zero else 1.0
        hold = sizing.realtime.request_hold_timeout_seconds
        prices = _prices(plan, rt.gpu.type)
        source = prices.source
        realtime = RealtimePool(
            batcher=_batcher(spec, rt.gpu.count),
            compute=compute,
            gpus_per_replica=rt.gpu.count,
            prices=prices,
            latency_budget_s=spec.latency_budget_ms / 1000,
            metric=rt.scaling.metric,
            scaler=scaled_object_params(manifest, concurrency=concurrency),
            scale_to_zero=rt.scale_to_zero,
            hold_timeout_s=float(hold.value) if hold else 0.0,
        )
    batch = None
    if spec.batch is not None and sizing.batch is not None:
        pool = spec.batch
        prices = _prices(plan, pool.gpu.type)
        source = source or prices.source
        batch = BatchPool(
            items_per_second=(pool.expected_items_per_day or 0.0) / 86400,
            replica_items_per_second=sizing.batch.replica_items_per_second.value,
            gpus_per_replica=pool.gpu.count,
            prices=prices,
            scaler=scaled_object_params(batch_scaled_object(spec, sizing, options)),
            spot=pool.capacity.spot,
            fallback_on_demand=pool.capacity.fallback == "on_demand",
            notice_s=float(plan.price_cloud.spot_notice_seconds),
            grace_s=float(sizing.batch.termination_grace_seconds.value),
            max_job_s=float(pool.max_job_seconds),
        )
    configured = Scenario(
        name="configured",
        description="as the stack renders it: its batching, KEDA/HPA settings, pre-warm, spot",
        realtime=realtime,
        batch=batch,
        cold_start=cold_start,
    )
    single = profile.batches[0].throughput_items_per_s
    gpus_rt = spec.realtime.gpu.count if spec.realtime else 1
    gpus_b = spec.batch.gpu.count if spec.batch else 1
    facts = Facts(
        baseline_rps=spec.traffic.baseline_rps,
        peak_rps=spec.traffic.peak_rps,
        replica_rps=sizing.realtime.replica_rps.value if sizing.realtime else 0.0,
        single_replica_rps=single * gpus_rt * TARGET_UTILISATION,
        realtime_max=sizing.realtime.max_replicas.value if sizing.realtime else 0,
        batch_single_items_per_second=single * gpus_b,
    )
    traffic = DeclaredTraffic(
        spec.traffic.baseline_rps,
        spec.traffic.peak_rps,
        tuple(
            Spike(s.cron, s.timezone, s.duration_minutes * 60.0, s.rps) for s in spec.traffic.spikes
        ),
    )
    return StackInputs(stack, plan, spec, profile, sizing, traffic, configured, facts, source)


def load_stack(stack: str, project_dir: Path, now: datetime) -> StackInputs:
    """Read `stacks/Pulumi.<stack>.yaml` and resolve it offline; errors name the input."""
    service, options_raw, target = _stack_documents(stack, project_dir)
    try:
        spec = parse_spec(
            service, source=f"stack {stack} inferstack:service", prefix="inferstack:service"
        )
        profile = resolve_profile(spec.model.uri, spec.model.profile, base_dir=project_dir)
        options = parse_options(options_raw, source="inferstack:kubernetes")
        # The same plan the stack program builds (`load_stack_config`), without Pulumi config.
        plan = plan_service(spec, profile, target=target, now=now)
        return build_inputs(stack, plan, options)
    except SpecError as error:
        raise SimulateError(f"--stack {stack}", str(error)) from None
