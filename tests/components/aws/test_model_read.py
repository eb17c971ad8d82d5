"""The AWS target lets each pool's own identity read its model in S3, and nothing more: the
exact documents under the Pulumi mocks, clean under parliament."""

from __future__ import annotations

import json
from typing import Any

import pytest

from inferstack.components.aws import iam
from inferstack.contract import resource_types
from inferstack.offline.capture import Capture, CapturedResource
from tests.components.aws.factories import AWS_OPTIONS, NOW
from tests.components.aws.iam_lint import findings
from tests.components.factories import PROFILE, spec_data
from tests.components.scenarios import capture_scenarios

MODEL = "s3://team-models/embedder/v3.pt"
MODEL_ARN = "arn:aws:s3:::team-models/embedder/v3.pt"
ASSOCIATION = "aws:eks/podIdentityAssociation:PodIdentityAssociation"


def _scenario(name: str, aws: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {
        "spec": spec_data(name=name, model={"uri": MODEL, "profile": "p.json"}, **changes),
        "aws": {**AWS_OPTIONS, **aws},
        "kubernetes": {"namespace": "inference"},
        "profile": {**PROFILE, "model": MODEL, "model_bytes": 1_500_000_000},
    }


SCENARIOS = [
    _scenario("mpod", {}),
    _scenario("mirsa", {"identity": "irsa"}),
    _scenario("mbatch", {}, realtime=None),
]


@pytest.fixture(scope="module")
def capture() -> Capture:
    return capture_scenarios("aws_stacks", SCENARIOS, NOW)


def _named(capture: Capture, name: str) -> CapturedResource:
    [resource] = [r for r in capture.resources if r.name == name]
    return resource


def _policy(capture: Capture, name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(_named(capture, name).inputs["policy"])
    return document


def test_the_model_reader_documents_name_one_object_and_lint_clean() -> None:
    assert iam.model_object_arn("team-models", "embedder/v3.pt") == MODEL_ARN
    reader = iam.model_reader_policy(MODEL_ARN)
    assert reader == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadModel",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": MODEL_ARN,
            }
        ],
    }
    assert findings(reader) == []
    queue = "arn:aws:sqs:us-east-1:123456789012:q"
    worker = iam.worker_policy(queue, f"{queue}-dlq",
                               "results", "out", model_arn=MODEL_ARN)  # fmt: skip
    assert findings(worker) == []
    assert worker["Statement"][-1] == reader["Statement"][0]


def test_the_realtime_pool_gets_a_role_that_reads_its_model_only(capture: Capture) -> None:
    policy = _policy(capture, "mpod-realtime-policy")
    assert policy == iam.model_reader_policy(MODEL_ARN)
    role = _named(capture, "mpod-realtime-role")
    assert role.inputs["name"] == "inference-prod-mpod-realtime"
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    associations = {
        r.inputs["serviceAccount"]: r
        for r in capture.resources
        if r.type == ASSOCIATION and r.name.startswith("mpod-")
    }
    assert set(associations) == {"mpod-batch", "mpod-realtime"}
    assert associations["mpod-realtime"].inputs["namespace"] == "inference"


def test_the_worker_reads_the_model_beside_its_queue_and_results(capture: Capture) -> None:
    worker = _policy(capture, "mpod-worker-policy")
    assert findings(worker) == []
    statements = {s["Sid"]: s for s in worker["Statement"]}
    assert statements["ReadModel"] == {
        "Sid": "ReadModel",
        "Effect": "Allow",
        "Action": ["s3:GetObject"],
        "Resource": MODEL_ARN,
    }


def test_under_irsa_the_realtime_service_account_names_its_role(capture: Capture) -> None:
    trust = json.loads(_named(capture, "mirsa-realtime-role").inputs["assumeRolePolicy"])
    [statement] = trust["Statement"]
    issuer = statement["Principal"]["Federated"].split(":oidc-provider/", 1)[1]
    assert statement["Condition"]["StringEquals"][f"{issuer}:sub"] == (
        "system:serviceaccount:inference:mirsa-realtime"
    )
    account = _named(capture, "mirsa-realtime-sa")
    annotations = account.inputs["metadata"]["annotations"]
    # The role's ARN is unknown until `pulumi up`; under IRSA the annotation carries it.
    assert set(annotations) == {"eks.amazonaws.com/role-arn"}
    assert "annotations" not in _named(capture, "mpod-realtime-sa").inputs["metadata"]


def test_a_batch_only_stack_makes_no_realtime_role(capture: Capture) -> None:
    roles = {
        r.inputs["name"]
        for r in capture.resources
        if r.type == resource_types.IAM_ROLE and r.name.startswith("mbatch-")
    }
    assert "inference-prod-mbatch-realtime" not in roles
    assert "ReadModel" in {s["Sid"] for s in _policy(capture, "mbatch-worker-policy")["Statement"]}
