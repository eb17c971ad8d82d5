"""sagemaker-async-wake: an asynchronous endpoint that scales to zero needs its wake alarm.

Why: an asynchronous endpoint's variant may scale to zero instances (its scalable target's
`minCapacity: 0`), and requests then wait in SageMaker's queue. But target tracking on
`ApproximateBacklogSizePerInstance` cannot bring it back: with no instance there is no
per-instance value to track. "Autoscale an asynchronous endpoint"
(https://docs.aws.amazon.com/sagemaker/latest/dg/async-inference-autoscale.html) wakes it with a
step scaling policy on a `HasBacklogWithoutCapacity` alarm; without one the queue grows until
its requests expire, and nothing fails loudly. `inferstack simulate` shows the wake's cost: the
alarm's period times its datapoints, then an instance start.

Fix: add a StepScaling policy on the variant's scalable target (`ChangeInCapacity` +1) and a
CloudWatch alarm on `HasBacklogWithoutCapacity` (namespace `AWS/SageMaker`, dimension
`EndpointName`) whose alarm action is that policy, as the SageMaker component does; or keep
`minCapacity` at 1 or more.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from inferstack.policies import sagemaker
from inferstack.policies.resources import (
    UNKNOWN,
    Finding,
    Resource,
    as_number,
    list_of,
    mapping_of,
)
from inferstack.policies.rule import Rule


def _endpoint(target: Resource) -> str | None:
    """The endpoint name in a variant's resource id (`endpoint/<name>/variant/<variant>`)."""
    resource_id = target.get("resourceId")
    if not isinstance(resource_id, str):
        return None
    parts = resource_id.split("/")
    return parts[1] if len(parts) == 4 and parts[0] == "endpoint" else None


def _alarm_endpoint(alarm: Resource) -> str | None:
    dimensions = alarm.get("dimensions")
    if isinstance(dimensions, Mapping):
        name = dimensions.get(sagemaker.NAMES.endpoint_dimension)
        return name if isinstance(name, str) else None
    for entry in list_of(dimensions):
        item = mapping_of(entry)
        if item.get("name") == sagemaker.NAMES.endpoint_dimension:
            value = item.get("value")
            return value if isinstance(value, str) else None
    return None


def _has_wake(target: Resource, resources: Sequence[Resource]) -> bool:
    steps = [
        policy
        for policy in sagemaker.policies_of(target, resources)
        if policy.get("policyType") == "StepScaling"
    ]
    endpoint = _endpoint(target)
    alarms = [
        r
        for r in resources
        if r.type == sagemaker.METRIC_ALARM
        and r.get("metricName") == sagemaker.NAMES.backlog_without_capacity
        and (r.get("alarmActions") or r.get("alarmActions") is UNKNOWN)
        # An alarm on another endpoint wakes that one; an unknown name is given the benefit.
        and (endpoint is None or _alarm_endpoint(r) in (None, endpoint))
    ]
    return bool(steps) and bool(alarms)


def check(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Finding]:
    """Findings for variant scalable targets that may reach zero with nothing to wake them."""
    findings = []
    for target in sagemaker.sagemaker_targets(resources):
        if target.get("scalableDimension") != sagemaker.NAMES.instance_count:
            continue
        # Only an asynchronous endpoint's variant may scale to zero instances this way (a
        # realtime endpoint does so through inference components): min 0 means async.
        if as_number(target.get("minCapacity")) != 0 or _has_wake(target, resources):
            continue
        findings.append(
            Finding(
                f"{target.get('resourceId', 'variant')}: minCapacity 0 and no "
                f"{sagemaker.NAMES.backlog_without_capacity} alarm with a step scaling policy: "
                "target tracking cannot leave zero instances, so queued requests wait until "
                "they expire; add the alarm and a ChangeInCapacity +1 step policy, or keep "
                "minCapacity at 1 or more",
                target.urn,
            )
        )
    return findings


RULE: Final = Rule(
    name="sagemaker-async-wake",
    description="An asynchronous SageMaker endpoint at zero instances has a wake alarm.",
    doc=__doc__,
    severity="high",
    enforcement="mandatory",
    check_stack=check,
)
