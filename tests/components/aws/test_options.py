"""Bad AWS options fail before any resource exists, each with the option's path and the fix."""

from __future__ import annotations

import pytest

from inferstack.components.aws.options import AwsOptions, parse_aws_options
from inferstack.components.planning.clouds import CLOUDS
from inferstack.errors import SpecError
from tests.components.aws.factories import AWS_OPTIONS, make_options
from tests.components.factories import make_spec


def _paths(options: AwsOptions, **spec_changes) -> dict[str, str]:
    return {p.path: p.message for p in options.problems(make_spec(**spec_changes))}


def test_valid_options_have_no_problems() -> None:
    assert _paths(make_options()) == {}


def test_every_missing_requirement_is_reported_at_once() -> None:
    problems = _paths(AwsOptions())
    assert set(problems) == {"aws.cluster_name", "aws.region", "aws.subnet_selector"}
    assert "existing EKS cluster" in problems["aws.cluster_name"]
    assert "subnet_ids" in problems["aws.subnet_selector"]


def test_a_region_without_the_gpus_instances_is_refused_with_the_regions_that_have_them() -> None:
    spec = make_spec(realtime__gpu={"type": "nvidia-l40s", "count": 1})
    problems = make_options(region="af-south-1").problems(spec)
    assert {p.path for p in problems} == {"aws.region"}
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
        ({"region": "useast1"}, "aws.region"),
        ({"subnet_ids": ["sn-1"], "subnet_selector": {}}, "aws.subnet_ids"),
        ({"root_volume_gib": 20}, "aws.root_volume_gib"),
        ({"max_receive_count": 0}, "aws.max_receive_count"),
        ({"message_retention_seconds": 30}, "aws.message_retention_seconds"),
        ({"kms_key_arn": "my-key"}, "aws.kms_key_arn"),
        ({"results_expiry_days": 0}, "aws.results_expiry_days"),
    ],
)
def test_bad_values_name_their_option(changes, path: str) -> None:
    assert path in _paths(make_options(**changes))


def test_a_non_sqs_queue_is_refused_on_aws() -> None:
    problems = _paths(make_options(), batch__queue={"kind": "pubsub", "name": "jobs-sub"})
    assert "batch.queue.kind" in problems


def test_unknown_config_keys_are_errors() -> None:
    with pytest.raises(SpecError, match="inferstack:aws.cluster: unknown option"):
        parse_aws_options({**AWS_OPTIONS, "cluster": "x"}, source="inferstack:aws")
    assert parse_aws_options(AWS_OPTIONS, source="s") == make_options()
