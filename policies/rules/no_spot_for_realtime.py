"""no-spot-for-realtime: realtime inference never runs on spot or preemptible capacity.

Why: spot capacity is reclaimed with 30 s (GCP, Azure) to 2 min (AWS) notice. A synchronous
request on a reclaimed node fails or waits a full cold start, so the latency budget breaks exactly
when capacity is scarce. Spot belongs to queue work that can be retried.

Fix: run realtime pools on on-demand capacity (EKS `capacityType: ON_DEMAND`, GKE pools without
`spot`/`preemptible`, GKE ComputeClass priorities without `spot: true`, Karpenter
`karpenter.sh/capacity-type In [on-demand]`), and drop spot node selectors, affinities and
tolerations from realtime pod templates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from inferstack.contract import resource_types
from inferstack.contract.clouds import KARPENTER_CAPACITY_TYPE
from inferstack.policies import kube
from inferstack.policies.resources import Resource, get_path, is_true, list_of, mapping_of
from inferstack.policies.rule import TIER_CONFIG_SCHEMA, Rule, realtime_selector

EKS_NODE_GROUP: Final = resource_types.EKS_NODE_GROUP
GKE_NODE_POOL: Final = resource_types.GKE_NODE_POOL
GKE_CLUSTER: Final = resource_types.GKE_CLUSTER
KARPENTER_NODE_POOLS: Final = resource_types.KARPENTER_NODE_POOLS
COMPUTE_CLASS: Final = resource_types.COMPUTE_CLASS


def _eks_messages(group: Resource, key: str, realtime: str) -> list[str]:
    node_labels = mapping_of(group.get("labels"))
    capacity = group.get("capacityType")
    if (
        node_labels.get(key) == realtime
        and isinstance(capacity, str)
        and capacity.upper() == "SPOT"
    ):
        return [
            f"EKS node group labelled {key}={realtime} has capacityType SPOT; "
            "set capacityType to ON_DEMAND, or move spot capacity to a batch-tier node group"
        ]
    return []


def _gke_messages(pool: Resource, key: str, realtime: str) -> list[str]:
    node_config = mapping_of(pool.get("nodeConfig"))
    node_labels = mapping_of(node_config.get("labels"))
    if node_labels.get(key) != realtime:
        return []
    flags = [flag for flag in ("spot", "preemptible") if is_true(node_config.get(flag))]
    if flags:
        return [
            f"GKE node pool labelled {key}={realtime} sets nodeConfig.{flags[0]}; remove "
            f"nodeConfig.{flags[0]} (on-demand VMs), or move spot capacity to a batch-tier pool"
        ]
    return []


def _compute_class_messages(compute_class: Resource, key: str, realtime: str) -> list[str]:
    if mapping_of(compute_class.get("metadata.labels")).get(key) != realtime:
        return []
    spot_rules = [
        index
        for index, rule in enumerate(list_of(compute_class.get("spec.priorities")))
        if is_true(mapping_of(rule).get("spot"))
    ]
    if spot_rules:
        return [
            f"GKE ComputeClass labelled {key}={realtime} admits Spot VMs "
            f"(spec.priorities[{spot_rules[0]}].spot); set spot: false on every priority, "
            "or move spot capacity to a batch-tier ComputeClass"
        ]
    return []


def _admits_spot(requirement: Mapping[str, Any]) -> bool:
    """Whether a Karpenter capacity-type requirement lets spot instances in."""
    if requirement.get("key") != KARPENTER_CAPACITY_TYPE:
        return False
    values = [str(v).lower() for v in list_of(requirement.get("values"))]
    operator = requirement.get("operator")
    return (
        (operator == "In" and "spot" in values)
        or operator == "Exists"
        or (operator == "NotIn" and "on-demand" in values)
    )


def _karpenter_messages(pool: Resource, key: str, realtime: str) -> list[str]:
    template = mapping_of(pool.get("spec.template"))
    if mapping_of(get_path(template, "metadata.labels")).get(key) != realtime:
        return []
    requirements = list_of(get_path(template, "spec.requirements"))
    if any(_admits_spot(mapping_of(requirement)) for requirement in requirements):
        return [
            f"Karpenter NodePool labelled {key}={realtime} allows "
            "karpenter.sh/capacity-type spot; require "
            "karpenter.sh/capacity-type In [on-demand]"
        ]
    return []


def _workload_messages(workload: Resource, key: str, realtime: str) -> list[str]:
    if not kube.is_realtime(kube.workload_labels(workload), key, realtime):
        return []
    admission = kube.spot_admission(kube.pod_spec(workload))
    if admission is None:
        return []
    return [
        f"{kube.kind_of(workload.type)} labelled {key}={realtime} admits spot nodes through "
        f"{admission.reason}; remove it from the pod template and select on-demand nodes instead "
        "(e.g. nodeSelector karpenter.sh/capacity-type=on-demand or "
        "eks.amazonaws.com/capacityType=ON_DEMAND)"
    ]


_BY_TYPE: Final[dict[str, Callable[[Resource, str, str], list[str]]]] = {
    EKS_NODE_GROUP: _eks_messages,
    GKE_NODE_POOL: _gke_messages,
    GKE_CLUSTER: _gke_messages,
    COMPUTE_CLASS: _compute_class_messages,
    **dict.fromkeys(KARPENTER_NODE_POOLS, _karpenter_messages),
    **dict.fromkeys(resource_types.WORKLOAD_TYPES, _workload_messages),
}
"""Each judged resource type's check, by type token."""
TYPES: Final = frozenset(_BY_TYPE)


def check(resource: Resource, config: Mapping[str, Any]) -> list[str]:
    """Messages for a realtime node pool or workload that admits spot capacity."""
    messages = _BY_TYPE.get(resource.type)
    if messages is None:
        return []
    key, realtime = realtime_selector(config, RULE)
    return messages(resource, key, realtime)


RULE: Final = Rule(
    name="no-spot-for-realtime",
    description="Realtime inference must not run on spot or preemptible capacity.",
    doc=__doc__,
    severity="high",
    enforcement="mandatory",
    check_resource=check,
    config_schema=TIER_CONFIG_SCHEMA,
)
