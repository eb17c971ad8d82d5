"""demand-signal-autoscaling: inference autoscalers must read demand, not utilisation alone.

Why: a batching server keeps the GPU busy at any load, so GPU utilisation sits near 100% long
before requests queue, and reads low while requests wait for a batch to fill. CPU and memory say
even less about a GPU workload. Scaling on them adds replicas too late for the latency budget or
keeps idle replicas up, the two costs this project exists to cut.

Fix: scale on queue depth, in-flight requests or request rate (the runtime exports
`inferstack_queue_depth`, `inferstack_inflight_requests` and `inferstack_requests_total`; the KEDA
HTTP add-on's concurrency or request rate also works). Utilisation triggers may stay alongside.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from inferstack.contract import resource_types
from inferstack.contract.labels import SERVICE_LABEL
from inferstack.policies import kube
from inferstack.policies.resources import Finding, Resource, list_of, mapping_of
from inferstack.policies.rule import TIER_CONFIG_SCHEMA, Rule, config_value

_DEMAND_HINT: Final = (
    f"add a demand trigger, e.g. a prometheus trigger on {kube.DEMAND_METRICS[0]} or "
    f"{kube.DEMAND_METRICS[1]}, or front it with the KEDA HTTP add-on"
)


def _signal_kinds(scaler: Resource) -> list[str]:
    if scaler.type == resource_types.SCALED_OBJECT:
        return [kube.trigger_kind(t) for t in kube.triggers(scaler)]
    if scaler.get("spec.targetCPUUtilizationPercentage") is not None:
        return ["utilisation"]
    return [kube.hpa_metric_kind(mapping_of(m)) for m in list_of(scaler.get("spec.metrics"))]


def check(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Finding]:
    """Findings for inference autoscalers whose every signal is utilisation."""
    tier_key = str(config_value(config, RULE, "tierLabel"))
    findings = []
    for scaler in resources:
        if (
            scaler.type != resource_types.SCALED_OBJECT
            and scaler.type not in resource_types.HPA_TYPES
        ):
            continue
        kinds = _signal_kinds(scaler)
        if "utilisation" not in kinds or {"demand", "wake"} & set(kinds):
            continue
        scaler_labels = kube.labels(scaler)
        workload = kube.find_workload(scaler, resources)
        inference = tier_key in scaler_labels or SERVICE_LABEL in scaler_labels
        if workload is not None:
            inference = inference or kube.is_inference_workload(workload, tier_key)
        if not inference:
            continue
        kind = kube.kind_of(scaler.type)
        findings.append(
            Finding(
                f"{kind} for an inference workload scales on utilisation alone (cpu, memory or "
                f"GPU utilisation), which lags queueing under batching; {_DEMAND_HINT}",
                scaler.urn,
            )
        )
    return findings


RULE: Final = Rule(
    name="demand-signal-autoscaling",
    description="Inference autoscaling must read a demand signal, not utilisation alone.",
    doc=__doc__,
    severity="medium",
    enforcement="mandatory",
    check_stack=check,
    config_schema={"tierLabel": TIER_CONFIG_SCHEMA["tierLabel"]},
)
