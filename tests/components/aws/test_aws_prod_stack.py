"""`stacks/Pulumi.aws-prod.yaml` end to end: preview lists every resource, check passes, g6 prices.

The real stack program under the SDK's mock monitor, as `inferstack preview` and `inferstack
check` run it; the per-resource behaviour is tested in test_stack.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from inferstack.cli import main
from inferstack.offline.placeholders import PLACEHOLDER_ACCOUNT
from tests.components.prod_stacks import (
    Document,
    assert_broken_copy_fails,
    assert_check_passes,
    assert_cost_prices,
    assert_roles,
    resources,
)
from tests.offline.stacks import preview, project_with, stack_document

STACK = "aws-prod"


def test_preview_lists_every_resource(stack_preview: Document) -> None:
    # The cluster's one Karpenter (install_karpenter: true) is named after the cluster, not the
    # service: its queue, rules, roles and release are shared by every service's NodePools.
    assert_roles(
        stack_preview,
        present={
            "pulumi:pulumi:Stack": {"inferstack-aws-prod"},
            "pulumi:providers:aws": {"aws"},
            "inferstack:aws:InferenceStack": {"embedder"},
            "inferstack:aws:Karpenter": {"inference-prod"},
            "aws:eks/accessEntry:AccessEntry": {"inference-prod-node-access"},
            "aws:sqs/queue:Queue": {"jobs", "dlq", "inference-prod-interruption"},
            "aws:sqs/queuePolicy:QueuePolicy": {
                "jobs-policy",
                "dlq-policy",
                "inference-prod-interruption-policy",
            },
            "aws:sqs/redriveAllowPolicy:RedriveAllowPolicy": {"dlq-redrive-allow"},
            "aws:s3/bucket:Bucket": {"results"},
            "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": {"results-public-access"},
            "aws:s3/bucketOwnershipControls:BucketOwnershipControls": {"results-ownership"},
            "aws:s3/bucketServerSideEncryptionConfiguration:"
            "BucketServerSideEncryptionConfiguration": {"results-encryption"},
            "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": {"results-expiry"},
            "aws:s3/bucketPolicy:BucketPolicy": {"results-policy"},
            "aws:ecr/repository:Repository": {"runtime-image"},
            "aws:ecr/lifecyclePolicy:LifecyclePolicy": {"runtime-image-lifecycle"},
            "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass": {"node-class"},
            "kubernetes:karpenter.sh/v1:NodePool": {"realtime-node-pool", "batch-node-pool"},
            "inferstack:kubernetes:InferenceService": {"embedder"},
            "kubernetes:core/v1:ServiceAccount": {"realtime-sa", "batch-sa"},
            "kubernetes:apps/v1:Deployment": {"realtime", "batch"},
            "kubernetes:core/v1:Service": {"realtime-service"},
            "kubernetes:policy/v1:PodDisruptionBudget": {"realtime-pdb"},
            "kubernetes:keda.sh/v1alpha1:TriggerAuthentication": {"queue-auth"},
            "kubernetes:keda.sh/v1alpha1:ScaledObject": {"realtime-scaler", "batch-scaler"},
            "kubernetes:networking.k8s.io/v1:NetworkPolicy": {"realtime-netpol", "batch-netpol"},
            "kubernetes:monitoring.coreos.com/v1:PodMonitor": {"realtime-podmonitor"},
        },
        # Identities: the cluster's nodes and Karpenter, the worker and KEDA's queue scaler.
        exactly={
            "aws:iam/role:Role": {
                "inference-prod-node-role",
                "inference-prod-karpenter-role",
                "worker-role",
                "scaler-role",
            },
            "aws:iam/rolePolicy:RolePolicy": {
                "worker-policy",
                "scaler-policy",
                "inference-prod-karpenter-policy",
            },
            "aws:iam/rolePolicyAttachment:RolePolicyAttachment": {
                "inference-prod-node-AmazonEC2ContainerRegistryPullOnly",
                "inference-prod-node-AmazonEKSWorkerNodePolicy",
                "inference-prod-node-AmazonEKS_CNI_Policy",
                "inference-prod-node-AmazonSSMManagedInstanceCore",
            },
            "aws:eks/podIdentityAssociation:PodIdentityAssociation": {
                "worker-identity",
                "inference-prod-karpenter-identity",
            },
            # One interruption queue's four rules, and one Karpenter release.
            "aws:cloudwatch/eventRule:EventRule": {
                "inference-prod-rebalance",
                "inference-prod-scheduled-change",
                "inference-prod-spot-interruption",
                "inference-prod-state-change",
            },
            "kubernetes:helm.sh/v3:Release": {"inference-prod-karpenter", "nvidia-device-plugin"},
        },
    )
    # The engine's default Kubernetes provider, as `pulumi up` lists it.
    assert len(resources(stack_preview, "pulumi:providers:kubernetes")) == 1


def test_the_node_pools_are_g6_and_the_provider_is_us_east_1(stack_preview: Document) -> None:
    [provider] = resources(stack_preview, "pulumi:providers:aws")
    assert provider["inputs"]["region"] == "us-east-1"
    for pool in resources(stack_preview, "kubernetes:karpenter.sh/v1:NodePool"):
        requirements = pool["inputs"]["spec"]["template"]["spec"]["requirements"]
        types = next(r for r in requirements if r["key"] == "node.kubernetes.io/instance-type")
        assert all(value.startswith("g6.") for value in types["values"])


def test_the_pods_run_the_repositorys_image_pinned_by_digest(stack_preview: Document) -> None:
    images = {
        container["image"]
        for r in resources(stack_preview, "kubernetes:apps/v1:Deployment")
        for container in r["inputs"]["spec"]["template"]["spec"]["containers"]
    }
    assert images == {
        f"{PLACEHOLDER_ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/inferstack/embedder-runtime:0.1.0-cuda"
        "@sha256:119b064ccf50c2b4ab2cedfb8e5711abdba7218620d29c72e5227e3fa7b766ed"
    }


def test_data_sources_are_answered_with_marked_placeholders(stack_preview: Document) -> None:
    tokens = {call["token"]: call for call in stack_preview["data_sources"]}
    assert set(tokens) == {
        "aws:index/getCallerIdentity:getCallerIdentity",
        "aws:eks/getCluster:getCluster",
    }
    assert tokens["aws:index/getCallerIdentity:getCallerIdentity"]["answer"]["accountId"] == (
        PLACEHOLDER_ACCOUNT
    )
    assert tokens["aws:eks/getCluster:getCluster"]["args"] == {"name": "inference-prod"}
    text = preview("--stack", STACK).stdout
    assert "answered offline with placeholders" in text


def test_cost_prices_g6_on_demand_and_spot(stack_preview: Document) -> None:
    assert_cost_prices(stack_preview, "aws", "g6.xlarge")


def test_check_passes(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert_check_passes(STACK, capsys, monkeypatch)


def test_bad_aws_options_in_the_stack_config_fail_with_every_field(tmp_path: Any) -> None:
    def change(config: dict[str, Any]) -> None:
        config["inferstack:aws"] = {"region": "af-south-1", "subnet_selector": {}}

    assert_broken_copy_fails(
        STACK,
        tmp_path,
        change,
        (
            "inferstack:aws.cluster_name:",
            "inferstack:aws.region: af-south-1 has no g6 instances",
            "inferstack:aws.subnet_selector:",
        ),
    )


def test_check_fails_naming_a_wildcard_bucket_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 22 item 1: `results_bucket: '*'` and a wildcard KMS ARN passed check with 0
    violations; now the stack's own validation refuses them, naming each field and the fix."""
    document = stack_document(STACK)
    options = document["config"]["inferstack:aws"]
    options["results_bucket"] = "*"
    options["kms_key_arn"] = "arn:aws:kms:*:*:key/*"
    project = project_with(tmp_path, document)
    code = main(["check", "--project-dir", str(project), "--stack", "broken"])
    assert code != 0
    error = capsys.readouterr().err
    assert "inferstack:aws.results_bucket: '*' is not an S3 bucket name" in error
    assert "inferstack:aws.kms_key_arn: 'arn:aws:kms:*:*:key/*' has a wildcard" in error
