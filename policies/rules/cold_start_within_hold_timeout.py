"""cold-start-within-hold-timeout: the proxy holds a request at least as long as a cold start.

Why: when a realtime service scales to zero, the KEDA HTTP add-on interceptor holds the first
request while a replica starts. If it gives up before the measured cold start (node provisioning,
image pull, model load), that request fails every time the service wakes, and so does every
request that arrives during the wake-up.

Fix: set the hold timeout (HTTPScaledObject `spec.timeouts.conditionWait`, InterceptorRoute
`spec.timeouts.readiness`) above the declared cold start, keep a warm replica (`replicas.min: 1`),
or cut the cold start (smaller image, cached weights, pre-warm before known spikes). Our
components declare the cold start in the `inferstack.io/cold-start-seconds` annotation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from inferstack.contract import resource_types
from inferstack.contract.labels import COLD_START_SECONDS_ANNOTATION
from inferstack.policies import kube
from inferstack.policies.resources import (
    Finding,
    Resource,
    as_number,
    format_number,
    get_path,
    mapping_of,
)
from inferstack.policies.rule import Rule, config_value

FAILOVER_DEFAULT_SECONDS: Final = 30.0
"""Default `coldStartTimeoutFailoverRef.timeoutSeconds` and fallback readiness (CRD defaults)."""


def _cold_start(holder: Resource, workloads: Sequence[Resource]) -> float | None:
    """The declared cold start: on the holding object, else on the workload behind it."""
    for resource in (holder, *workloads):
        notes = dict(kube.object_annotations(resource))
        notes.update(mapping_of(get_path(kube.pod_template(resource), "metadata.annotations")))
        value = as_number(notes.get(COLD_START_SECONDS_ANNOTATION))
        if value is not None:
            return value
    return None


def _http_scaled_object_hold(holder: Resource, default_wait: float) -> tuple[float, str]:
    raw = holder.get("spec.timeouts.conditionWait")
    wait = kube.go_duration_seconds(raw)
    hold, field = (
        (wait, "spec.timeouts.conditionWait")
        if wait is not None
        else (default_wait, "the interceptor's KEDA_CONDITION_WAIT_TIMEOUT")
    )
    failover = holder.get("spec.coldStartTimeoutFailoverRef")
    if isinstance(failover, Mapping):
        seconds = as_number(failover.get("timeoutSeconds"))
        seconds = FAILOVER_DEFAULT_SECONDS if seconds is None else seconds
        if seconds < hold:
            hold, field = seconds, "spec.coldStartTimeoutFailoverRef.timeoutSeconds"
    return hold, field


def _interceptor_route_hold(holder: Resource) -> tuple[float, str] | None:
    readiness = kube.go_duration_seconds(holder.get("spec.timeouts.readiness"))
    request = kube.go_duration_seconds(holder.get("spec.timeouts.request"))
    has_fallback = holder.get("spec.coldStart.fallback") is not None
    if readiness == 0 and has_fallback:
        readiness = FAILOVER_DEFAULT_SECONDS
    limits = [
        (value, field)
        for value, field in (
            (readiness, "spec.timeouts.readiness"),
            (request, "spec.timeouts.request"),
        )
        if value  # unset or "0s": no deadline
    ]
    return min(limits) if limits else None


def check(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Finding]:
    """Findings for request-holding proxies that give up before a declared cold start ends."""
    default_wait = float(config_value(config, RULE, "defaultConditionWaitSeconds"))
    findings = []
    for holder in resources:
        if holder.type == resource_types.HTTP_SCALED_OBJECT:
            minimum = as_number(holder.get("spec.replicas.min"))
            if minimum is not None and minimum >= 1:
                continue  # a warm replica answers; nobody waits for a cold start
            workload = kube.find_workload(holder, resources)
            hold: tuple[float, str] | None = _http_scaled_object_hold(holder, default_wait)
            workloads = [workload] if workload else []
        elif holder.type == resource_types.INTERCEPTOR_ROUTE:
            service_name = holder.get("spec.target.service")
            workloads = [
                w
                for w in resources
                if w.type in resource_types.WORKLOAD_TYPES
                and any(
                    kube.name_of(s) == service_name for s in kube.services_selecting(w, resources)
                )
            ]
            hold = _interceptor_route_hold(holder)
        else:
            continue
        cold_start = _cold_start(holder, workloads)
        if hold is None or cold_start is None or hold[0] >= cold_start:
            continue
        seconds, field = hold
        findings.append(
            Finding(
                f"{kube.kind_of(holder.type)} holds a request for {format_number(seconds)} s "
                f"({field}) but the declared cold start is {format_number(cold_start)} s, so "
                "requests that wake the service time out; raise the hold timeout above "
                f"{format_number(cold_start)} s, keep one warm replica, or shorten the cold start",
                holder.urn,
            )
        )
    return findings


RULE: Final = Rule(
    name="cold-start-within-hold-timeout",
    description="A request-holding proxy must wait at least as long as the declared cold start.",
    doc=__doc__,
    severity="high",
    enforcement="mandatory",
    check_stack=check,
    config_schema={
        "defaultConditionWaitSeconds": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 20,
            "description": (
                "the interceptor's KEDA_CONDITION_WAIT_TIMEOUT, used when an HTTPScaledObject "
                "sets no spec.timeouts.conditionWait"
            ),
        },
    },
)
