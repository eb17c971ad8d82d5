"""spot-interruption-handling: spot capacity comes with an interruption queue that is read.

Why: EC2 announces a spot reclaim two minutes ahead, on EventBridge. Karpenter (or the Node
Termination Handler, for managed node groups) only hears it through an SQS queue fed by an
EventBridge rule for "EC2 Spot Instance Interruption Warning". Without that queue, nobody drains
the node: the worker on it is killed mid-job when the instance stops, and its message waits out
the visibility timeout before anyone retries it. A Karpenter Helm release without
`settings.interruptionQueue` is the same failure (eksctl #7697: a wrong key silently disabled
it). Karpenter reads exactly one queue (its `--interruption-queue`, chart value
`settings.interruptionQueue`; aws/karpenter-provider-aws `pkg/operator/options`), so a second
interruption queue in the stack, one the Karpenter here (or the one named in
`externalInterruptionQueue`) does not read, drains nothing: its events go nowhere.

Fix: create an SQS queue with EventBridge rules for the spot interruption warning (and
rebalance, state-change and AWS Health events) targeting it, and set Karpenter's
`settings.interruptionQueue` to it; or, when Karpenter is installed outside this stack, name the
queue it reads in this rule's `externalInterruptionQueue` setting, and share that one queue.
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


def _is_karpenter(release: Resource) -> bool:
    if release.type != resource_types.HELM_RELEASE:
        return False
    chart = release.get("chart")
    return isinstance(chart, str) and chart.rstrip("/").rsplit("/", 1)[-1] == KARPENTER_CHART


def _read_queue(release: Resource) -> Any:
    """The queue a Karpenter release reads: a name, UNKNOWN (computed), or None."""
    queue = get_path(mapping_of(release.get("values")), "settings.interruptionQueue")
    return queue if queue is UNKNOWN or (isinstance(queue, str) and queue) else None


def _missing_queue(release: Resource) -> Finding:
    return Finding(
        "Karpenter Helm release has no settings.interruptionQueue, so Karpenter never hears of "
        "spot interruptions and nodes vanish under running pods; set values.settings."
        "interruptionQueue to the interruption queue's name",
        release.urn,
    )


def _unread(queues: Sequence[Resource], read: set[str]) -> list[Resource]:
    """Interruption queues with a known name that no known reader reads."""
    return [q for q in queues if isinstance(q.get("name"), str) and q.get("name") not in read]


def _unread_finding(queue: Resource, read: set[str]) -> Finding:
    return Finding(
        f"interruption queue {queue.get('name')} is not the queue Karpenter reads "
        f"({', '.join(sorted(read))}): Karpenter reads one --interruption-queue, so this queue's "
        "events drain nothing; share the queue Karpenter reads instead of creating another",
        queue.urn,
    )


def _no_queue_finding(resource: Resource, reason: str) -> Finding:
    return Finding(
        f"{reason}, but the stack has no interruption queue that Karpenter reads (an SQS queue "
        f"targeted by an EventBridge rule for {SPOT_WARNING!r}, named in Karpenter's "
        "settings.interruptionQueue), so no one drains a node before EC2 reclaims it; add the "
        "queue and its rules and point Karpenter's settings.interruptionQueue at it, or set "
        "externalInterruptionQueue",
        resource.urn,
    )


def check(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Finding]:
    """Findings for spot capacity without an interruption queue Karpenter reads, Karpenter
    without a queue, and interruption queues Karpenter does not read."""
    external = str(config_value(config, RULE, "externalInterruptionQueue") or "")
    releases = [r for r in resources if _is_karpenter(r)]
    findings = [_missing_queue(r) for r in releases if _read_queue(r) is None]
    readers = [_read_queue(r) for r in releases]
    read = {q for q in readers if isinstance(q, str)} | ({external} if external else set())
    by_urn = {r.urn: r for r in resources}
    queues = [by_urn[urn] for urn in sorted(aws.interruption_queues(resources))]
    # Nobody known reads a queue (Karpenter outside the stack, unnamed): judged by presence.
    unread = [] if UNKNOWN in readers or not read else _unread(queues, read)
    findings += [_unread_finding(queue, read) for queue in unread]
    if external or UNKNOWN in readers or len(unread) < len(queues):
        return findings
    for resource in resources:
        reason = _spot_capacity(resource)
        if reason:
            findings.append(_no_queue_finding(resource, reason))
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
            "description": (
                "name of the interruption queue the cluster's Karpenter reads, when Karpenter is "
                "installed outside this stack"
            ),
        }
    },
)
