"""Bad AWS options fail before any resource exists, each with the option's path and the fix."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

from inferstack.components.aws.options import parse_aws_options
from inferstack.components.planning.clouds import CLOUDS
from inferstack.errors import SpecError
from tests.components.aws.factories import AWS_OPTIONS, make_options
from tests.components.factories import make_spec


def _paths(data: dict[str, Any], **spec_changes: Any) -> dict[str, str]:
    """Every problem of `data` read as `inferstack:aws` for the spec: on reading, or after."""
    spec = make_spec(**spec_changes)
    try:
        options = parse_aws_options(data, source="inferstack:aws", spec=spec)
    except SpecError as error:
        return {p.path: p.message for p in error.problems}
    return {p.path: p.message for p in options.problems(spec)}


def test_valid_options_have_no_problems() -> None:
    assert _paths(AWS_OPTIONS) == {}


def test_every_missing_requirement_is_reported_at_once() -> None:
    problems = _paths({})
    assert set(problems) == {
        "inferstack:aws.cluster_name",
        "inferstack:aws.region",
        "inferstack:aws.subnet_selector",
    }
    assert "existing EKS cluster" in problems["inferstack:aws.cluster_name"]
    assert "subnet_ids" in problems["inferstack:aws.subnet_selector"]


def test_a_bad_value_and_a_region_without_the_gpus_are_reported_at_once() -> None:
    problems = _paths({**AWS_OPTIONS, "cluster_name": "", "region": "af-south-1"})
    assert set(problems) == {"inferstack:aws.cluster_name", "inferstack:aws.region"}
    assert "af-south-1 has no g6 instances" in problems["inferstack:aws.region"]


def test_a_region_without_the_gpus_instances_is_refused_with_the_regions_that_have_them() -> None:
    spec = make_spec(realtime__gpu={"type": "nvidia-l40s", "count": 1})
    problems = make_options(region="af-south-1").problems(spec)
    assert {p.path for p in problems} == {"inferstack:aws.region"}
    message = " | ".join(p.message for p in problems)
    assert "af-south-1 has no g6e instances (nvidia-l40s, realtime pool)" in message
    assert "us-east-1" in message
    assert "g6 instances (nvidia-l4, batch pool)" in message


def test_the_region_table_covers_every_aws_machine_family() -> None:
    cloud = CLOUDS["aws"]
    for machines in cloud.machines.values():
        assert cloud.regions_of(machines.family), machines.family
        assert cloud.offers(machines.family, "us-east-1")


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"region": "useast1"}, "inferstack:aws.region"),
        ({"subnet_ids": ["sn-1"], "subnet_selector": {}}, "inferstack:aws.subnet_ids"),
        ({"root_volume_gib": 20}, "inferstack:aws.root_volume_gib"),
        ({"max_receive_count": 0}, "inferstack:aws.max_receive_count"),
        ({"message_retention_seconds": 30}, "inferstack:aws.message_retention_seconds"),
        ({"kms_key_arn": "my-key"}, "inferstack:aws.kms_key_arn"),
        ({"oidc_provider_arn": "issuer"}, "inferstack:aws.oidc_provider_arn"),
        ({"results_expiry_days": 0}, "inferstack:aws.results_expiry_days"),
        ({"identity": "keys"}, "inferstack:aws.identity"),
        ({"subnet_ids": "subnet-1"}, "inferstack:aws.subnet_ids"),
        ({"keda_operator_role": "keda operator"}, "inferstack:aws.keda_operator_role"),
        ({"keda_operator_role": "arn:aws:iam::1:role/k"}, "inferstack:aws.keda_operator_role"),
        ({"karpenter_namespace": "Kube_System"}, "inferstack:aws.karpenter_namespace"),
        ({"karpenter_service_account": "a/b"}, "inferstack:aws.karpenter_service_account"),
    ],
)
def test_bad_values_name_their_option(changes: dict[str, Any], path: str) -> None:
    assert path in _paths({**AWS_OPTIONS, **changes})


def test_a_direct_construction_with_a_bad_value_is_refused_too() -> None:
    with pytest.raises(ValidationError, match="is not an AWS region"):
        make_options(region="useast1")


def test_a_non_sqs_queue_is_refused_on_aws() -> None:
    problems = _paths(AWS_OPTIONS, batch__queue={"kind": "pubsub", "name": "jobs-sub"})
    assert "batch.queue.kind" in problems


def test_unknown_config_keys_are_errors() -> None:
    with pytest.raises(SpecError, match="inferstack:aws.cluster: unknown option; known options"):
        parse_aws_options({**AWS_OPTIONS, "cluster": "x"}, source="inferstack:aws")
    assert parse_aws_options(AWS_OPTIONS, source="s") == make_options()


KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ROLE = "arn:aws:iam::123456789012:role/keda-operator"


@pytest.mark.parametrize(
    ("changes", "path", "fix"),
    [
        # Issue 22 item 1: each of these gave the worker or KEDA access beyond the stack's own.
        ({"results_bucket": "*"}, "results_bucket", "not an S3 bucket name"),
        ({"results_bucket": "team-*"}, "results_bucket", "not an S3 bucket name"),
        ({"results_bucket": "Team_Results"}, "results_bucket", "not an S3 bucket name"),
        ({"results_bucket": "a..b"}, "results_bucket", "not an S3 bucket name"),
        ({"results_bucket": "192.168.5.4"}, "results_bucket", "IP address"),
        ({"results_bucket": "xn--results"}, "results_bucket", "reserved"),
        ({"results_bucket": "results-s3alias"}, "results_bucket", "reserved"),
        ({"kms_key_arn": "arn:aws:kms:*:*:key/*"}, "kms_key_arn", "has a wildcard"),
        ({"kms_key_arn": KEY.replace("1234abcd", "1234abc?")}, "kms_key_arn", "wildcard"),
        ({"kms_key_arn": KEY.replace(":kms:", ":s3:")}, "kms_key_arn", "service 's3' is not kms"),
        ({"kms_key_arn": KEY.replace("aws:", "awz:", 1)}, "kms_key_arn", "partition"),
        ({"kms_key_arn": KEY.replace("us-east-1", "")}, "kms_key_arn", "region"),
        ({"kms_key_arn": KEY.replace("123456789012", "1234")}, "kms_key_arn", "account"),
        ({"kms_key_arn": KEY.replace(":key/", ":alias/")}, "kms_key_arn", "not a key"),
        ({"kms_key_arn": KEY[:-4]}, "kms_key_arn", "not a key ID"),
        ({"model_kms_key_arn": "arn:aws:kms:*:*:key/*"}, "model_kms_key_arn", "wildcard"),
        (
            {"model_kms_key_arn": KEY.replace(":key/", ":alias/")},
            "model_kms_key_arn",
            "the key's ARN, not an alias",
        ),
        ({"model_kms_key_arn": "alias/models"}, "model_kms_key_arn", "is not an ARN"),
        ({"keda_operator_role": "arn:aws:iam::210987654321:root"}, "keda_operator_role", "role"),
        ({"keda_operator_role": "arn:aws:iam::*:role/keda"}, "keda_operator_role", "wildcard"),
        ({"keda_operator_role": ROLE.replace("::", ":us-east-1:")}, "keda_operator_role", "region"),
        (
            {"oidc_provider_arn": "arn:aws:iam::123456789012:oidc-provider/*"},
            "oidc_provider_arn",
            "wildcard",
        ),
        ({"account_id": "12345"}, "account_id", "12 digits"),
    ],
)
def test_every_user_given_name_and_arn_is_checked_in_full(
    changes: dict[str, Any], path: str, fix: str
) -> None:
    problems = _paths({**AWS_OPTIONS, **changes})
    assert f"inferstack:aws.{path}" in problems, problems
    assert fix in problems[f"inferstack:aws.{path}"]


def test_valid_names_and_arns_of_the_stack_account_pass() -> None:
    options = {
        **AWS_OPTIONS,
        "results_bucket": "team-results.example",
        "kms_key_arn": KEY,
        "keda_operator_role": "arn:aws:iam::123456789012:role/platform/keda-operator",
        "oidc_provider_arn": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1."
        "amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE",
        "account_id": "123456789012",
    }
    assert _paths(options) == {}
    mrk = KEY.replace("1234abcd-12ab-34cd-56ef-1234567890ab", "mrk-" + "0" * 32)
    assert _paths({**AWS_OPTIONS, "kms_key_arn": mrk}) == {}


def test_an_arn_of_another_account_is_refused_unless_cross_account_says_so() -> None:
    foreign_role = "arn:aws:iam::210987654321:role/keda-operator"
    mine = {**AWS_OPTIONS, "account_id": "123456789012"}
    problems = _paths({**mine, "keda_operator_role": foreign_role})
    message = problems["inferstack:aws.keda_operator_role"]
    assert "not the stack's account 123456789012" in message
    assert "cross_account: true" in message
    assert _paths({**mine, "keda_operator_role": foreign_role, "cross_account": True}) == {}
    # Without account_id the stack's account is unknown before deploy: the ARNs must agree.
    problems = _paths({**AWS_OPTIONS, "kms_key_arn": KEY, "keda_operator_role": foreign_role})
    assert {"inferstack:aws.kms_key_arn", "inferstack:aws.keda_operator_role"} <= set(problems)


def test_a_key_of_another_region_is_refused() -> None:
    problems = _paths({**AWS_OPTIONS, "kms_key_arn": KEY.replace("us-east-1", "eu-west-1")})
    assert "use a key of us-east-1" in problems["inferstack:aws.kms_key_arn"]


def test_at_deploy_an_arn_of_another_account_than_the_deploying_one_is_refused() -> None:
    """Without account_id, one foreign ARN agrees with itself: the deploy's account decides."""
    options = make_options(kms_key_arn=KEY)
    assert options.account_problems() == []
    [problem] = options.account_problems("210987654321")
    assert problem.path == "inferstack:aws.kms_key_arn"
    assert "not the stack's account 210987654321" in problem.message
    assert make_options(kms_key_arn=KEY, cross_account=True).account_problems("210987654321") == []
    [wrong] = make_options(account_id="123456789012").account_problems("210987654321")
    assert wrong.path == "inferstack:aws.account_id"


