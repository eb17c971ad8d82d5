"""gpu-capacity-follows-demand: a GPU inference workload's replica count can follow its demand.

Why: the commonest waste in GPU inference is an endpoint that runs at a fixed size, the same
GPUs at 3am with no traffic as at the daily peak: a Deployment with `replicas: N` and no
autoscaler, or an autoscaler whose minimum equals its maximum, pays for its peak around the
clock (and cannot grow past it when demand does). Public example programs do exactly this (the
self-hosted LLM servers in pulumi/examples run one GPU replica forever), and every other rule
passes them.

Fix: give the workload an autoscaler on a demand signal (a KEDA ScaledObject on queue depth or
in-flight requests, an HPA on an external metric, or the KEDA HTTP add-on to reach zero) with a
minimum below its maximum; or, for a deliberately fixed endpoint, set `allowFixedReplicas` to its
size. Advisory by default: a fixed size may be a decision, but it should be a visible one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from inferstack.contract import resource_types
from inferstack.policies import kube
from inferstack.policies.resources import Finding, Resource, as_number, format_number
from inferstack.policies.rule import Rule, config_value

SCALABLE: Final = frozenset({resource_types.DEPLOYMENT, resource_types.STATEFUL_SET})
"""Workloads an autoscaler can resize (a DaemonSet, Job or bare Pod is sized otherwise)."""
Bounds = tuple[str, float | None, str, float | None]
"""(min path, its default, max path, its default): the defaults each API applies."""
HPA_BOUNDS: Final[Bounds] = ("spec.minReplicas", 1.0, "spec.maxReplicas", None)
BOUNDS: Final[Mapping[str, Bounds]] = {
    resource_types.SCALED_OBJECT: ("spec.minReplicaCount", 0.0, "spec.maxReplicaCount", 100.0),
    resource_types.HTTP_SCALED_OBJECT: ("spec.replicas.min", 0.0, "spec.replicas.max", None),
    **dict.fromkeys(resource_types.HPA_TYPES, HPA_BOUNDS),
}
"""KEDA ScaledObject (minReplicaCount 0, maxReplicaCount 100), HTTPScaledObject, HPA
(minReplicas 1; maxReplicas required)."""


def _bounds(scaler: Resource) -> tuple[float | None, float | None]:
    min_path, min_default, max_path, max_default = BOUNDS[scaler.type]
    low, high = as_number(scaler.get(min_path)), as_number(scaler.get(max_path))
    return (min_default if low is None else low), (max_default if high is None else high)


def _autoscalers(workload: Resource, resources: Sequence[Resource]) -> list[Resource]:
    return [
        scaler
        for scaler in resources
        if scaler.type in BOUNDS and kube.find_workload(scaler, resources) is workload
    ]


def _replicas(workload: Resource) -> float:
    replicas = as_number(workload.get("spec.replicas"))
    return 1.0 if replicas is None else replicas


def _finding(workload: Resource, scalers: Sequence[Resource], allowed: float) -> str | None:
    kind = kube.kind_of(workload.type)
    if not scalers:
        replicas = _replicas(workload)
        if replicas <= allowed:
            return None
        return (
            f"GPU {kind} runs a fixed {format_number(replicas)} replica(s) and no autoscaler "
            "targets it, so it pays for its peak at every hour; add a KEDA ScaledObject or HPA "
            "on a demand signal (queue depth, in-flight requests) with min below max"
        )
    for scaler in scalers:
        low, high = _bounds(scaler)
        if low is not None and low == high and low > allowed:
            return (
                f"GPU {kind} is scaled by {kube.kind_of(scaler.type)} {kube.name_of(scaler)} "
                f"whose minimum equals its maximum ({format_number(low)}), so its capacity "
                "cannot follow demand; set the minimum below the maximum"
            )
    return None


def check(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Finding]:
    """Findings for GPU workloads no autoscaler can resize."""
    allowed = float(config_value(config, RULE, "allowFixedReplicas"))
    findings = []
    for workload in resources:
        if workload.type not in SCALABLE or not kube.requests_gpu(kube.pod_spec(workload)):
            continue
        message = _finding(workload, _autoscalers(workload, resources), allowed)
        if message:
            findings.append(Finding(message, workload.urn))
    return findings


RULE: Final = Rule(
    name="gpu-capacity-follows-demand",
    description="A GPU inference workload needs an autoscaler whose minimum is below its maximum.",
    doc=__doc__,
    severity="medium",
    enforcement="advisory",
    check_stack=check,
    config_schema={
        "allowFixedReplicas": {
            "type": "integer",
            "minimum": 0,
            "default": 0,
            "description": (
                "a fixed GPU workload (no autoscaler, or min equal to max) of at most this many "
                "replicas passes: 0 flags every one"
            ),
        }
    },
)
