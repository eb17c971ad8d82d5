"""sagemaker-bounded-capacity: every SageMaker way to add GPUs has an explicit, sane maximum.

Why: a SageMaker GPU instance bills by the second from launch. A variant whose managed instance
scaling has no `MaxInstanceCount`, or an Application Auto Scaling target of an inference
component's copies or a variant's instances whose `MaxCapacity` is absent or past the pack's
ceiling, turns a retry storm or a stuck metric into an unbounded bill.

Fix: set `managedInstanceScaling.maxInstanceCount` on the production variant and `maxCapacity`
on the scalable target (`sagemaker:inference-component:DesiredCopyCount`,
`sagemaker:variant:DesiredInstanceCount`) to the peak the service was sized for, within the
pack's ceilings (`maxGpuNodes`, `maxGpuReplicas`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from inferstack.contract.thresholds import MAX_GPU_NODES, MAX_GPU_REPLICAS
from inferstack.policies import sagemaker
from inferstack.policies.resources import Finding, Resource, as_number, mapping_of
from inferstack.policies.rule import Rule, config_value


def _variant_findings(config: Resource, ceiling: float) -> list[Finding]:
    findings = []
    for variant in sagemaker.variants(config):
        scaling = mapping_of(variant.get("managedInstanceScaling"))
        if scaling.get("status") != "ENABLED":
            continue
        name = variant.get("variantName", "?")
        maximum = as_number(scaling.get("maxInstanceCount"))
        if maximum is None:
            findings.append(
                Finding(
                    f"variant {name}: managed instance scaling has no maxInstanceCount; set it to "
                    "the instances the service was sized for",
                    config.urn,
                )
            )
        elif maximum > ceiling:
            findings.append(
                Finding(
                    f"variant {name}: maxInstanceCount {maximum:g} is past the ceiling "
                    f"{ceiling:g} (maxGpuNodes); lower it or raise the ceiling knowingly",
                    config.urn,
                )
            )
    return findings


def check(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Finding]:
    """Findings for SageMaker capacity without a maximum, or past the ceilings."""
    nodes = float(config_value(config, RULE, "maxGpuNodes"))
    replicas = float(config_value(config, RULE, "maxGpuReplicas"))
    findings = []
    for resource in resources:
        if resource.type == sagemaker.ENDPOINT_CONFIG:
            findings += _variant_findings(resource, nodes)
    for target in sagemaker.sagemaker_targets(resources):
        maximum = as_number(target.get("maxCapacity"))
        what = f"{target.get('scalableDimension')} of {target.get('resourceId')}"
        if maximum is None:
            findings.append(Finding(f"{what}: no maxCapacity; set the sized peak", target.urn))
        elif maximum > replicas:
            findings.append(
                Finding(
                    f"{what}: maxCapacity {maximum:g} is past the ceiling {replicas:g} "
                    "(maxGpuReplicas); lower it or raise the ceiling knowingly",
                    target.urn,
                )
            )
    return findings


RULE: Final = Rule(
    name="sagemaker-bounded-capacity",
    description="SageMaker variants and scalable targets must have an explicit maximum.",
    doc=__doc__,
    severity="high",
    enforcement="mandatory",
    check_stack=check,
    config_schema={
        "maxGpuNodes": {
            "type": "integer",
            "minimum": 1,
            "default": MAX_GPU_NODES,
            "description": "largest allowed maxInstanceCount of one SageMaker variant",
        },
        "maxGpuReplicas": {
            "type": "integer",
            "minimum": 1,
            "default": MAX_GPU_REPLICAS,
            "description": "largest allowed maxCapacity of one SageMaker scalable target",
        },
    },
)
