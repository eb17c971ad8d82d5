"""bounded-gpu-capacity: every way to add GPUs has an explicit, sane maximum.

Why: a GPU node costs dollars per hour. A node group or pool without a max size, or an autoscaler
without a max replica count (KEDA and the HTTP add-on default to 100), turns a traffic spike, a
retry storm or a stuck metric into an unbounded bill. A max above what the service was sized for
is the same risk with extra steps.

Fix: set `scalingConfig.maxSize` (EKS), `autoscaling.maxNodeCount`/`totalMaxNodeCount` (GKE),
`spec.limits["nvidia.com/gpu"]` (Karpenter NodePool), `maxReplicaCount` (ScaledObject,
ScaledJob), `replicas.max` (HTTPScaledObject) or `maxReplicas` (HPA) to the peak the service
was sized for, within the pack's ceilings (`maxGpuNodes`, `maxGpuReplicas`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from inferstack.contract import resource_types
from inferstack.contract.labels import SERVICE_LABEL, TIER_LABEL
from inferstack.contract.thresholds import MAX_GPU_NODES, MAX_GPU_REPLICAS, gpu_replicas_excess
from inferstack.policies import kube
from inferstack.policies.resources import (
    UNKNOWN,
    Finding,
    Resource,
    as_number,
    format_number,
    list_of,
    mapping_of,
)
from inferstack.policies.rule import Rule, config_value

EKS_NODE_GROUP: Final = resource_types.EKS_NODE_GROUP
GKE_NODE_POOL: Final = resource_types.GKE_NODE_POOL
_AWS_GPU_INSTANCE: Final = re.compile(r"^(p\d|g\d|gr\d|inf\d|trn\d)", re.IGNORECASE)
_AWS_GPU_AMI: Final = re.compile(r"GPU|NVIDIA|NEURON", re.IGNORECASE)
_GCP_GPU_MACHINE: Final = re.compile(r"^(a2|a3|a4|g2|g4)-", re.IGNORECASE)
KARPENTER_NODE_POOLS: Final = resource_types.KARPENTER_NODE_POOLS
_KARPENTER_GPU_KEYS: Final = frozenset(
    {
        "karpenter.k8s.aws/instance-gpu-count",
        "karpenter.k8s.aws/instance-gpu-name",
        "karpenter.k8s.aws/instance-gpu-manufacturer",
    }
)
_KARPENTER_TYPE_KEYS: Final = frozenset(
    {"karpenter.k8s.aws/instance-family", "node.kubernetes.io/instance-type"}
)
KEDA_DEFAULT_MAX: Final = 100.0


def _is_gpu_node_group(resource: Resource) -> bool:
    ami = resource.get("amiType")
    types = [str(t) for t in list_of(resource.get("instanceTypes"))]
    return (isinstance(ami, str) and bool(_AWS_GPU_AMI.search(ami))) or any(
        _AWS_GPU_INSTANCE.match(t) for t in types
    )


def _is_gpu_node_pool(resource: Resource) -> bool:
    node_config = mapping_of(resource.get("nodeConfig"))
    machine = node_config.get("machineType")
    return bool(list_of(node_config.get("guestAccelerators"))) or (
        isinstance(machine, str) and bool(_GCP_GPU_MACHINE.match(machine))
    )


def _is_gpu_karpenter_pool(resource: Resource) -> bool:
    """A Karpenter NodePool that provisions accelerator instances (by GPU key or instance type)."""
    for requirement in list_of(resource.get("spec.template.spec.requirements")):
        requirement = mapping_of(requirement)
        key = requirement.get("key")
        if key in _KARPENTER_GPU_KEYS and requirement.get("operator") != "DoesNotExist":
            return True
        values = [str(v) for v in list_of(requirement.get("values"))]
        typed = key in _KARPENTER_TYPE_KEYS and requirement.get("operator") == "In"
        if typed and any(_AWS_GPU_INSTANCE.match(v) for v in values):
            return True
    return False


def _node_max(resource: Resource) -> tuple[float | None, str]:
    """(max nodes or None when unbounded, the field that sets it) for a GPU node group/pool."""
    if resource.type == EKS_NODE_GROUP:
        return as_number(resource.get("scalingConfig.maxSize")), "scalingConfig.maxSize"
    autoscaling = resource.get("autoscaling")
    if not isinstance(autoscaling, Mapping):
        fixed = as_number(resource.get("nodeCount")) or as_number(resource.get("initialNodeCount"))
        return (fixed if fixed is not None else 1.0), "nodeCount"
    total = as_number(autoscaling.get("totalMaxNodeCount"))
    if total is not None:
        return total, "autoscaling.totalMaxNodeCount"
    per_zone = as_number(autoscaling.get("maxNodeCount"))
    if per_zone is None:
        return None, "autoscaling.maxNodeCount"
    zones = len(list_of(resource.get("nodeLocations"))) or 1
    return per_zone * zones, "autoscaling.maxNodeCount (per zone)"


def _replica_max(scaler: Resource) -> tuple[float | None, str]:
    """(max replicas, field); None with the KEDA default when the field is left out."""
    if scaler.type == resource_types.HTTP_SCALED_OBJECT:
        return as_number(scaler.get("spec.replicas.max")), "spec.replicas.max"
    if scaler.type in resource_types.HPA_TYPES:
        return as_number(scaler.get("spec.maxReplicas")), "spec.maxReplicas"
    return as_number(scaler.get("spec.maxReplicaCount")), "spec.maxReplicaCount"


def _scales_gpus(scaler: Resource, resources: Sequence[Resource]) -> bool:
    if scaler.type == resource_types.SCALED_JOB:
        spec = mapping_of(scaler.get("spec.jobTargetRef.template.spec"))
        return kube.requests_gpu(spec) or TIER_LABEL in kube.labels(scaler)
    scaler_labels = kube.labels(scaler)
    if TIER_LABEL in scaler_labels or SERVICE_LABEL in scaler_labels:
        return True
    workload = kube.find_workload(scaler, resources)
    return workload is not None and kube.requests_gpu(kube.pod_spec(workload))


_SCALER_TYPES: Final = (
    frozenset(
        {
            resource_types.SCALED_OBJECT,
            resource_types.SCALED_JOB,
            resource_types.HTTP_SCALED_OBJECT,
        }
    )
    | resource_types.HPA_TYPES
)


def _node_pool_findings(pool: Resource, ceiling: float) -> list[Finding]:
    """An EKS node group or GKE pool of GPUs without a max size, or above the ceiling."""
    maximum, field = _node_max(pool)
    if maximum is None and pool.get(field.split(" ")[0]) is UNKNOWN:
        return []
    if maximum is None:
        return [
            Finding(
                f"GPU node pool has no {field}, so it can grow without bound; set "
                f"{field} to at most {format_number(ceiling)}",
                pool.urn,
            )
        ]
    if maximum > ceiling:
        return [
            Finding(
                f"GPU node pool allows {format_number(maximum)} nodes ({field}), above "
                f"the ceiling of {format_number(ceiling)}; lower {field} or raise "
                "maxGpuNodes in the policy config if the service was sized for it",
                pool.urn,
            )
        ]
    return []


def _karpenter_findings(pool: Resource) -> list[Finding]:
    """A Karpenter NodePool of GPU instances without a GPU limit."""
    limits = mapping_of(pool.get("spec.limits"))
    if any(kube.is_gpu_resource_name(str(name)) for name in limits):
        return []
    return [
        Finding(
            "Karpenter NodePool provisions GPU instances with no GPU limit in "
            "spec.limits, so it can launch GPUs without bound; set spec.limits"
            '["nvidia.com/gpu"] to the GPUs the service was sized for',
            pool.urn,
        )
    ]


def _scaler_findings(scaler: Resource, ceiling: float) -> list[Finding]:
    """A GPU autoscaler that leaves its max to KEDA's default, or allows more than the ceiling."""
    maximum, field = _replica_max(scaler)
    kind = kube.kind_of(scaler.type)
    if maximum is None and scaler.type not in resource_types.HPA_TYPES:
        if scaler.get(field) is UNKNOWN:
            return []
        return [
            Finding(
                f"{kind} scaling GPU replicas leaves {field} unset, so KEDA's default of "
                f"{format_number(KEDA_DEFAULT_MAX)} applies; set {field} to the replicas the "
                f"service was sized for (at most {format_number(ceiling)})",
                scaler.urn,
            )
        ]
    if maximum is not None and (excess := gpu_replicas_excess(maximum, ceiling)):
        return [
            Finding(
                f"{kind} allows {format_number(maximum)} GPU replicas ({field}), {excess}; "
                f"lower {field} or raise "
                "maxGpuReplicas in the policy config if the service was sized for it",
                scaler.urn,
            )
        ]
    return []


