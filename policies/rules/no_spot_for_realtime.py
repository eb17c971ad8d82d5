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

from collections.abc import Mapping
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
TYPES: Final = (
    frozenset({EKS_NODE_GROUP, GKE_NODE_POOL, GKE_CLUSTER, COMPUTE_CLASS})
    | KARPENTER_NODE_POOLS
    | resource_types.WORKLOAD_TYPES
)


def check(resource: Resource, config: Mapping[str, Any]) -> list[str]:
    """Messages for a realtime node pool or workload that admits spot capacity."""
    if resource.type not in TYPES:
        return []
    key, realtime = realtime_selector(config, RULE)
    if resource.type == EKS_NODE_GROUP:
        node_labels = mapping_of(resource.get("labels"))
        capacity = resource.get("capacityType")
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
    if resource.type in {GKE_NODE_POOL, GKE_CLUSTER}:
        node_config = mapping_of(resource.get("nodeConfig"))
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
    if resource.type == COMPUTE_CLASS:
        if mapping_of(resource.get("metadata.labels")).get(key) != realtime:
            return []
        spot_rules = [
            index
            for index, rule in enumerate(list_of(resource.get("spec.priorities")))
            if is_true(mapping_of(rule).get("spot"))
        ]
        if spot_rules:
            return [
                f"GKE ComputeClass labelled {key}={realtime} admits Spot VMs "
                f"(spec.priorities[{spot_rules[0]}].spot); set spot: false on every priority, "
                "or move spot capacity to a batch-tier ComputeClass"
            ]
        return []
    if resource.type in KARPENTER_NODE_POOLS:
        template = mapping_of(resource.get("spec.template"))
        if mapping_of(get_path(template, "metadata.labels")).get(key) != realtime:
            return []
        for requirement in list_of(get_path(template, "spec.requirements")):
            requirement = mapping_of(requirement)
            values = [str(v).lower() for v in list_of(requirement.get("values"))]
            operator = requirement.get("operator")
            if requirement.get("key") == KARPENTER_CAPACITY_TYPE and (
                (operator == "In" and "spot" in values)
                or operator == "Exists"
                or (operator == "NotIn" and "on-demand" in values)
            ):
                return [
                    f"Karpenter NodePool labelled {key}={realtime} allows "
                    "karpenter.sh/capacity-type spot; require "
                    "karpenter.sh/capacity-type In [on-demand]"
                ]
        return []
    if not kube.is_realtime(kube.workload_labels(resource), key, realtime):
        return []
    admission = kube.spot_admission(kube.pod_spec(resource))
    if admission is None:
        return []
    return [
        f"{kube.kind_of(resource.type)} labelled {key}={realtime} admits spot nodes through "
        f"{admission.reason}; remove it from the pod template and select on-demand nodes instead "
        "(e.g. nodeSelector karpenter.sh/capacity-type=on-demand or "
        "eks.amazonaws.com/capacityType=ON_DEMAND)"
    ]


RULE: Final = Rule(
    name="no-spot-for-realtime",
    description="Realtime inference must not run on spot or preemptible capacity.",
    why=(
        "Spot nodes are reclaimed with 30 s to 2 min notice; synchronous requests on them fail or "
        "wait a full cold start, breaking the latency budget when capacity is scarcest."
    ),
    remediation=(
        "Use on-demand capacity for realtime node groups/pools (EKS capacityType ON_DEMAND, GKE "
        "without spot/preemptible, Karpenter capacity-type on-demand) and remove spot node "
        "selectors, affinities and tolerations from realtime pod templates. Keep spot for the "
        "batch tier, whose queue work survives interruptions."
    ),
    severity="high",
    enforcement="mandatory",
    check_resource=check,
    config_schema=TIER_CONFIG_SCHEMA,
)
