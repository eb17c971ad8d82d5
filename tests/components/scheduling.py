"""The kube-scheduler's node filters that decide spot placement, for testing pod specs.

Implements the semantics of `nodeSelector`, required/preferred node affinity (terms ORed,
expressions ANDed; `NotIn` and `DoesNotExist` match nodes without the label) and NoSchedule /
NoExecute taints against tolerations, as documented for Kubernetes, so a test can ask "would this
pod land on that node" for nodes labelled and tainted the way each platform does it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Node:
    """A node as the scheduler sees it: labels and taints."""

    name: str
    labels: dict[str, str]
    taints: list[dict[str, str]] = field(default_factory=list)
    spot: bool = False


def _expression_matches(expression: dict[str, Any], labels: dict[str, str]) -> bool:
    key: str = expression["key"]
    operator: str = expression["operator"]
    values: list[str] = expression.get("values", [])
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    if operator in {"Gt", "Lt"}:
        if key not in labels:
            return False
        return (int(labels[key]) > int(values[0])) == (operator == "Gt")
    raise ValueError(f"unknown operator {operator}")


def term_matches(term: dict[str, Any], labels: dict[str, str]) -> bool:
    """A node selector term: every expression must match (an empty term matches nothing)."""
    expressions = term.get("matchExpressions", []) + term.get("matchFields", [])
    return bool(expressions) and all(_expression_matches(e, labels) for e in expressions)


def _tolerates(toleration: dict[str, Any], taint: dict[str, str]) -> bool:
    if toleration.get("effect") and toleration["effect"] != taint["effect"]:
        return False
    operator: str = toleration.get("operator", "Equal")
    if not toleration.get("key"):
        return operator == "Exists"
    if toleration["key"] != taint["key"]:
        return False
    return operator == "Exists" or str(toleration.get("value", "")) == taint.get("value", "")


def schedulable(pod_spec: dict[str, Any], node: Node) -> bool:
    """Whether the scheduler's filters admit the pod on the node."""
    for key, value in (pod_spec.get("nodeSelector") or {}).items():
        if node.labels.get(key) != value:
            return False
    required = (
        (pod_spec.get("affinity") or {})
        .get("nodeAffinity", {})
        .get("requiredDuringSchedulingIgnoredDuringExecution")
    )
    if required is not None and not any(
        term_matches(term, node.labels) for term in required["nodeSelectorTerms"]
    ):
        return False
    tolerations = pod_spec.get("tolerations") or []
    for taint in node.taints:
        if taint["effect"] not in {"NoSchedule", "NoExecute"}:
            continue
        if not any(_tolerates(toleration, taint) for toleration in tolerations):
            return False
    return True


def preference_score(pod_spec: dict[str, Any], node: Node) -> int:
    """Sum of the weights of the preferred node affinity terms the node matches."""
    preferred = (
        (pod_spec.get("affinity") or {})
        .get("nodeAffinity", {})
        .get("preferredDuringSchedulingIgnoredDuringExecution", [])
    )
    return sum(p["weight"] for p in preferred if term_matches(p["preference"], node.labels))


GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}

NODES: list[Node] = [
    # EKS managed node groups label every node with its capacity type; no spot taint by default.
    Node("eks-on-demand", {"eks.amazonaws.com/capacityType": "ON_DEMAND"}, [GPU_TAINT]),
    Node("eks-spot", {"eks.amazonaws.com/capacityType": "SPOT"}, [GPU_TAINT], spot=True),
    Node(
        "eks-spot-tainted",
        {"eks.amazonaws.com/capacityType": "SPOT"},
        [
            GPU_TAINT,
            {"key": "eks.amazonaws.com/capacityType", "value": "SPOT", "effect": "NoSchedule"},
        ],
        spot=True,
    ),
    # Karpenter labels every node it launches with its capacity type.
    Node("karpenter-on-demand", {"karpenter.sh/capacity-type": "on-demand"}, [GPU_TAINT]),
    Node("karpenter-spot", {"karpenter.sh/capacity-type": "spot"}, [GPU_TAINT], spot=True),
    # GKE labels (and, with mixed pools, taints) only spot / preemptible nodes.
    Node("gke-standard", {"cloud.google.com/gke-nodepool": "gpu"}, [GPU_TAINT]),
    Node(
        "gke-spot",
        {"cloud.google.com/gke-spot": "true"},
        [GPU_TAINT, {"key": "cloud.google.com/gke-spot", "value": "true", "effect": "NoSchedule"}],
        spot=True,
    ),
    Node("gke-spot-untainted", {"cloud.google.com/gke-spot": "true"}, [GPU_TAINT], spot=True),
    Node(
        "gke-preemptible",
        {"cloud.google.com/gke-preemptible": "true"},
        [
            GPU_TAINT,
            {"key": "cloud.google.com/gke-preemptible", "value": "true", "effect": "NoSchedule"},
        ],
        spot=True,
    ),
    Node("gke-provisioning-spot", {"cloud.google.com/gke-provisioning": "spot"}, [], spot=True),
    # AKS always taints spot pools and labels them with their priority.
    Node(
        "aks-spot",
        {"kubernetes.azure.com/scalesetpriority": "spot"},
        [
            {
                "key": "kubernetes.azure.com/scalesetpriority",
                "value": "spot",
                "effect": "NoSchedule",
            }
        ],
        spot=True,
    ),
    Node("aks-regular", {"kubernetes.azure.com/agentpool": "gpu"}, []),
]
"""Nodes labelled and tainted as each platform does it, spot and on-demand."""
