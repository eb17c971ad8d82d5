"""`inferstack:gcp` options: every bad value is named with its fix, all at once."""

from __future__ import annotations

from typing import Any

import pytest

from inferstack.components.gcp.options import GcpOptions, parse_gcp_options
from inferstack.errors import SpecError

VALID: dict[str, Any] = {
    "project": "acme-inference",
    "project_number": 123456789012,
    "region": "us-central1",
    "cluster": "inference",
}


def problems(**changes: Any) -> list[str]:
    try:
        parse_gcp_options({**VALID, **changes}, source="inferstack:gcp")
    except SpecError as error:
        return [str(problem) for problem in error.problems]
    return []


def test_valid_options_and_their_defaults() -> None:
    options = parse_gcp_options(VALID, source="inferstack:gcp")
    assert options == GcpOptions(
        project="acme-inference",
        project_number="123456789012",
        region="us-central1",
        cluster="inference",
    )
    assert options.location == "us-central1"
    assert options.workload_pool == "acme-inference.svc.id.goog"
    assert (options.identity, options.max_delivery_attempts, options.results_expiry_days) == (
        "principal",
        5,
        30,
    )


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"project": "Acme"}, "inferstack:gcp.project: set the project ID"),
        ({"cluster": ""}, "inferstack:gcp.cluster: set the name of the existing GKE"),
        ({"cluster_location": "moon"}, "inferstack:gcp.cluster_location: set the cluster's"),
        ({"node_locations": ["europe-west4-a"]}, "'europe-west4-a' is not a zone of us-central1"),
        ({"node_locations": "us-central1-a"}, "inferstack:gcp.node_locations: expected a list"),
        ({"identity": "keys"}, "inferstack:gcp.identity: use principal"),
        ({"keda_service_account": "keda"}, "use namespace/name, e.g. keda/keda-operator"),
        ({"create_results_bucket": False}, "name the existing bucket here"),
        ({"results_bucket": "Bad_Bucket!"}, "inferstack:gcp.results_bucket: use a valid bucket"),
        ({"results_prefix": "/"}, "inferstack:gcp.results_prefix: use a non-empty"),
        ({"max_delivery_attempts": 3}, "Pub/Sub accepts 5 to 100 attempts"),
        ({"results_expiry_days": 0}, "inferstack:gcp.results_expiry_days: use 1 to 3650"),
        ({"keep_images": 0}, "inferstack:gcp.keep_images: keep 1 to 1000"),
    ],
)
def test_each_bad_value_names_its_option_and_fix(changes: dict[str, Any], expected: str) -> None:
    found = problems(**changes)
    assert any(expected in problem for problem in found), found


def test_every_problem_is_reported_at_once() -> None:
    found = problems(project="", project_number="", region="", cluster="", color="blue")
    assert [problem.split(":")[1].split(".")[-1] for problem in found] == [
        "color",
        "project",
        "project_number",
        "region",
        "cluster",
    ]


@pytest.mark.parametrize(
    ("bucket", "expected"),
    [
        # Issue 22 item 1: a wildcard or a name Cloud Storage would refuse never reaches IAM.
        ("*", "is not one"),
        ("team-*", "is not one"),
        ("a..b", "is not one"),
        ("-results", "is not one"),
        ("a" * 64, "is not one"),
        (".".join(["a" * 64, "b"]), "is not one"),
        ("192.168.5.4", "IP address"),
        ("goog-results", "reserves"),
        ("my-google-results", "reserves"),
        ("my-g00gle-results", "reserves"),
    ],
)
def test_a_results_bucket_follows_the_cloud_storage_naming_rules(
    bucket: str, expected: str
) -> None:
    found = problems(results_bucket=bucket)
    assert any(
        problem.startswith("inferstack:gcp.results_bucket: ") and expected in problem
        for problem in found
    ), found


def test_valid_bucket_names_pass() -> None:
    for bucket in (
        "shared-results",
        "team_results.example.com",
        "a" * 63,
        ".".join(["a" * 63] * 3),
    ):
        assert problems(results_bucket=bucket) == [], bucket
