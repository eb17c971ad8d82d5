"""bounded-gpu-capacity: every way to add GPUs has an explicit, sane maximum.

Why: a GPU node costs dollars per hour. A node group or pool without a max size, or an autoscaler
without a max replica count (KEDA and the HTTP add-on default to 100), turns a traffic spike, a
retry storm or a stuck metric into an unbounded bill. A max above what the service was sized for
is the same risk with extra steps.

Fix: set `scalingConfig.maxSize` (EKS), `autoscaling.maxNodeCount`/`totalMaxNodeCount` (GKE),
`spec.limits["nvidia.com/gpu"]` (Karpenter NodePool), `maxReplicaCount` (ScaledObject,
ScaledJob), `replicas.max` (HTTPScaledObject) or `maxReplicas` (HPA), within the ceilings.
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


def check(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Finding]:
    """Findings for GPU capacity without a max, or with a max above the ceiling."""
    node_ceiling = float(config_value(config, RULE, "maxGpuNodes"))
    replica_ceiling = float(config_value(config, RULE, "maxGpuReplicas"))
    findings = []
    for resource in resources:
        if (resource.type == EKS_NODE_GROUP and _is_gpu_node_group(resource)) or (
            resource.type == GKE_NODE_POOL and _is_gpu_node_pool(resource)
        ):
            maximum, field = _node_max(resource)
            if maximum is None and resource.get(field.split(" ")[0]) is UNKNOWN:
                continue
            if maximum is None:
                findings.append(
                    Finding(
                        f"GPU node pool has no {field}, so it can grow without bound; set "
                        f"{field} to at most {format_number(node_ceiling)}",
                        resource.urn,
                    )
                )
            elif maximum > node_ceiling:
                findings.append(
                    Finding(
                        f"GPU node pool allows {format_number(maximum)} nodes ({field}), above "
                        f"the ceiling of {format_number(node_ceiling)}; lower {field} or raise "
                        "maxGpuNodes in the policy config if the service was sized for it",
                        resource.urn,
                    )
                )
            continue
        if resource.type in KARPENTER_NODE_POOLS and _is_gpu_karpenter_pool(resource):
            limits = mapping_of(resource.get("spec.limits"))
            gpus = [name for name in limits if kube.is_gpu_resource_name(str(name))]
            if not gpus:
                findings.append(
                    Finding(
                        "Karpenter NodePool provisions GPU instances with no GPU limit in "
                        "spec.limits, so it can launch GPUs without bound; set spec.limits"
                        '["nvidia.com/gpu"] to the GPUs the service was sized for',
                        resource.urn,
                    )
                )
            continue
        scaler_types = {
            resource_types.SCALED_OBJECT,
            resource_types.SCALED_JOB,
            resource_types.HTTP_SCALED_OBJECT,
        }
        if resource.type not in scaler_types | resource_types.HPA_TYPES:
            continue
        if not _scales_gpus(resource, resources):
            continue
        maximum, field = _replica_max(resource)
        kind = kube.kind_of(resource.type)
        if maximum is None and resource.type not in resource_types.HPA_TYPES:
            if resource.get(field) is UNKNOWN:
                continue
            findings.append(
                Finding(
                    f"{kind} scaling GPU replicas leaves {field} unset, so KEDA's default of "
                    f"{format_number(KEDA_DEFAULT_MAX)} applies; set {field} to the replicas the "
                    f"service was sized for (at most {format_number(replica_ceiling)})",
                    resource.urn,
                )
            )
        elif maximum is not None and (excess := gpu_replicas_excess(maximum, replica_ceiling)):
            findings.append(
                Finding(
                    f"{kind} allows {format_number(maximum)} GPU replicas ({field}), {excess}; "
                    f"lower {field} or raise "
                    "maxGpuReplicas in the policy config if the service was sized for it",
                    resource.urn,
                )
            )
    return findings


RULE: Final = Rule(
    name="bounded-gpu-capacity",
    description="GPU node pools and GPU autoscalers must have an explicit maximum under a ceiling.",
    why=(
        "Without a max (KEDA defaults to 100 replicas) a spike, retry storm or stuck metric buys "
        "GPUs without limit; a max far above the sized peak is the same bill with extra steps."
    ),
    remediation=(
        "Set scalingConfig.maxSize (EKS), autoscaling.maxNodeCount or totalMaxNodeCount (GKE), "
        "maxReplicaCount (ScaledObject/ScaledJob), replicas.max (HTTPScaledObject) or maxReplicas "
        "(HPA) to the peak the service was sized for, within maxGpuNodes / maxGpuReplicas."
    ),
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
