"""SageMakerInferenceStack rendered under the Pulumi SDK's mock monitor, resource by resource.

The resources went through pulumi-aws's and pulumi-aws-native's typed constructors; the tests
read their wire inputs back: endpoint configurations (managed instance scaling, routing, async
paths and topics), the inference component, the scaling targets, policies, alarms and scheduled
actions, and the execution role's documents, exact and linted with parliament.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from inferstack.components.sagemaker.options import SageMakerOptions, parse_sagemaker_options
from inferstack.components.sagemaker.scaling import async_scaling, realtime_scaling
from inferstack.contract import resource_types as types
from inferstack.contract.sagemaker import sagemaker_names
from inferstack.errors import SpecError
from inferstack.offline.capture import Capture, CapturedResource
from tests.components.aws.factories import NOW
from tests.components.aws.iam_lint import findings
from tests.components.factories import spec_data
from tests.components.sagemaker.factories import (
    ACCOUNT,
    IMAGE,
    MODEL,
    MODEL_PROFILE,
    MODEL_URI,
    REGION,
    SAGEMAKER_OPTIONS,
    make_plan,
)
from tests.components.scenarios import capture_scenarios

NAMES = sagemaker_names()
MODEL_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def _scenario(name: str, options: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    return {
        "spec": spec_data(name=name, **{"model": MODEL, **changes}),
        "sagemaker": {**SAGEMAKER_OPTIONS, **(options or {})},
        "profile": MODEL_PROFILE,
    }


SCENARIOS = [
    # Both pools, the plan's floor, a pre-warmed weekday spike.
    _scenario("full"),
    # Realtime only, scaled to zero: woken by the no-capacity alarm.
    _scenario(
        "zero",
        batch=None,
        traffic__baseline_rps=0,
        realtime__scale_to_zero=True,
        realtime__allow_cold_start_over_budget=True,
        realtime__scaling__min_replicas=0,
    ),
    # Refused: image in another region, model from Hugging Face with a bucket key, no async
    # bucket.
    _scenario(
        "refused",
        {"image": IMAGE.replace(REGION, "eu-west-1"), "model_kms_key_arn": MODEL_KEY},
        model={"uri": "hf://org/repo@" + "a" * 40 + "/model.pt", "profile": "p.json"},
    ),
    # The model's bucket encrypts with a customer key (SSE-KMS).
    _scenario("kms", {"model_kms_key_arn": MODEL_KEY}, batch=None),
]


@pytest.fixture(scope="module")
def capture() -> Capture:
    scenarios = json.loads(json.dumps(SCENARIOS))
    scenarios[2]["sagemaker"].pop("async_bucket")
    scenarios[2]["profile"]["model"] = scenarios[2]["spec"]["model"]["uri"]
    return capture_scenarios("sagemaker_stacks", scenarios, NOW)


def _of(capture: Capture, service: str, type_: str) -> list[CapturedResource]:
    return [
        r
        for r in capture.resources
        if r.type == type_ and (r.name == service or r.name.startswith(f"{service}-"))
    ]


def _one(capture: Capture, service: str, type_: str, suffix: str = "") -> CapturedResource:
    found = [r for r in _of(capture, service, type_) if r.name.endswith(suffix)]
    assert len(found) == 1, [r.name for r in found]
    return found[0]


def test_every_resource_of_the_full_service(capture: Capture) -> None:
    counts: dict[str, int] = {}
    for resource in capture.resources:
        if resource.name.startswith("full") and resource.custom:
            counts[resource.type] = counts.get(resource.type, 0) + 1
    assert counts == {
        types.SNS_TOPIC: 2,
        types.IAM_ROLE: 1,
        types.IAM_ROLE_POLICY: 1,
        types.SAGEMAKER_MODEL: 2,
        types.SAGEMAKER_ENDPOINT_CONFIG: 2,
        types.SAGEMAKER_ENDPOINT: 2,
        types.SAGEMAKER_INFERENCE_COMPONENT: 1,
        types.SCALABLE_TARGET: 2,
        types.SCALING_POLICY: 3,  # concurrency, backlog, async wake
        types.METRIC_ALARM: 1,
        types.SCHEDULED_ACTION: 2,  # the spike's start and end
    }


def test_realtime_variant_has_managed_instance_scaling_and_routing(capture: Capture) -> None:
    plan = make_plan()
    assert plan.realtime is not None
    floor = plan.realtime.sizing.min_replicas.value
    config = _one(capture, "full", types.SAGEMAKER_ENDPOINT_CONFIG, "-realtime").inputs
    (variant,) = config["productionVariants"]
    assert variant["managedInstanceScaling"] == {
        "status": "ENABLED",
        "minInstanceCount": floor,
        "maxInstanceCount": plan.realtime.sizing.max_replicas.value,
    }
    assert variant["routingConfigs"] == [{"routingStrategy": "LEAST_OUTSTANDING_REQUESTS"}]
    assert variant["instanceType"] == "ml.g6.xlarge"
    assert "modelName" not in variant  # the inference component carries the model
    assert "executionRoleArn" in config


def test_scale_to_zero_variant_and_copies_reach_zero(capture: Capture) -> None:
    config = _one(capture, "zero", types.SAGEMAKER_ENDPOINT_CONFIG, "-realtime").inputs
    assert config["productionVariants"][0]["managedInstanceScaling"]["minInstanceCount"] == 0
    target = _one(capture, "zero", types.SCALABLE_TARGET).inputs
    assert target["minCapacity"] == 0
    assert _of(capture, "zero", types.SAGEMAKER_ENDPOINT_CONFIG)[0].inputs  # realtime only
    assert len(_of(capture, "zero", types.SAGEMAKER_ENDPOINT)) == 1


def test_inference_component_runs_the_ecr_image_with_the_pools_accelerators(
    capture: Capture,
) -> None:
    component = _one(capture, "full", types.SAGEMAKER_INFERENCE_COMPONENT).inputs
    assert component["inferenceComponentName"] == "full-realtime-model"
    assert component["endpointName"] == "full-realtime"
    assert component["variantName"] == "AllTraffic"
    requirements = component["specification"]["computeResourceRequirements"]
    assert requirements["numberOfAcceleratorDevicesRequired"] == 1
    model = _one(capture, "full", types.SAGEMAKER_MODEL, "-realtime").inputs
    assert model["primaryContainer"]["image"] == IMAGE
    env = model["primaryContainer"]["environment"]
    assert env["INFERSTACK_PROTOCOL"] == "sagemaker"
    assert env["INFERSTACK_PORT"] == "8080"
    assert env["INFERSTACK_MODEL"] == MODEL_URI


def test_copies_track_concurrency_at_the_batcher_models_target(capture: Capture) -> None:
    plan = make_plan()
    assert plan.realtime is not None
    expected = realtime_scaling(plan, plan.realtime)
    target = _one(capture, "full", types.SCALABLE_TARGET, "-realtime-copies").inputs
    assert target == {
        "serviceNamespace": "sagemaker",
        "scalableDimension": "sagemaker:inference-component:DesiredCopyCount",
        "resourceId": "inference-component/full-realtime-model",
        "minCapacity": expected.min_copies.value,
        "maxCapacity": expected.max_copies.value,
    }
    policy = _one(capture, "full", types.SCALING_POLICY, "-realtime-concurrency").inputs
    tracking = policy["targetTrackingScalingPolicyConfiguration"]
    assert tracking["predefinedMetricSpecification"] == {
        "predefinedMetricType": "SageMakerInferenceComponentConcurrentRequestsPerCopyHighResolution"
    }
    assert tracking["targetValue"] == expected.target_concurrency.value
    assert "in flight" in expected.target_concurrency.reason


def test_prewarm_windows_become_scheduled_actions_in_aws_cron(capture: Capture) -> None:
    plan = make_plan()
    assert plan.realtime is not None
    (window,) = plan.realtime.sizing.prewarm
    start = _one(capture, "full", types.SCHEDULED_ACTION, "-prewarm-0-start").inputs
    end = _one(capture, "full", types.SCHEDULED_ACTION, "-prewarm-0-end").inputs
    assert start["timezone"] == end["timezone"] == "America/New_York"
    minute, hour = window.start_cron.split()[:2]
    assert start["schedule"] == f"cron({minute} {hour} ? * MON-FRI *)"
    assert start["scalableTargetAction"]["minCapacity"] == window.desired_replicas
    assert end["scalableTargetAction"]["minCapacity"] == plan.realtime.sizing.min_replicas.value


def test_zero_copies_wake_on_the_no_capacity_alarm(capture: Capture) -> None:
    alarm = _one(capture, "zero", types.METRIC_ALARM).inputs
    assert alarm["namespace"] == "AWS/SageMaker"
    assert alarm["metricName"] == "NoCapacityInvocationFailures"
    assert alarm["dimensions"] == {"InferenceComponentName": "zero-realtime-model"}
    assert alarm["threshold"] == 1
    assert alarm["comparisonOperator"] == "GreaterThanOrEqualToThreshold"
    step = _one(capture, "zero", types.SCALING_POLICY, "-realtime-wake").inputs
    configuration = step["stepScalingPolicyConfiguration"]
    assert configuration["adjustmentType"] == "ChangeInCapacity"
    assert configuration["stepAdjustments"] == [
        {"scalingAdjustment": 1, "metricIntervalLowerBound": "0"}
    ]
    # The floor of the full service is above zero: nothing to wake there.
    assert not [r for r in _of(capture, "full", types.SCALING_POLICY) if "realtime-wake" in r.name]


def test_async_endpoint_lands_outputs_failures_and_topics(capture: Capture) -> None:
    plan = make_plan()
    assert plan.batch is not None
    expected = async_scaling(plan, plan.batch)
    config = _one(capture, "full", types.SAGEMAKER_ENDPOINT_CONFIG, "-async").inputs
    asynchronous = config["asyncInferenceConfig"]
    assert asynchronous["outputConfig"]["s3OutputPath"] == "s3://team-async/async/full/output/"
    assert asynchronous["outputConfig"]["s3FailurePath"] == "s3://team-async/async/full/failure/"
    notification = asynchronous["outputConfig"]["notificationConfig"]
    assert set(notification) == {"successTopic", "errorTopic"}
    assert asynchronous["clientConfig"] == {
        "maxConcurrentInvocationsPerInstance": expected.max_concurrent_invocations.value
    }
    topics = sorted(r.inputs["name"] for r in _of(capture, "full", types.SNS_TOPIC))
    assert topics == ["full-async-error", "full-async-success"]


def test_async_instances_track_the_backlog_and_wake_from_zero(capture: Capture) -> None:
    plan = make_plan()
    assert plan.batch is not None
    expected = async_scaling(plan, plan.batch)
    target = _one(capture, "full", types.SCALABLE_TARGET, "-async-instances").inputs
    assert target["scalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert target["resourceId"] == "endpoint/full-async/variant/AllTraffic"
    assert target["minCapacity"] == 0
    policy = _one(capture, "full", types.SCALING_POLICY, "-async-backlog").inputs
    metric = policy["targetTrackingScalingPolicyConfiguration"]["customizedMetricSpecification"]
    assert metric == {
        "metricName": "ApproximateBacklogSizePerInstance",
        "namespace": "AWS/SageMaker",
        "statistic": "Average",
        "dimensions": [{"name": "EndpointName", "value": "full-async"}],
    }
    assert (
        policy["targetTrackingScalingPolicyConfiguration"]["targetValue"]
        == expected.target_backlog.value
    )
    alarm = _one(capture, "full", types.METRIC_ALARM).inputs
    assert alarm["metricName"] == "HasBacklogWithoutCapacity"
    assert alarm["dimensions"] == {"EndpointName": "full-async"}


def test_refusals_name_each_field_and_fix(capture: Capture) -> None:
    error = capture.stack_outputs["error-refused"]
    assert "inferstack:sagemaker.image" in error
    assert "push the image to us-east-1" in error
    assert "model.uri" in error
    assert "copy the model to s3://" in error
    assert "inferstack:sagemaker.async_bucket" in error
    assert "inferstack:sagemaker.model_kms_key_arn" in error
    assert "set it for an s3:// model.uri" in error
    assert not _of(capture, "refused", types.SAGEMAKER_ENDPOINT)


def _documents(capture: Capture, service: str) -> tuple[dict[str, Any], dict[str, Any]]:
    role = _one(capture, service, types.IAM_ROLE).inputs
    policy = _one(capture, service, types.IAM_ROLE_POLICY).inputs
    return json.loads(role["assumeRolePolicy"]), json.loads(policy["policy"])


def test_execution_role_documents_are_exact(capture: Capture) -> None:
    trust, policy = _documents(capture, "full")
    assert trust["Statement"] == [
        {
            "Sid": "SageMakerAssumesExecutionRole",
            "Effect": "Allow",
            "Principal": {"Service": "sagemaker.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ]
    logs = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/sagemaker/Endpoints"
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}"
    assert policy == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PullTheRuntimeImage",
                "Effect": "Allow",
                "Action": [
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:BatchGetImage",
                    "ecr:GetDownloadUrlForLayer",
                ],
                "Resource": f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/inferstack/runtime",
            },
            {
                "Sid": "LogInToTheRegistry",
                "Effect": "Allow",
                "Action": "ecr:GetAuthorizationToken",
                "Resource": "*",
            },
            {
                "Sid": "WriteEndpointLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": [f"{logs}/full-realtime:*", f"{logs}/full-async:*"],
            },
            {
                "Sid": "ReadTheModel",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::team-models/embedder/model.pt",
            },
            {
                "Sid": "ReadAsyncInputs",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::team-async/async/full/input/*",
            },
            {
                "Sid": "WriteAsyncOutputsAndFailures",
                "Effect": "Allow",
                "Action": "s3:PutObject",
                "Resource": [
                    "arn:aws:s3:::team-async/async/full/output/*",
                    "arn:aws:s3:::team-async/async/full/failure/*",
                ],
            },
            {
                "Sid": "PublishAsyncOutcomes",
                "Effect": "Allow",
                "Action": "sns:Publish",
                "Resource": [f"{topic}:full-async-success", f"{topic}:full-async-error"],
            },
        ],
    }


def test_realtime_only_role_has_no_async_grants(capture: Capture) -> None:
    _, policy = _documents(capture, "zero")
    sids = [statement["Sid"] for statement in policy["Statement"]]
    assert sids == [
        "PullTheRuntimeImage",
        "LogInToTheRegistry",
        "WriteEndpointLogs",
        "ReadTheModel",
    ]


def test_a_model_bucket_key_is_decrypted_through_s3_for_the_model_only(capture: Capture) -> None:
    _, policy = _documents(capture, "kms")
    statements = {statement["Sid"]: statement for statement in policy["Statement"]}
    model = "arn:aws:s3:::team-models/embedder/model.pt"
    assert statements["DecryptModel"] == {
        "Sid": "DecryptModel",
        "Effect": "Allow",
        "Action": ["kms:Decrypt"],
        "Resource": MODEL_KEY,
        "Condition": {
            "StringEquals": {
                "kms:ViaService": f"s3.{REGION}.amazonaws.com",
                "kms:EncryptionContext:aws:s3:arn": ["arn:aws:s3:::team-models", model],
            }
        },
    }
    # Without the option nothing about KMS is granted.
    _, plain = _documents(capture, "zero")
    assert all(not statement["Sid"].startswith("Decrypt") for statement in plain["Statement"])


def test_an_alias_or_wildcard_model_key_is_refused_naming_the_field() -> None:
    for bad in (f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/models", f"arn:aws:kms:{REGION}:*:key/k"):
        with pytest.raises(SpecError) as refused:
            parse_sagemaker_options(
                {**SAGEMAKER_OPTIONS, "model_kms_key_arn": bad}, source="inferstack:sagemaker"
            )
        assert "inferstack:sagemaker.model_kms_key_arn" in str(refused.value)
    assert SageMakerOptions(**SAGEMAKER_OPTIONS).model_key() is None


# parliament's findings on the execution policy, each with the reason it stays.
RECORDED_FINDINGS = {
    # ecr:GetAuthorizationToken returns a registry login token, which parliament's community
    # auditor counts as exposing credentials. SageMaker needs it to pull a private ECR image
    # ("CreateModel API: Execution Role Permissions"); the token lets the role do only what its
    # policy allows, and the pulls stay limited to the one repository of the statement before.
    # (It has no resource type, so its "*" is the only form IAM accepts; parliament knows that
    # and reports no RESOURCE_STAR for it.)
    "CREDENTIALS_EXPOSURE",
}


@pytest.mark.parametrize("service", ["full", "zero", "kms"])
def test_execution_policy_is_clean_under_parliament(capture: Capture, service: str) -> None:
    # The trust policy is compared exactly above and not linted: AWS forbids a Resource in a
    # trust policy, which parliament (written for identity policies) reports as malformed.
    _, policy = _documents(capture, service)
    found = findings(policy)
    assert {issue for issue, _ in found} == RECORDED_FINDINGS, found
