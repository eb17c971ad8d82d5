"""The SageMaker rules on wire-form resources: a compliant builder, one changed field per test."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from inferstack.contract import resource_types as types
from inferstack.contract.sagemaker import COLD_START_ACCEPTED_TAG, COLD_START_ACCEPTED_VALUE
from inferstack.policies.resources import UNKNOWN, Resource
from inferstack.policies.rules import (
    sagemaker_async_error_destination,
    sagemaker_async_wake,
    sagemaker_bounded_capacity,
    sagemaker_demand_scaling,
    sagemaker_realtime_zero,
)
from tests.policies.builders import resource


def realtime_config(minimum: float = 1.0, maximum: float | None = 4.0, **props: Any) -> Resource:
    scaling: dict[str, Any] = {"status": "ENABLED", "minInstanceCount": minimum}
    if maximum is not None:
        scaling["maxInstanceCount"] = maximum
    variant = {"variantName": "AllTraffic", "managedInstanceScaling": scaling}
    return resource(
        types.SAGEMAKER_ENDPOINT_CONFIG, "rt", {"productionVariants": [variant], **props}
    )


def async_config(output: dict[str, Any]) -> Resource:
    return resource(
        types.SAGEMAKER_ENDPOINT_CONFIG,
        "async",
        {
            "productionVariants": [{"variantName": "AllTraffic"}],
            "asyncInferenceConfig": {"outputConfig": output},
        },
    )


COMPLIANT_OUTPUT = {
    "s3OutputPath": "s3://b/out/",
    "s3FailurePath": "s3://b/failed/",
    "notificationConfig": {"errorTopic": "arn:aws:sns:us-east-1:123456789012:err"},
}
COPIES = {
    "serviceNamespace": "sagemaker",
    "scalableDimension": "sagemaker:inference-component:DesiredCopyCount",
    "resourceId": "inference-component/ic",
    "minCapacity": 0.0,
    "maxCapacity": 4.0,
}


def target(**changes: Any) -> Resource:
    props = {**COPIES, **changes}
    return resource(types.SCALABLE_TARGET, "copies", {k: v for k, v in props.items() if v})


def tracking(metric: dict[str, Any]) -> Resource:
    return resource(
        types.SCALING_POLICY,
        f"policy-{len(str(metric))}",
        {
            "resourceId": COPIES["resourceId"],
            "scalableDimension": COPIES["scalableDimension"],
            "targetTrackingScalingPolicyConfiguration": {"targetValue": 20.0, **metric},
        },
    )


CONCURRENCY = {
    "predefinedMetricSpecification": {
        "predefinedMetricType": "SageMakerInferenceComponentConcurrentRequestsPerCopyHighResolution"
    }
}
GPU = {
    "customizedMetricSpecification": {
        "metricName": "GPUUtilization",
        "namespace": "/aws/sagemaker/Endpoints",
    }
}
WAKE_ALARM = resource(
    types.METRIC_ALARM,
    "wake",
    {"metricName": "NoCapacityInvocationFailures", "alarmActions": ["arn:policy"]},
)


def bounded(*resources: Resource) -> list[str]:
    return [f.message for f in sagemaker_bounded_capacity.check(list(resources), {})]


def test_bounded_variant_and_target_comply() -> None:
    assert bounded(realtime_config(), target()) == []


def test_a_variant_without_a_maximum_is_flagged() -> None:
    [message] = bounded(realtime_config(maximum=None))
    assert "no maxInstanceCount" in message


def test_a_variant_past_the_ceiling_is_flagged() -> None:
    [message] = bounded(realtime_config(maximum=500.0))
    assert "past the ceiling" in message


def test_a_scalable_target_without_max_capacity_is_flagged() -> None:
    [message] = bounded(target(maxCapacity=None))
    assert "no maxCapacity" in message


def zero(*resources: Resource) -> list[str]:
    return [f.message for f in sagemaker_realtime_zero.check(list(resources), {})]


def test_a_realtime_variant_with_a_floor_complies() -> None:
    assert zero(realtime_config(minimum=1.0)) == []


def test_a_realtime_variant_at_zero_is_flagged_saying_it_answers_errors() -> None:
    [message] = zero(realtime_config(minimum=0.0), WAKE_ALARM)
    assert "answers every request with an error" in message


def test_zero_accepted_with_a_wake_alarm_complies_and_without_one_is_flagged() -> None:
    tags = {"tags": {COLD_START_ACCEPTED_TAG: COLD_START_ACCEPTED_VALUE}}
    assert zero(realtime_config(minimum=0.0, **tags), WAKE_ALARM) == []
    [message] = zero(realtime_config(minimum=0.0, **tags))
    assert "nothing wakes it" in message


def test_an_async_endpoint_at_zero_is_not_judged_by_the_realtime_rule() -> None:
    config = async_config(COMPLIANT_OUTPUT)
    config.props["productionVariants"][0]["managedInstanceScaling"] = {
        "status": "ENABLED",
        "minInstanceCount": 0.0,
    }
    assert zero(config) == []


def demand(*resources: Resource) -> list[str]:
    return [f.message for f in sagemaker_demand_scaling.check(list(resources), {})]


def test_concurrency_tracking_complies_with_or_without_utilisation_beside_it() -> None:
    assert demand(target(), tracking(CONCURRENCY)) == []
    assert demand(target(), tracking(CONCURRENCY), tracking(GPU)) == []


def test_gpu_utilisation_only_is_flagged() -> None:
    [message] = demand(target(), tracking(GPU))
    assert "GPUUtilization" in message


def destination(output: dict[str, Any]) -> list[str]:
    found = sagemaker_async_error_destination.check([async_config(output)], {})
    return [f.message for f in found]


def test_an_async_endpoint_with_failure_path_and_error_topic_complies() -> None:
    assert destination(COMPLIANT_OUTPUT) == []
    # At preview a created topic's ARN is unknown: not a missing one.
    unknown = copy.deepcopy(COMPLIANT_OUTPUT)
    unknown["notificationConfig"]["errorTopic"] = UNKNOWN
    assert destination(unknown) == []


@pytest.mark.parametrize(
    ("missing", "named"),
    [
        ("s3FailurePath", "outputConfig.s3FailurePath"),
        ("notificationConfig", "outputConfig.notificationConfig.errorTopic"),
    ],
)
def test_an_async_endpoint_without_a_destination_is_flagged(missing: str, named: str) -> None:
    output = {k: v for k, v in COMPLIANT_OUTPUT.items() if k != missing}
    [message] = destination(output)
    assert named in message


INSTANCES = {
    "serviceNamespace": "sagemaker",
    "scalableDimension": "sagemaker:variant:DesiredInstanceCount",
    "resourceId": "endpoint/jobs/variant/AllTraffic",
    "minCapacity": 0.0,
    "maxCapacity": 4.0,
}
STEP = resource(
    types.SCALING_POLICY,
    "async-wake",
    {
        "policyType": "StepScaling",
        "resourceId": INSTANCES["resourceId"],
        "scalableDimension": INSTANCES["scalableDimension"],
    },
)


def backlog_alarm(**changes: Any) -> Resource:
    props = {
        "metricName": "HasBacklogWithoutCapacity",
        "namespace": "AWS/SageMaker",
        "dimensions": {"EndpointName": "jobs"},
        "alarmActions": ["arn:policy"],
        **changes,
    }
    return resource(types.METRIC_ALARM, "async-wake", props)


def wake(*resources: Resource, **target_changes: Any) -> list[str]:
    instances = resource(types.SCALABLE_TARGET, "instances", {**INSTANCES, **target_changes})
    found = sagemaker_async_wake.check([instances, *resources], {})
    return [f.message for f in found]


def test_an_async_variant_at_zero_with_its_wake_alarm_and_step_policy_complies() -> None:
    assert wake(STEP, backlog_alarm()) == []
    # At preview the policy's ARN in the alarm's actions may be unknown: not a missing one.
    assert wake(STEP, backlog_alarm(alarmActions=UNKNOWN)) == []


def test_a_variant_with_a_floor_needs_no_wake() -> None:
    assert wake(minCapacity=1.0) == []


@pytest.mark.parametrize(
    "resources",
    [
        (),
        (STEP,),
        (backlog_alarm(),),
        (STEP, backlog_alarm(alarmActions=[])),
        (STEP, backlog_alarm(metricName="ApproximateBacklogSizePerInstance")),
        (STEP, backlog_alarm(dimensions={"EndpointName": "other"})),
    ],
    ids=["nothing", "no-alarm", "no-step-policy", "no-action", "other-metric", "other-endpoint"],
)
def test_async_at_zero_without_a_wake_is_flagged(resources: tuple[Resource, ...]) -> None:
    [message] = wake(*resources)
    assert "minCapacity 0" in message
    assert "HasBacklogWithoutCapacity" in message


def test_inference_component_copies_are_not_judged_by_the_async_rule() -> None:
    assert sagemaker_async_wake.check([target()], {}) == []
