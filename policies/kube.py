"""Reading Kubernetes and KEDA objects in wire form: workloads, pod specs, spot admission, triggers.

Shared by the rules so that "which pods does this workload run", "may these pods land on spot
capacity" and "does this trigger read demand or utilisation" have one answer across the pack.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from inferstack.contract import metrics as metric_names
from inferstack.contract.clouds import SPOT_LABELS
from inferstack.contract.labels import SERVICE_LABEL, TIER_LABEL, TIER_REALTIME
from inferstack.contract.pods import GPU_RESOURCE
from inferstack.contract.resource_types import CRON_JOB, POD, SERVICE, WORKLOAD_TYPES
from inferstack.policies.resources import (
    UNKNOWN,
    Resource,
    as_number,
    get_path,
    list_of,
    mapping_of,
)

GPU_RESOURCE_NAMES: Final = frozenset(
    {GPU_RESOURCE, "amd.com/gpu", "gpu.intel.com/i915", "gpu.intel.com/xe"}
)
_GPU_RESOURCE_PREFIXES: Final = ("nvidia.com/mig-",)

DEFAULT_NAMESPACE: Final = "default"


def kind_of(resource_type: str) -> str:
    """`kubernetes:apps/v1:Deployment` -> `Deployment`."""
    return resource_type.rsplit(":", 1)[-1]


def is_gpu_resource_name(name: str) -> bool:
    """True for extended resources that are accelerators (`nvidia.com/gpu`, MIG slices, ...)."""
    return name in GPU_RESOURCE_NAMES or name.startswith(_GPU_RESOURCE_PREFIXES)


# ---------------------------------------------------------------------------------------------
# Workloads and pod specs


def pod_template(resource: Resource) -> Mapping[str, Any]:
    """The pod template (`metadata` + `spec`) a workload runs; empty for other types."""
    if resource.type == POD:
        return {
            "metadata": mapping_of(resource.get("metadata")),
            "spec": mapping_of(resource.get("spec")),
        }
    if resource.type == CRON_JOB:
        return mapping_of(resource.get("spec.jobTemplate.spec.template"))
    if resource.type in WORKLOAD_TYPES:
        return mapping_of(resource.get("spec.template"))
    return {}


def pod_spec(resource: Resource) -> Mapping[str, Any]:
    """The pod spec of a workload; empty for other types."""
    return mapping_of(pod_template(resource).get("spec"))


def containers(spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every container of a pod spec: init containers first, then the app containers."""
    for key in ("initContainers", "containers"):
        for container in list_of(spec.get(key)):
            if isinstance(container, Mapping):
                yield container


def labels(resource: Resource) -> Mapping[str, Any]:
    """The object's own `metadata.labels`."""
    return mapping_of(resource.get("metadata.labels"))


def object_annotations(resource: Resource) -> Mapping[str, Any]:
    """The object's own `metadata.annotations`."""
    return mapping_of(resource.get("metadata.annotations"))


def workload_labels(resource: Resource) -> dict[str, Any]:
    """Labels of a workload and of its pod template together (the template wins on conflict)."""
    merged = dict(labels(resource))
    merged.update(mapping_of(get_path(pod_template(resource), "metadata.labels")))
    return merged


def name_of(resource: Resource) -> Any:
    """`metadata.name`: a string, `UNKNOWN` (autonamed or computed) or None when absent."""
    name = resource.get("metadata.name")
    return UNKNOWN if name is None else name


def namespace_of(resource: Resource) -> str | Any:
    """`metadata.namespace`, the Kubernetes default namespace when absent."""
    namespace = resource.get("metadata.namespace")
    return DEFAULT_NAMESPACE if namespace is None else namespace


def has_label(values: Mapping[str, Any], key: str, value: str) -> bool:
    """True when the label `key` is set to `value` (exact, as Kubernetes selectors match)."""
    return values.get(key) == value


def is_realtime(
    values: Mapping[str, Any], key: str = TIER_LABEL, value: str = TIER_REALTIME
) -> bool:
    """True when the labels mark the realtime (synchronous, latency-bound) tier."""
    return has_label(values, key, value)


