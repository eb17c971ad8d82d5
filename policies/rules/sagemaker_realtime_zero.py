"""sagemaker-realtime-zero: a realtime SageMaker endpoint at zero instances answers errors.

Why: SageMaker holds no request while an endpoint has no instance: every invocation fails
(NoCapacityInvocationFailures) until the step policy on that alarm has added a copy and the
instance has started, which takes minutes ("Scale an endpoint to zero instances": "During that
time, any attempts to invoke the endpoint will produce an error"). A realtime variant whose
managed instance scaling may reach 0 therefore fails its callers for a whole cold start after
every idle spell, and without the wake alarm it never comes back at all.

Fix: keep `managedInstanceScaling.minInstanceCount` at 1 or more for traffic that cannot retry
for minutes; or accept the errors knowingly: tag the endpoint configuration
`inferstack.io/cold-start-over-budget: accepted` (the component does so when the spec sets
`realtime.allow_cold_start_over_budget`) and wake it with a step policy on a
`NoCapacityInvocationFailures` alarm. An asynchronous endpoint queues instead: not judged here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from inferstack.contract.sagemaker import COLD_START_ACCEPTED_TAG, COLD_START_ACCEPTED_VALUE
from inferstack.policies import sagemaker
from inferstack.policies.resources import Finding, Resource, as_number, mapping_of
from inferstack.policies.rule import Rule


def _has_wake_alarm(resources: Sequence[Resource]) -> bool:
    return any(
        r.type == sagemaker.METRIC_ALARM
        and r.get("metricName") == sagemaker.NAMES.no_capacity_failures
        and r.get("alarmActions")
        for r in resources
    )


def check(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Finding]:
    """Findings for realtime variants that may scale to zero instances."""
    findings = []
    for resource in resources:
        if resource.type != sagemaker.ENDPOINT_CONFIG or sagemaker.is_async(resource):
            continue
        accepted = mapping_of(resource.get("tags")).get(COLD_START_ACCEPTED_TAG)
        for variant in sagemaker.variants(resource):
            scaling = mapping_of(variant.get("managedInstanceScaling"))
            if (
                scaling.get("status") != "ENABLED"
                or as_number(scaling.get("minInstanceCount")) != 0
            ):
                continue
            name = variant.get("variantName", "?")
            if accepted != COLD_START_ACCEPTED_VALUE:
                findings.append(
                    Finding(
                        f"variant {name}: minInstanceCount 0 on a realtime endpoint: SageMaker "
                        "answers every request with an error for a whole cold start after an "
                        "idle spell; keep 1 or more, or tag the configuration "
                        f"{COLD_START_ACCEPTED_TAG}: {COLD_START_ACCEPTED_VALUE}",
                        resource.urn,
                    )
                )
            elif not _has_wake_alarm(resources):
                findings.append(
                    Finding(
                        f"variant {name}: at zero instances nothing wakes it; add a step "
                        f"scaling policy on a {sagemaker.NAMES.no_capacity_failures} alarm",
                        resource.urn,
                    )
                )
    return findings


RULE: Final = Rule(
    name="sagemaker-realtime-zero",
    description="A realtime SageMaker endpoint may scale to zero only knowingly, with a wake path.",
    doc=__doc__,
    severity="high",
    enforcement="mandatory",
    check_stack=check,
)
