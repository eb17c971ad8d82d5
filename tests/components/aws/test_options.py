"""Bad AWS options fail before any resource exists, each with the option's path and the fix."""

from __future__ import annotations

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