def gpu_quantities(container: Mapping[str, Any], section: str) -> dict[str, float | None]:
    """GPU resources in a container's `resources.requests` or `resources.limits`, by name."""
    found: dict[str, float | None] = {}
    for name, quantity in mapping_of(get_path(container, f"resources.{section}")).items():
        if is_gpu_resource_name(str(name)):
            found[str(name)] = as_number(quantity)
    return found


def requests_gpu(spec: Mapping[str, Any]) -> bool:
    """True when any container of the pod spec requests or limits an accelerator."""
    return any(
        gpu_quantities(container, "requests") or gpu_quantities(container, "limits")
        for container in containers(spec)
    )


def is_inference_workload(resource: Resource, tier_key: str = TIER_LABEL) -> bool:
    """A workload that serves inference: labelled with a tier or service, or asking for GPUs."""
    if resource.type not in WORKLOAD_TYPES:
        return False
    merged = workload_labels(resource)
    return tier_key in merged or SERVICE_LABEL in merged or requests_gpu(pod_spec(resource))


# ---------------------------------------------------------------------------------------------
# Spot capacity


@dataclass(frozen=True)
class SpotKey:
    """A node label (and matching taint) that marks spot / preemptible capacity."""

    key: str
    spot_values: frozenset[str]
    """Values (compared case-insensitively) that mean spot."""
    only_on_spot: bool
    """True when on-demand nodes lack the label (GKE, AKS); False when all nodes carry it."""
    provider: str


SPOT_KEYS: Final = {
    label.key: SpotKey(
        label.key, frozenset({label.value.lower()}), label.only_on_spot, label.provider
    )
    for label in SPOT_LABELS
}


@dataclass(frozen=True)
class SpotAdmission:
    """Why a pod spec may land on spot capacity, and on whose (for the interruption notice)."""

    reason: str
    provider: str
    """`aws`, `gcp`, `azure`, or "" when any provider's spot nodes are admitted."""


@dataclass(frozen=True)
class SpotAdmissions:
    """Every way a pod spec admits spot capacity; the first reason is the one reported."""

    reason: str
    providers: frozenset[str]
    """Whose spot nodes are admitted; contains "" when any provider's are."""