def check(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Finding]:
    """Findings for GPU capacity without a max, or with a max above the ceiling."""
    node_ceiling = float(config_value(config, RULE, "maxGpuNodes"))
    replica_ceiling = float(config_value(config, RULE, "maxGpuReplicas"))
    findings = []
    for resource in resources:
        if (resource.type == EKS_NODE_GROUP and _is_gpu_node_group(resource)) or (
            resource.type == GKE_NODE_POOL and _is_gpu_node_pool(resource)
        ):
            findings += _node_pool_findings(resource, node_ceiling)
        elif resource.type in KARPENTER_NODE_POOLS:
            if _is_gpu_karpenter_pool(resource):
                findings += _karpenter_findings(resource)
        elif resource.type in _SCALER_TYPES and _scales_gpus(resource, resources):
            findings += _scaler_findings(resource, replica_ceiling)
    return findings


RULE: Final = Rule(
    name="bounded-gpu-capacity",
    description="GPU node pools and GPU autoscalers must have an explicit maximum under a ceiling.",
    doc=__doc__,
    severity="high",
    enforcement="mandatory",
    check_stack=check,
    config_schema={
        "maxGpuNodes": {
            "type": "integer",
            "minimum": 1,
            "default": MAX_GPU_NODES,
            "description": "largest allowed max size of one GPU node group or pool",
        },
        "maxGpuReplicas": {
            "type": "integer",
            "minimum": 1,
            "default": MAX_GPU_REPLICAS,
            "description": "largest allowed max replica count of one GPU autoscaler",
        },
    },
)
