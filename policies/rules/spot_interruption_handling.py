"""spot-interruption-handling: spot capacity comes with an interruption queue that is read.

Why: EC2 announces a spot reclaim two minutes ahead, on EventBridge. Karpenter (or the Node
Termination Handler, for managed node groups) only hears it through an SQS queue fed by an
EventBridge rule for "EC2 Spot Instance Interruption Warning". Without that queue, nobody drains
the node: the worker on it is killed mid-job when the instance stops, and its message waits out
the visibility timeout before anyone retries it. A Karpenter Helm release without
`settings.interruptionQueue` is the same failure (eksctl #7697: a wrong key silently disabled
it).

Fix: create an SQS queue with EventBridge rules for the spot interruption warning (and
rebalance, state-change and AWS Health events) targeting it, and set Karpenter's
`settings.interruptionQueue` to it; or, when the queue lives in another stack, name it in this
rule's `externalInterruptionQueue` setting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from inferstack.contract import resource_types
from inferstack.contract.clouds import KARPENTER_CAPACITY_TYPE
from inferstack.policies import aws
from inferstack.policies.resources import (
    UNKNOWN,
    Finding,
    Resource,
    get_path,
    list_of,
    mapping_of,
)
from inferstack.policies.rule import Rule, config_value

SPOT_WARNING: Final = aws.SPOT_WARNING
CAPACITY_TYPE_KEY: Final = KARPENTER_CAPACITY_TYPE
KARPENTER_CHART: Final = "karpenter"


def _karpenter_allows_spot(pool: Resource) -> bool:
    for requirement in list_of(pool.get("spec.template.spec.requirements")):
        requirement = mapping_of(requirement)
        if requirement.get("key") != CAPACITY_TYPE_KEY:
            continue
        values = [str(v).lower() for v in list_of(requirement.get("values"))]
        operator = requirement.get("operator")
        if (operator == "In" and "spot" in values) or operator == "Exists":
            return True
        if operator == "NotIn" and "on-demand" in values:
            return True
    return False  # Karpenter's default without a capacity-type requirement is on-demand


def _spot_capacity(resource: Resource) -> str | None:
    """What makes this resource spot capacity, or None."""
    if resource.type in resource_types.KARPENTER_NODE_POOLS and _karpenter_allows_spot(resource):
        return "Karpenter NodePool allows karpenter.sh/capacity-type spot"
    capacity = resource.get("capacityType")
    spot_group = isinstance(capacity, str) and capacity.upper() == "SPOT"
    if resource.type == resource_types.EKS_NODE_GROUP and spot_group:
        return "EKS managed node group has capacityType SPOT"
    return None


def _karpenter_release_problem(release: Resource) -> str | None:
    if release.type != resource_types.HELM_RELEASE:
        return None
    chart = release.get("chart")
    if not isinstance(chart, str) or chart.rstrip("/").rsplit("/", 1)[-1] != KARPENTER_CHART:
        return None
    queue = get_path(mapping_of(release.get("values")), "settings.interruptionQueue")
    if queue is UNKNOWN or (isinstance(queue, str) and queue):
        return None
    return (
        "Karpenter Helm release has no settings.interruptionQueue, so Karpenter never hears of "
        "spot interruptions and nodes vanish under running pods; set values.settings."
        "interruptionQueue to the interruption queue's name"
    )


def check(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Finding]:
    """Findings for spot capacity without an interruption queue, and Karpenter without one."""
    external = str(config_value(config, RULE, "externalInterruptionQueue") or "")
    findings = [
        Finding(problem, resource.urn)
        for resource in resources
        if (problem := _karpenter_release_problem(resource))
    ]
    if external or aws.interruption_queues(resources):
        return findings
    for resource in resources:
        reason = _spot_capacity(resource)
        if reason:
            findings.append(
                Finding(
                    f"{reason}, but the stack has no interruption queue (an SQS queue targeted "
                    f"by an EventBridge rule for {SPOT_WARNING!r}), so no one drains a node "
                    "before EC2 reclaims it; add the queue and its rules and point Karpenter's "
                    "settings.interruptionQueue at it, or set externalInterruptionQueue",
                    resource.urn,
                )
            )
    return findings


RULE: Final = Rule(
    name="spot-interruption-handling",
    description="Spot capacity needs an interruption queue fed by EventBridge, read by Karpenter.",
    doc=__doc__,
    severity="high",
    enforcement="mandatory",
    check_stack=check,
    config_schema={
        "externalInterruptionQueue": {
            "type": "string",
            "default": "",
            "description": "name of an interruption queue managed outside this stack",
        }
    },
)