def _is_spot_value(spot: SpotKey, value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() in spot.spot_values


def _expression_effect(expression: Mapping[str, Any]) -> tuple[str, SpotKey] | None:
    """`("selects"|"excludes", key)` for a node selector requirement on a spot key, else None."""
    spot = SPOT_KEYS.get(str(expression.get("key")))
    if spot is None:
        return None
    operator = expression.get("operator")
    values = list_of(expression.get("values"))
    spot_listed = any(_is_spot_value(spot, value) for value in values)
    if operator == "In":
        return ("selects", spot) if spot_listed else ("excludes", spot)
    if operator == "NotIn":
        return ("excludes", spot) if spot_listed else None
    if operator == "DoesNotExist":
        return ("excludes", spot) if spot.only_on_spot else None
    if operator == "Exists" and spot.only_on_spot:
        return ("selects", spot)
    return None


def _term_effect(term: Mapping[str, Any]) -> tuple[str, SpotKey] | None:
    effects = [
        effect
        for expression in list_of(term.get("matchExpressions"))
        if isinstance(expression, Mapping) and (effect := _expression_effect(expression))
    ]
    excluded = [effect for effect in effects if effect[0] == "excludes"]
    if excluded:
        return excluded[0]
    return effects[0] if effects else None


def _node_selector_admissions(spec: Mapping[str, Any]) -> tuple[list[SpotAdmission], bool]:
    """Spot admissions of the nodeSelector, and whether it pins the pod to non-spot capacity."""
    reasons: list[SpotAdmission] = []
    excluded = False
    for key, value in mapping_of(spec.get("nodeSelector")).items():
        spot = SPOT_KEYS.get(str(key))
        if spot is None:
            continue
        if _is_spot_value(spot, value):
            reasons.append(SpotAdmission(f"nodeSelector {key}={value}", spot.provider))
        else:
            excluded = True
    return reasons, excluded


def _affinity_admissions(spec: Mapping[str, Any]) -> tuple[list[SpotAdmission], bool]:
    """Spot admissions of the node affinity, and whether every required term excludes spot."""
    reasons: list[SpotAdmission] = []
    affinity = mapping_of(get_path(spec, "affinity.nodeAffinity"))
    required = list_of(
        get_path(affinity, "requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms")
    )
    term_effects = [_term_effect(term) for term in required if isinstance(term, Mapping)]
    excluded = bool(term_effects) and all(
        effect and effect[0] == "excludes" for effect in term_effects
    )
    for effect in term_effects:
        if effect and effect[0] == "selects":
            reasons.append(
                SpotAdmission(f"required node affinity on {effect[1].key}", effect[1].provider)
            )
    for preference in list_of(affinity.get("preferredDuringSchedulingIgnoredDuringExecution")):
        effect = _term_effect(mapping_of(mapping_of(preference).get("preference")))
        weight = as_number(mapping_of(preference).get("weight")) or 0
        if effect and effect[0] == "selects" and weight > 0:
            reasons.append(
                SpotAdmission(f"preferred node affinity on {effect[1].key}", effect[1].provider)
            )
    return reasons, excluded


def spot_admission(spec: Mapping[str, Any]) -> SpotAdmissions | None:
    """Whether a pod spec admits spot nodes (EKS, Karpenter, GKE and AKS conventions).

    Admits means: its nodeSelector or node affinity (required or preferred) asks for spot, or it
    tolerates a spot taint without pinning itself to on-demand capacity.
    """
    selected, selector_excludes = _node_selector_admissions(spec)
    preferred, affinity_excludes = _affinity_admissions(spec)
    reasons = selected + preferred
    if not (selector_excludes or affinity_excludes):
        for toleration in list_of(spec.get("tolerations")):
            admission = _toleration_admits_spot(mapping_of(toleration))
            if admission:
                reasons.append(admission)
    if not reasons:
        return None
    return SpotAdmissions(reasons[0].reason, frozenset(r.provider for r in reasons))


def _toleration_admits_spot(toleration: Mapping[str, Any]) -> SpotAdmission | None:
    key = toleration.get("key")
    operator = toleration.get("operator", "Equal")
    if not key and operator == "Exists":
        return SpotAdmission("a toleration that tolerates every taint (spot taints included)", "")
    spot = SPOT_KEYS.get(str(key))
    if spot is None:
        return None
    if operator == "Exists" or _is_spot_value(spot, toleration.get("value")):
        return SpotAdmission(f"a toleration for the spot taint {key}", spot.provider)
    return None


# ---------------------------------------------------------------------------------------------
# Autoscaler triggers

GPU_UTILISATION_METRICS: Final = (
    "DCGM_FI_DEV_GPU_UTIL",
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
    "DCGM_FI_PROF_SM_ACTIVE",
    "DCGM_FI_PROF_SM_OCCUPANCY",
    "DCGM_FI_DEV_MEM_COPY_UTIL",
    "nvidia_gpu_utilization",
    "nvidia_gpu_duty_cycle",
    "nvidia_smi_utilization_gpu_ratio",
    "container_gpu_utilization",
    "container_accelerator_duty_cycle",
    "gpu_utilization",
)
"""GPU utilisation series (DCGM exporter, NVIDIA/GKE exporters): busy-ness, not demand."""
HOST_UTILISATION_METRICS: Final = (
    "container_cpu_usage_seconds_total",
    "container_memory_working_set_bytes",
    "container_memory_usage_bytes",
    "node_cpu_seconds_total",
)
"""cAdvisor / node-exporter CPU and memory series, the PromQL form of a cpu/memory trigger."""
RUNTIME_METRICS: Final = tuple(
    value
    for name, value in vars(metric_names).items()
    if name.isupper() and isinstance(value, str) and value.startswith(f"{metric_names.NAMESPACE}_")
)
"""Every series the inferstack runtime exports from inside its pods."""
DEMAND_METRICS: Final = (metric_names.QUEUE_DEPTH, metric_names.IN_FLIGHT, metric_names.REQUESTS)


def _mentions(query: str, names: Iterable[str]) -> bool:
    return any(re.search(rf"(?<![A-Za-z0-9_:]){re.escape(name)}", query) for name in names)


def trigger_kind(trigger: Mapping[str, Any]) -> str:
    """Classify a KEDA trigger: `utilisation`, `demand`, `schedule` or `wake` (external events).

    cpu/memory triggers and PromQL over GPU/CPU utilisation series are utilisation. Any other
    PromQL (the runtime's queue depth, in-flight, request rate) is demand. Cron is a schedule.
    Queue and push triggers read state outside the pods, so they can also wake a workload at zero.
    """
    kind = str(trigger.get("type", ""))
    if kind in {"cpu", "memory"}:
        return "utilisation"
    if kind == "cron":
        return "schedule"
    if kind == "prometheus":
        query = get_path(trigger, "metadata.query")
        if isinstance(query, str) and _mentions(
            query, GPU_UTILISATION_METRICS + HOST_UTILISATION_METRICS
        ):
            return "utilisation"
        return "demand"
    return "wake"


def reads_pod_metrics(trigger: Mapping[str, Any]) -> bool:
    """True when a trigger's signal is exported by the target's own pods (gone at zero replicas)."""
    kind = str(trigger.get("type", ""))
    if kind in {"cpu", "memory"}:
        return True
    if kind != "prometheus":
        return False
    query = get_path(trigger, "metadata.query")
    return isinstance(query, str) and _mentions(
        query, RUNTIME_METRICS + GPU_UTILISATION_METRICS + HOST_UTILISATION_METRICS
    )


def hpa_metric_kind(metric: Mapping[str, Any]) -> str:
    """Classify an autoscaling/v2 HPA metric like `trigger_kind` does a KEDA trigger."""
    kind = metric.get("type")
    if kind in {"Resource", "ContainerResource"}:
        return "utilisation"
    section = mapping_of(
        metric.get({"Pods": "pods", "Object": "object", "External": "external"}.get(str(kind), ""))
    )
    name = get_path(section, "metric.name")
    if isinstance(name, str) and _mentions(
        name, GPU_UTILISATION_METRICS + HOST_UTILISATION_METRICS
    ):
        return "utilisation"
    return "demand"


def triggers(scaler: Resource) -> Sequence[Mapping[str, Any]]:
    """The triggers of a ScaledObject / ScaledJob."""
    return [t for t in list_of(scaler.get("spec.triggers")) if isinstance(t, Mapping)]


# ---------------------------------------------------------------------------------------------
# Cross-resource matching


def find_workload(
    scaler: Resource,
    resources: Sequence[Resource],
    *,
    ref_path: str = "spec.scaleTargetRef",
    default_kind: str = "Deployment",
) -> Resource | None:
    """The workload a scaler targets.

    Matched by kind, name and namespace when the name is known; when it is computed (an
    autonamed Deployment's `metadata.name` is unknown in preview), by the scaler's dependency on
    a workload of that kind, which the SDK records for every input built from another resource.
    """
    ref = mapping_of(scaler.get(ref_path))
    kind = ref.get("kind") or default_kind
    name = ref.get("name")
    namespace = namespace_of(scaler)
    candidates = [r for r in resources if r.type in WORKLOAD_TYPES and kind_of(r.type) == kind]
    if isinstance(name, str):
        for candidate in candidates:
            if name_of(candidate) == name and namespace_of(candidate) == namespace:
                return candidate
    dependent = [c for c in candidates if scaler.depends_on(c.urn)]
    return dependent[0] if len(dependent) == 1 else None


def services_selecting(workload: Resource, resources: Sequence[Resource]) -> list[Resource]:
    """Services in the workload's namespace whose selector matches its pod labels."""
    pod_labels = mapping_of(get_path(pod_template(workload), "metadata.labels"))
    found = []
    for service in resources:
        if service.type != SERVICE or namespace_of(service) != namespace_of(workload):
            continue
        selector = mapping_of(service.get("spec.selector"))
        if selector and all(pod_labels.get(k) == v for k, v in selector.items()):
            found.append(service)
    return found


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS: Final = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def go_duration_seconds(value: Any) -> float | None:
    """Seconds in a Go duration string (`20s`, `1m30s`, `500ms`); None when absent or malformed."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text == "0":
        return 0.0
    position, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    return total if position == len(text) and position > 0 else None
