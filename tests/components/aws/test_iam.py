"""The AWS target's policy documents: exact actions and ARNs, and parliament finds nothing.

Trust policies are the exception to the linter: AWS forbids a `Resource` in a role's trust
policy, and parliament (written for identity policies) reports every trust policy as missing
one, and any OIDC provider as an unknown federation source. For those, the test asserts that
these are the only findings, and pins the principals and conditions exactly instead.
"""

from __future__ import annotations

from typing import Any

import pytest

from inferstack.components.aws import iam
from inferstack.components.aws.controller import controller_policy
from tests.components.aws.iam_lint import findings

ACCOUNT = "123456789012"
QUEUE = f"arn:aws:sqs:us-east-1:{ACCOUNT}:embedder-jobs"
DLQ = f"{QUEUE}-dlq"
CLUSTER = f"arn:aws:eks:us-east-1:{ACCOUNT}:cluster/inference-prod"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
OIDC = f"arn:aws:iam::{ACCOUNT}:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE0123456789"
RULES = [f"arn:aws:events:us-east-1:{ACCOUNT}:rule/embedder-karpenter-{k}" for k in ("a", "b")]


def _by_sid(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {statement["Sid"]: statement for statement in document["Statement"]}


def _resources(document: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for statement in document["Statement"]:
        resource = statement.get("Resource", [])
        out += resource if isinstance(resource, list) else [resource]
    return out


IDENTITY_AND_RESOURCE_POLICIES = {
    "worker": iam.worker_policy(QUEUE, DLQ, "embedder-results", "embedder/results"),
    "worker-kms": iam.worker_policy(QUEUE, DLQ, "b", "", kms_key_arn=KEY),
    "worker-owned": iam.worker_policy(
        QUEUE, DLQ, "team-results", "irsa/out", resource_account="123456789012"
    ),
    "scaler": iam.scaler_policy(QUEUE),
    "job-queue": iam.job_queue_policy(QUEUE),
    "interruption-queue": iam.interruption_queue_policy(QUEUE, RULES),
    "bucket": iam.bucket_policy("embedder-results"),
}
NODE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/inference-prod-embedder-gpu-node"
CONTROLLER = controller_policy(
    account_id=ACCOUNT,
    region="us-east-1",
    cluster_name="inference-prod",
    cluster_arn=CLUSTER,
    node_role_arn=NODE_ROLE,
    interruption_queue_arn=QUEUE,
)


@pytest.mark.parametrize("name", list(IDENTITY_AND_RESOURCE_POLICIES))
def test_parliament_finds_nothing(name: str) -> None:
    assert findings(IDENTITY_AND_RESOURCE_POLICIES[name]) == []


def test_parliament_does_report_a_wildcard() -> None:
    """The linter is live: a data-plane wildcard on every resource is reported."""
    document = {
        "Version": iam.VERSION,
        "Statement": [{"Effect": "Allow", "Action": "sqs:*", "Resource": "*"}],
    }
    assert findings(document)


def test_worker_gets_its_queue_its_dlq_and_its_results_prefix_only() -> None:
    statements = _by_sid(iam.worker_policy(QUEUE, DLQ, "embedder-results", "embedder/results/"))
    assert statements["ConsumeJobs"]["Action"] == [
        "sqs:ChangeMessageVisibility",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:ReceiveMessage",
    ]
    assert statements["ConsumeJobs"]["Resource"] == QUEUE
    assert statements["DeadLetter"] == {
        "Sid": "DeadLetter",
        "Effect": "Allow",
        "Action": ["sqs:GetQueueUrl", "sqs:SendMessage"],
        "Resource": DLQ,
    }
    assert statements["WriteResults"]["Action"] == ["s3:GetObject", "s3:PutObject"]
    assert statements["WriteResults"]["Resource"] == (
        "arn:aws:s3:::embedder-results/embedder/results/*"
    )
    assert statements["FindResults"]["Action"] == "s3:ListBucket"
    assert statements["FindResults"]["Resource"] == "arn:aws:s3:::embedder-results"
    assert statements["FindResults"]["Condition"] == {
        "StringLike": {"s3:prefix": ["embedder/results/*"]}
    }
    assert set(statements) == {"ConsumeJobs", "DeadLetter", "WriteResults", "FindResults"}


def test_worker_with_a_customer_key_may_use_that_key_only() -> None:
    statements = _by_sid(iam.worker_policy(QUEUE, DLQ, "b", "r", kms_key_arn=KEY))
    assert statements["UseQueueAndBucketKey"]["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert statements["UseQueueAndBucketKey"]["Resource"] == KEY


def test_scaler_reads_the_queue_attributes_only() -> None:
    assert iam.scaler_policy(QUEUE)["Statement"] == [
        {
            "Sid": "ReadQueueLength",
            "Effect": "Allow",
            "Action": ["sqs:GetQueueAttributes"],
            "Resource": QUEUE,
        }
    ]


def test_karpenter_controller_findings_are_the_ones_any_karpenter_controller_has() -> None:
    """Only with `install_karpenter`. Karpenter launches nodes with the node role, so it must
    pass that role (parliament: permissions management, privilege escalation); it is scoped to
    the one role and to EC2. EC2 authorises RunInstances / CreateFleet per resource, across
    statements, so Karpenter's reference policy splits those resources by the conditions that
    apply to each (tags only on what it creates); parliament checks each statement on its own
    and reports the split as a mismatch. Nothing else is reported."""
    reported = findings(CONTROLLER)
    assert {issue for issue, _ in reported} == {
        "PERMISSIONS_MANAGEMENT_ACTIONS",
        "PRIVILEGE_ESCALATION",
        "RESOURCE_MISMATCH",
    }
    for issue, detail in reported:
        if issue == "RESOURCE_MISMATCH":
            assert {d["action"] for d in detail} <= {"ec2:CreateFleet", "ec2:RunInstances"}
    statements = _by_sid(CONTROLLER)
    assert statements["AllowPassingInstanceRole"] == {
        "Sid": "AllowPassingInstanceRole",
        "Effect": "Allow",
        "Action": "iam:PassRole",
        "Resource": NODE_ROLE,
        "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
    }
    assert statements["AllowInterruptionQueueActions"]["Resource"] == QUEUE
    assert statements["AllowAPIServerEndpointDiscovery"]["Resource"] == CLUSTER


@pytest.mark.parametrize("name", [*IDENTITY_AND_RESOURCE_POLICIES, "karpenter-controller"])
def test_no_wildcard_resource_outside_the_apis_without_resource_permissions(name: str) -> None:
    document = IDENTITY_AND_RESOURCE_POLICIES.get(name, CONTROLLER)
    for statement in document["Statement"]:
        resources = statement.get("Resource")
        if resources == "*":
            actions = statement["Action"]
            actions = actions if isinstance(actions, list) else [actions]
            assert all(a.startswith(("ec2:Describe", "pricing:")) for a in actions), statement


def test_queues_and_bucket_deny_requests_without_tls() -> None:
    for document, service in (
        (iam.job_queue_policy(QUEUE), "sqs"),
        (iam.bucket_policy("embedder-results"), "s3"),
    ):
        deny = _by_sid(document)["DenyInsecureTransport"]
        assert deny["Effect"] == "Deny"
        assert deny["Principal"] == "*"
        assert deny["Action"] == f"{service}:*"
        assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert _resources(iam.bucket_policy("b")) == ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]


def test_interruption_queue_admits_eventbridge_for_its_own_rules_only() -> None:
    send = _by_sid(iam.interruption_queue_policy(QUEUE, RULES))["EventBridgeRulesSend"]
    assert send["Principal"] == {"Service": ["events.amazonaws.com"]}
    assert send["Action"] == "sqs:SendMessage"
    assert send["Resource"] == QUEUE
    assert send["Condition"] == {"ArnEquals": {"aws:SourceArn": sorted(RULES)}}


TRUST_FINDINGS = {
    ("MALFORMED", "Statement contains neither Resource nor NotResource"),
    ("UNKNOWN_FEDERATION_SOURCE", OIDC),
}


@pytest.mark.parametrize(
    ("document", "principal", "actions"),
    [
        (iam.node_trust(), {"Service": "ec2.amazonaws.com"}, "sts:AssumeRole"),
        (
            iam.pod_identity_trust(ACCOUNT, CLUSTER),
            {"Service": "pods.eks.amazonaws.com"},
            ["sts:AssumeRole", "sts:TagSession"],
        ),
        (
            iam.irsa_trust(OIDC, "inference", "embedder-batch"),
            {"Federated": OIDC},
            "sts:AssumeRoleWithWebIdentity",
        ),
        (
            iam.role_trust(f"arn:aws:iam::{ACCOUNT}:role/keda-operator"),
            {"AWS": f"arn:aws:iam::{ACCOUNT}:role/keda-operator"},
            # aws/eks-pod-identity-agent#80: a Pod Identity session's tags are transitive, so
            # the chained AssumeRole needs sts:TagSession in this trust.
            ["sts:AssumeRole", "sts:TagSession"],
        ),
    ],
    ids=["node", "pod-identity", "irsa", "keda"],
)
def test_trust_policies(document: dict[str, Any], principal: Any, actions: Any) -> None:
    [statement] = document["Statement"]
    assert statement["Principal"] == principal
    assert statement["Action"] == actions
    assert "Resource" not in statement
    assert set(findings(document)) <= TRUST_FINDINGS


def test_pod_identity_and_irsa_trust_only_this_cluster_and_service_account() -> None:
    [pod] = iam.pod_identity_trust(ACCOUNT, CLUSTER)["Statement"]
    assert pod["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnEquals": {"aws:SourceArn": CLUSTER},
    }
    [irsa] = iam.irsa_trust(OIDC, "inference", "embedder-batch")["Statement"]
    issuer = "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE0123456789"
    assert irsa["Condition"] == {
        "StringEquals": {
            f"{issuer}:sub": "system:serviceaccount:inference:embedder-batch",
            f"{issuer}:aud": "sts.amazonaws.com",
        }
    }


def test_nodes_get_the_managed_policies_a_node_needs() -> None:
    assert [iam.managed_policy_arn(p) for p in iam.NODE_MANAGED_POLICIES] == [
        "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
        "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
        "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly",
        "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
    ]


@pytest.mark.parametrize(
    ("given", "arn"),
    [
        ("keda-operator", f"arn:aws:iam::{ACCOUNT}:role/keda-operator"),
        # IAM User Guide, "IAM identifiers": the path is part of the role's ARN.
        (
            f"arn:aws:iam::{ACCOUNT}:role/platform/keda/keda-operator",
            f"arn:aws:iam::{ACCOUNT}:role/platform/keda/keda-operator",
        ),
        (
            f"arn:aws-us-gov:iam::{ACCOUNT}:role/keda-operator",
            f"arn:aws-us-gov:iam::{ACCOUNT}:role/keda-operator",
        ),
    ],
)
def test_the_keda_principal_keeps_a_role_path(given: str, arn: str) -> None:
    assert iam.role_arn(ACCOUNT, given) == arn
    document = iam.role_trust(iam.role_arn(ACCOUNT, given))
    assert document["Statement"][0]["Principal"] == {"AWS": arn}
    assert set(findings(document)) <= TRUST_FINDINGS


def test_a_role_path_without_its_arn_is_refused() -> None:
    with pytest.raises(ValueError, match="named by its ARN"):
        iam.role_arn(ACCOUNT, "platform/keda-operator")


def test_results_statements_hold_only_for_a_bucket_the_account_owns() -> None:
    """Issue 22: a bucket name carries no account, so results_bucket could name another
    account's bucket; `s3:ResourceAccount` (Amazon S3 User Guide, "Condition key examples")
    scopes the grant to buckets the stack's account owns, unless cross_account."""
    owned = _by_sid(
        iam.worker_policy(QUEUE, DLQ, "team-results", "out", resource_account="123456789012")
    )
    for sid in ("WriteResults", "FindResults"):
        condition = owned[sid]["Condition"]
        assert condition["StringEquals"] == {"s3:ResourceAccount": "123456789012"}
    assert owned["FindResults"]["Condition"]["StringLike"] == {"s3:prefix": ["out/*"]}
    open_ = _by_sid(iam.worker_policy(QUEUE, DLQ, "team-results", "out"))
    assert "Condition" not in open_["WriteResults"]