def test_the_component_checks_the_deploying_account_at_pulumi_up_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pulumi

    from inferstack.components.aws.component import AwsInferenceStack

    stack = SimpleNamespace(options=make_options(kms_key_arn=KEY))
    monkeypatch.setattr(pulumi.runtime, "is_dry_run", lambda: True)
    assert AwsInferenceStack._deploying_account(stack, "000000000000") == "000000000000"  # type: ignore[arg-type]
    monkeypatch.setattr(pulumi.runtime, "is_dry_run", lambda: False)
    assert AwsInferenceStack._deploying_account(stack, "123456789012") == "123456789012"  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="inferstack:aws.kms_key_arn: account 123456789012 is not"):
        AwsInferenceStack._deploying_account(stack, "210987654321")  # type: ignore[arg-type]


S3_MODEL = {"uri": "s3://team-models/embedder/v3.pt", "profile": "p.json"}


def test_the_model_bucket_key_may_be_of_another_region_but_not_for_a_model_outside_s3() -> None:
    # The model's bucket (and so its key) need not be in the cluster's region.
    other_region = KEY.replace("us-east-1", "eu-west-1")
    assert _paths({**AWS_OPTIONS, "model_kms_key_arn": other_region}, model=S3_MODEL) == {}
    problems = _paths({**AWS_OPTIONS, "model_kms_key_arn": KEY})
    message = problems["inferstack:aws.model_kms_key_arn"]
    assert "is not in S3" in message
    assert "remove model_kms_key_arn" in message


def test_a_model_bucket_key_of_another_account_needs_cross_account() -> None:
    foreign = KEY.replace("123456789012", "210987654321")
    mine = {**AWS_OPTIONS, "account_id": "123456789012", "model_kms_key_arn": foreign}
    problems = _paths(mine, model=S3_MODEL)
    assert "cross_account: true" in problems["inferstack:aws.model_kms_key_arn"]
    assert _paths({**mine, "cross_account": True}, model=S3_MODEL) == {}
