"""scale-to-zero-needs-wake-path: a realtime ScaledObject at zero must have a way to wake up.

Why: with `minReplicaCount: 0` and only triggers that read the workload's own pod metrics (cpu,
memory, the runtime's queue depth or in-flight gauges, GPU utilisation), the metrics vanish with
the last pod. Nothing ever reports demand again, so the service stays at zero and every request
fails. KEDA's default `minReplicaCount` is 0, so leaving it out has the same effect, and
`idleReplicaCount: 0` parks the workload at zero too. A PromQL trigger counts as a pod metric when
it reads the runtime's own series or GPU/CPU utilisation; any other query may come from outside
the pods (an ingress, a load balancer) and is trusted to wake the workload. A cron trigger wakes
it only inside its window, so it is no wake path for a request at any other hour. The KEDA HTTP
add-on wakes a workload only through the ScaledObject's `external-push` trigger: an
InterceptorRoute is read by the add-on's scaler only when a trigger names it
(`metadata.interceptorRoute`, kedacore/http-add-on `scaler/handlers.go`), and an HTTPScaledObject
creates a ScaledObject of its own unless annotated
`httpscaledobject.keda.sh/skip-scaledobject-creation: "true"` (kedacore/http-add-on
`operator/controllers/http/app.go`); beside another ScaledObject on the same workload, KEDA's
admission webhook rejects it ("is already managed by the ScaledObject",
`apis/keda/v1alpha1/scaledobject_webhook.go`).

Fix: add the HTTP add-on's `external-push` trigger (`interceptorRoute: <route>` or
`httpScaledObject: <name>` with the skip annotation on the HTTPScaledObject), or a trigger whose
source lives outside the pods (a queue), or set `minReplicaCount` to 1 or more.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from inferstack.contract import resource_types
from inferstack.policies import kube
from inferstack.policies.resources import UNKNOWN, Finding, Resource, as_number, mapping_of
from inferstack.policies.rule import TIER_CONFIG_SCHEMA, Rule, realtime_selector

SKIP_SCALED_OBJECT_CREATION: Final = "httpscaledobject.keda.sh/skip-scaledobject-creation"
"""kedacore/http-add-on `operator/controllers/http/app.go`: the HTTPScaledObject makes no
ScaledObject of its own when this annotation is "true"."""
ROUTE_KEY: Final = "interceptorRoute"
HTTP_SCALED_OBJECT_KEY: Final = "httpScaledObject"
"""The external-push trigger's metadata keys the add-on's scaler reads
(kedacore/http-add-on `pkg/k8s/scaledobject.go`)."""


def _exists(resources: Sequence[Resource], resource_type: str, name: Any, namespace: Any) -> bool:
    """Whether an object of that type and name is in the namespace (or may be: a computed name)."""
    if not isinstance(name, str):
        return True
    same = [r for r in resources if r.type == resource_type and kube.namespace_of(r) == namespace]
    return any(kube.name_of(r) in (name, UNKNOWN) for r in same)


def _skips_creation(http: Resource) -> bool:
    return str(kube.object_annotations(http).get(SKIP_SCALED_OBJECT_CREATION, "")) == "true"


def _named_http_skips(resources: Sequence[Resource], name: Any, namespace: Any) -> bool:
    if not isinstance(name, str):
        return True
    return any(
        r.type == resource_types.HTTP_SCALED_OBJECT
        and kube.namespace_of(r) == namespace
        and kube.name_of(r) == name
        and _skips_creation(r)
        for r in resources
    )


def _wakes(trigger: Mapping[str, Any], scaler: Resource, resources: Sequence[Resource]) -> bool:
    """Whether the trigger can report demand while the workload has no pods."""
    kind = trigger.get("type")
    if kind == "cron" or kube.reads_pod_metrics(trigger):
        return False
    if kind != "external-push":
        return True
    meta = mapping_of(trigger.get("metadata"))
    namespace = kube.namespace_of(scaler)
    if ROUTE_KEY in meta:
        return _exists(resources, resource_types.INTERCEPTOR_ROUTE, meta[ROUTE_KEY], namespace)
    if HTTP_SCALED_OBJECT_KEY in meta:
        return _named_http_skips(resources, meta[HTTP_SCALED_OBJECT_KEY], namespace)
    return True  # another external scaler: its source is outside the pods


def _fronts(http: Resource, scaler: Resource, workload: Resource | None, resources: Any) -> bool:
    """Whether an HTTPScaledObject scales the same workload as the ScaledObject."""
    if workload is not None and kube.find_workload(http, resources) is workload:
        return True
    name = scaler.get("spec.scaleTargetRef.name")
    return (
        isinstance(name, str)
        and http.get("spec.scaleTargetRef.name") == name
        and kube.namespace_of(http) == kube.namespace_of(scaler)
    )


def _conflict(
    scaler: Resource, workload: Resource | None, resources: Sequence[Resource]
) -> Finding | None:
    for http in resources:
        if http.type != resource_types.HTTP_SCALED_OBJECT or _skips_creation(http):
            continue
        if _fronts(http, scaler, workload, resources):
            return Finding(
                f"HTTPScaledObject {kube.name_of(http)} scales the same workload and creates a "
                "ScaledObject of its own, which KEDA's admission webhook rejects beside this one "
                "(the workload is already managed by a ScaledObject); annotate it "
                f'{SKIP_SCALED_OBJECT_CREATION}: "true" and add its external-push trigger '
                f"(httpScaledObject: {kube.name_of(http)}) here, or drop this ScaledObject",
                scaler.urn,
            )
    return None


def _zero(scaler: Resource) -> str | None:
    """How the ScaledObject can reach zero, or None when it cannot."""
    raw_min = scaler.get("spec.minReplicaCount")
    minimum = 0.0 if raw_min is None else as_number(raw_min)
    # idleReplicaCount 0 also parks the workload at zero whenever the triggers go quiet.
    idle = as_number(scaler.get("spec.idleReplicaCount"))
    if minimum != 0 and idle != 0:
        return None
    if idle == 0 and minimum != 0:
        return "idleReplicaCount 0"
    return "minReplicaCount 0" + (" (KEDA's default when unset)" if raw_min is None else "")


def _no_wake(scaler: Resource, zero: str, triggers: Sequence[Mapping[str, Any]]) -> Finding:
    kinds = ", ".join(sorted({str(mapping_of(t).get("type")) for t in triggers})) or "none"
    return Finding(
        f"ScaledObject for a realtime workload has {zero} and no trigger that reports demand "
        f"at zero replicas (triggers: {kinds}; pod metrics vanish with the pods, a cron trigger "
        "wakes it only inside its window, an external-push trigger must name an InterceptorRoute "
        "or an HTTPScaledObject with skip-scaledobject-creation that exists); add the HTTP "
        "add-on's external-push trigger, a trigger outside the pods, or set minReplicaCount >= 1",
        scaler.urn,
    )


def check(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Finding]:
    """Findings for realtime ScaledObjects that can reach zero and never come back, and for
    ones an HTTPScaledObject's own ScaledObject collides with."""
    key, realtime = realtime_selector(config, RULE)
    findings = []
    for scaler in resources:
        if scaler.type != resource_types.SCALED_OBJECT:
            continue
        workload = kube.find_workload(scaler, resources)
        is_realtime = kube.is_realtime(kube.labels(scaler), key, realtime) or (
            workload is not None and kube.is_realtime(kube.workload_labels(workload), key, realtime)
        )
        if not is_realtime:
            continue
        conflict = _conflict(scaler, workload, resources)
        zero = _zero(scaler)
        triggers = kube.triggers(scaler)
        if conflict is not None:
            findings.append(conflict)
        elif zero is not None and not any(_wakes(t, scaler, resources) for t in triggers):
            findings.append(_no_wake(scaler, zero, triggers))
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
