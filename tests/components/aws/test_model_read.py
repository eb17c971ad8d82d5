"""The AWS target lets each pool's own identity read its model in S3, and nothing more: the
exact documents under the Pulumi mocks, clean under parliament. A bucket encrypted with a
customer key (SSE-KMS) adds `kms:Decrypt` on that key, through S3, for the model object only."""

from __future__ import annotations

import json
from typing import Any

import pytest

from inferstack.components.aws import iam, names
from inferstack.contract import resource_types
from inferstack.offline.capture import Capture, CapturedResource
from tests.components.aws.factories import AWS_OPTIONS, NOW
from tests.components.aws.iam_lint import findings
from tests.components.factories import PROFILE, spec_data
from tests.components.scenarios import capture_scenarios

MODEL = "s3://team-models/embedder/v3.pt"
MODEL_ARN = "arn:aws:s3:::team-models/embedder/v3.pt"
MODEL_KEY = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
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
    _scenario("mkms", {"model_kms_key_arn": MODEL_KEY}),
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


# ---------------------------------------------------------------------------------------------
# A model bucket encrypted with a customer key (SSE-KMS)


def _iam_definition(prefix: str) -> dict[str, Any]:
    """parliament's copy of the Service Authorization Reference for one service prefix."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # parliament imports pkg_resources
        from parliament import iam_definition

    [service] = [s for s in iam_definition if s["prefix"] == prefix]
    return dict(service)


def test_the_model_key_statement_uses_kms_own_action_and_condition_keys() -> None:
    """The action and condition keys as AWS lists them.

    Service Authorization Reference, "Actions, resources, and condition keys for AWS Key
    Management Service" (https://docs.aws.amazon.com/service-authorization/latest/reference/
    list_awskeymanagementservice.html), read from parliament's copy of it: `kms:Decrypt` on a
    `key` resource, filtered by `kms:EncryptionContext:${EncryptionContextKey}`; `kms:ViaService`
    is a KMS condition key. AWS KMS Developer Guide, "AWS KMS condition keys"
    (https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html), kms:ViaService:
    values are `SERVICE.REGION.amazonaws.com` (its example: `ec2.us-west-2.amazonaws.com`);
    kms:EncryptionContext:context-key takes the context key after the prefix. Downloading an
    SSE-KMS object needs kms:Decrypt on its key (Amazon S3 User Guide, "Using server-side
    encryption with AWS KMS keys (SSE-KMS)"; AWS re:Post knowledge center,
    https://repost.aws/knowledge-center/decrypt-kms-encrypted-objects-s3). S3's encryption
    context is `aws:s3:arn`: the object's ARN, or the bucket's with an S3 Bucket Key (Amazon S3
    User Guide, SSE-KMS, "Encryption context").
    """
    kms = _iam_definition("kms")
    [decrypt] = [a for a in kms["privileges"] if a["privilege"] == "Decrypt"]
    assert [a.split(":")[1] for a in iam.MODEL_KEY_ACTIONS] == [decrypt["privilege"]]
    assert "key*" in {r["resource_type"] for r in decrypt["resource_types"]}
    conditions = {c["condition"] for c in kms["conditions"]}
    assert iam.VIA_SERVICE_KEY in conditions
    template = "kms:EncryptionContext:${EncryptionContextKey}"
    assert template in conditions
    assert template in {k for r in decrypt["resource_types"] for k in r["condition_keys"]}
    assert template.replace("${EncryptionContextKey}", "aws:s3:arn") == iam.S3_CONTEXT_KEY

    key = names.parse_arn(MODEL_KEY, "kms", "key", regional=True)
    assert iam.s3_via_service(key) == "s3.eu-west-1.amazonaws.com"
    statement = iam.model_key_statement(key, MODEL_ARN)
    assert statement == {
        "Sid": "DecryptModel",
        "Effect": "Allow",
        "Action": ["kms:Decrypt"],
        "Resource": MODEL_KEY,
        "Condition": {
            "StringEquals": {
                "kms:ViaService": "s3.eu-west-1.amazonaws.com",
                "kms:EncryptionContext:aws:s3:arn": ["arn:aws:s3:::team-models", MODEL_ARN],
            }
        },
    }


def test_the_key_documents_lint_clean_and_the_linter_reads_their_conditions() -> None:
    key = names.parse_arn(MODEL_KEY, "kms", "key", regional=True)
    reader = iam.model_reader_policy(MODEL_ARN, key)
    assert [s["Sid"] for s in reader["Statement"]] == ["ReadModel", "DecryptModel"]
    assert findings(reader) == []
    queue = "arn:aws:sqs:us-east-1:123456789012:q"
    worker = iam.worker_policy(queue, f"{queue}-dlq", "results", "out",
                               model_arn=MODEL_ARN, model_key=key)  # fmt: skip
    assert findings(worker) == []
    # parliament checks condition keys against KMS's: a misspelt one is reported.
    wrong = json.loads(json.dumps(reader).replace("kms:ViaService", "kms:ViaServices"))
    assert findings(wrong)


def test_with_model_kms_key_arn_each_pool_that_reads_the_model_may_decrypt_it(
    capture: Capture,
) -> None:
    key = names.parse_arn(MODEL_KEY, "kms", "key", regional=True)
    realtime = _policy(capture, "mkms-realtime-policy")
    assert realtime == iam.model_reader_policy(MODEL_ARN, key)
    worker = {s["Sid"]: s for s in _policy(capture, "mkms-worker-policy")["Statement"]}
    assert worker["DecryptModel"] == iam.model_key_statement(key, MODEL_ARN)
    # The stack's own key (kms_key_arn, unset here) is a separate grant: none appears.
    assert "UseQueueAndBucketKey" not in worker
    # Without the option nothing about KMS is granted.
    assert "DecryptModel" not in {
        s["Sid"] for s in _policy(capture, "mpod-worker-policy")["Statement"]
    }
