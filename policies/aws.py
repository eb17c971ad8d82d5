"""Reading AWS resources in wire form: which SQS queues are interruption queues.

Shared by the rules so that "is this queue Karpenter's interruption queue" has one answer: the
spot rule requires one, and the durability rule does not ask it for a dead-letter queue (its
events are stale after minutes and are not work to retry).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Final

from inferstack.contract import resource_types
from inferstack.policies.resources import UNKNOWN, Resource, list_of, mapping_of

SPOT_WARNING: Final = "EC2 Spot Instance Interruption Warning"


def _matches_spot_warning(rule: Resource) -> bool:
    pattern = rule.get("eventPattern")
    if pattern is UNKNOWN:
        return True  # computed in preview: judged once known
    if not isinstance(pattern, str):
        return False
    try:
        document = json.loads(pattern)
    except ValueError:
        return False
    detail_types = list_of(mapping_of(document).get("detail-type"))
    return SPOT_WARNING in detail_types


def interruption_queues(resources: Sequence[Resource]) -> set[str]:
    """URNs of SQS queues that an EventBridge rule for the spot warning targets."""
    by_urn = {r.urn: r for r in resources}
    queues: set[str] = set()
    for target in resources:
        if target.type != resource_types.EVENT_TARGET:
            continue
        rules = [by_urn.get(u) for u in target.property_dependencies.get("rule", ())]
        if not any(r is not None and _matches_spot_warning(r) for r in rules):
            continue
        for urn in target.property_dependencies.get("arn", ()):
            if urn in by_urn and by_urn[urn].type == resource_types.SQS_QUEUE:
                queues.add(urn)
    return queues
