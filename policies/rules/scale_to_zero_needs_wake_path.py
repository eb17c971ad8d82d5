"""scale-to-zero-needs-wake-path: a realtime ScaledObject at zero must have a way to wake up.

Why: with `minReplicaCount: 0` and only triggers that read the workload's own pod metrics (cpu,
memory, the runtime's queue depth or in-flight gauges, GPU utilisation), the metrics vanish with
the last pod. Nothing ever reports demand again, so the service stays at zero and every request
fails. KEDA's default `minReplicaCount` is 0, so leaving it out has the same effect, and
`idleReplicaCount: 0` parks the workload at zero too. A PromQL trigger counts as a pod metric when
it reads the runtime's own series or GPU/CPU utilisation; any other query may come from outside
the pods (an ingress, a load balancer) and is trusted to wake the workload.

Fix: put a request-holding proxy in front (a KEDA HTTP add-on HTTPScaledObject, or an
InterceptorRoute plus its external-push trigger) that holds requests and wakes the workload, or
add a trigger whose source lives outside the pods (a queue, a cron pre-warm), or set
`minReplicaCount` to 1 or more.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from inferstack.contract import resource_types
from inferstack.policies import kube
from inferstack.policies.resources import Finding, Resource, as_number, mapping_of
from inferstack.policies.rule import TIER_CONFIG_SCHEMA, Rule, realtime_selector


def _has_request_holding_proxy(
    scaler: Resource, workload: Resource | None, resources: Sequence[Resource]
) -> bool:
    target_name = scaler.get("spec.scaleTargetRef.name")
    for other in resources:
        if other.type == resource_types.HTTP_SCALED_OBJECT:
            fronted = kube.find_workload(other, resources)
            if workload is not None and fronted is workload:
                return True
            same_ref = other.get("spec.scaleTargetRef.name") == target_name
            if isinstance(target_name, str) and same_ref:
                return kube.namespace_of(other) == kube.namespace_of(scaler)
        if other.type == resource_types.INTERCEPTOR_ROUTE and workload is not None:
            service = other.get("spec.target.service")
            selecting = kube.services_selecting(workload, resources)
            if any(kube.name_of(s) == service for s in selecting):
                return True
    return False


def check(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Finding]:
    """Findings for realtime ScaledObjects that can reach zero and never come back."""
    key, realtime = realtime_selector(config, RULE)
    findings = []
    for scaler in resources:
        if scaler.type != resource_types.SCALED_OBJECT:
            continue
        raw_min = scaler.get("spec.minReplicaCount")
        minimum = 0.0 if raw_min is None else as_number(raw_min)
        # idleReplicaCount 0 also parks the workload at zero whenever the triggers go quiet.
        idle = as_number(scaler.get("spec.idleReplicaCount"))
        if minimum != 0 and idle != 0:
            continue
        triggers = kube.triggers(scaler)
        if not triggers or not all(kube.reads_pod_metrics(t) for t in triggers):
            continue
        workload = kube.find_workload(scaler, resources)
        is_realtime = kube.is_realtime(kube.labels(scaler), key, realtime) or (
            workload is not None and kube.is_realtime(kube.workload_labels(workload), key, realtime)
        )
        if not is_realtime or _has_request_holding_proxy(scaler, workload, resources):
            continue
        kinds = ", ".join(sorted({str(mapping_of(t).get("type")) for t in triggers}))
        if idle == 0 and minimum != 0:
            zero = "idleReplicaCount 0"
        else:
            zero = "minReplicaCount 0" + (" (KEDA's default when unset)" if raw_min is None else "")
        findings.append(
            Finding(
                f"ScaledObject for a realtime workload has {zero} and only "
                f"pod-metric triggers ({kinds}), which disappear at zero replicas, and no "
                "HTTPScaledObject or InterceptorRoute holds requests for it; add a KEDA HTTP "
                "add-on proxy, a trigger outside the pods, or set minReplicaCount >= 1",
                scaler.urn,
            )
        )
    return findings


RULE: Final = Rule(
    name="scale-to-zero-needs-wake-path",
    description="A realtime workload that scales to zero needs a wake-up path outside its pods.",
    doc=__doc__,
    severity="critical",
    enforcement="mandatory",
    check_stack=check,
    config_schema=TIER_CONFIG_SCHEMA,
)
