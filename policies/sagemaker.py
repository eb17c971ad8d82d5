"""What the SageMaker rules share: reading raw SageMaker and Application Auto Scaling resources.

Wire (camelCase) names of pulumi-aws's `aws:sagemaker/endpointConfiguration` and
`aws:appautoscaling/*` resources, and the scaling vocabulary of `inferstack.contract.sagemaker`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from inferstack.contract import resource_types
from inferstack.contract.sagemaker import sagemaker_names
from inferstack.policies.resources import Resource, list_of, mapping_of

ENDPOINT_CONFIG: Final = resource_types.SAGEMAKER_ENDPOINT_CONFIG
SCALABLE_TARGET: Final = resource_types.SCALABLE_TARGET
SCALING_POLICY: Final = resource_types.SCALING_POLICY
METRIC_ALARM: Final = resource_types.METRIC_ALARM
NAMES: Final = sagemaker_names()


def variants(config: Resource) -> Iterator[Mapping[str, Any]]:
    """The production variants of an endpoint configuration."""
    for variant in list_of(config.get("productionVariants")):
        yield mapping_of(variant)


def is_async(config: Resource) -> bool:
    """Whether the configuration is an asynchronous endpoint's."""
    return bool(mapping_of(config.get("asyncInferenceConfig")))


def sagemaker_targets(resources: Sequence[Resource]) -> list[Resource]:
    """Application Auto Scaling targets of SageMaker resources."""
    return [
        r
        for r in resources
        if r.type == SCALABLE_TARGET and r.get("serviceNamespace") == NAMES.service_namespace
    ]


def policies_of(target: Resource, resources: Sequence[Resource]) -> list[Resource]:
    """The scaling policies on `target`'s resource id and dimension."""
    return [
        r
        for r in resources
        if r.type == SCALING_POLICY
        and r.get("resourceId") == target.get("resourceId")
        and r.get("scalableDimension") == target.get("scalableDimension")
    ]


def tracked_metric(policy: Resource) -> tuple[str, str] | None:
    """(namespace, metric) a target-tracking policy follows; predefined ones in AWS/SageMaker."""
    tracking = mapping_of(policy.get("targetTrackingScalingPolicyConfiguration"))
    if not tracking:
        return None
    predefined = mapping_of(tracking.get("predefinedMetricSpecification"))
    if predefined:
        return NAMES.metric_namespace, str(predefined.get("predefinedMetricType", ""))
    custom = mapping_of(tracking.get("customizedMetricSpecification"))
    return str(custom.get("namespace", "")), str(custom.get("metricName", ""))
