"""`stacks/Pulumi.aws-prod.yaml` end to end: preview lists every resource, check passes, g6 prices.

The real stack program under the SDK's mock monitor, as `inferstack preview` and `inferstack
check` run it; the per-resource behaviour is tested in test_stack.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from inferstack.cli import main
from inferstack.components.planning.pricing import default_price_table
from inferstack.offline.placeholders import PLACEHOLDER_ACCOUNT

REPO = Path(__file__).resolve().parents[3]


def _preview(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inferstack.cli", "preview", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def document() -> dict[str, object]:
    result = _preview("--stack", "aws-prod", "--json")
    assert result.returncode == 0, result.stderr
    loaded: dict[str, object] = json.loads(result.stdout)
    return loaded


def test_preview_lists_every_resource(document: dict[str, object]) -> None:
    resources = document["resources"]
    assert isinstance(resources, list)
    counts = Counter(r["type"] for r in resources)
    assert counts == {
        "pulumi:pulumi:Stack": 1,
        "pulumi:providers:aws": 1,
        "pulumi:providers:kubernetes": 1,  # the engine's default provider, as `pulumi up` lists it
        "inferstack:aws:InferenceStack": 1,
        "aws:iam/role:Role": 3,  # nodes, worker, KEDA's queue scaler
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment": 4,
        "aws:iam/rolePolicy:RolePolicy": 2,
        "aws:eks/accessEntry:AccessEntry": 1,
        "aws:eks/podIdentityAssociation:PodIdentityAssociation": 1,
        "aws:sqs/queue:Queue": 3,  # jobs, DLQ, Karpenter's interruption queue
        "aws:sqs/queuePolicy:QueuePolicy": 3,
        "aws:sqs/redriveAllowPolicy:RedriveAllowPolicy": 1,
        "aws:cloudwatch/eventRule:EventRule": 4,
        "aws:cloudwatch/eventTarget:EventTarget": 4,
        "aws:s3/bucket:Bucket": 1,
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": 1,
        "aws:s3/bucketOwnershipControls:BucketOwnershipControls": 1,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": 1,
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": 1,
        "aws:s3/bucketPolicy:BucketPolicy": 1,
        "aws:ecr/repository:Repository": 1,
        "aws:ecr/lifecyclePolicy:LifecyclePolicy": 1,
        "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass": 1,
        "kubernetes:karpenter.sh/v1:NodePool": 2,
        "inferstack:kubernetes:InferenceService": 1,
        "kubernetes:core/v1:ServiceAccount": 2,
        "kubernetes:apps/v1:Deployment": 2,
        "kubernetes:core/v1:Service": 1,
        "kubernetes:policy/v1:PodDisruptionBudget": 1,
        "kubernetes:keda.sh/v1alpha1:TriggerAuthentication": 1,
        "kubernetes:keda.sh/v1alpha1:ScaledObject": 2,
        "kubernetes:networking.k8s.io/v1:NetworkPolicy": 2,
    }


def test_the_node_pools_are_g6_and_the_provider_is_us_east_1(document: dict[str, object]) -> None:
    resources = document["resources"]
    assert isinstance(resources, list)
    [provider] = [r for r in resources if r["type"] == "pulumi:providers:aws"]
    assert provider["inputs"]["region"] == "us-east-1"
    pools = [r for r in resources if r["type"] == "kubernetes:karpenter.sh/v1:NodePool"]
    for pool in pools:
        requirements = pool["inputs"]["spec"]["template"]["spec"]["requirements"]
        types = next(r for r in requirements if r["key"] == "node.kubernetes.io/instance-type")
        assert all(value.startswith("g6.") for value in types["values"])


def test_the_pods_run_the_repositorys_image_pinned_by_digest(document: dict[str, object]) -> None:
    resources = document["resources"]
    assert isinstance(resources, list)
    images = {
        container["image"]
        for r in resources
        if r["type"] == "kubernetes:apps/v1:Deployment"
        for container in r["inputs"]["spec"]["template"]["spec"]["containers"]
    }
    assert images == {
        f"{PLACEHOLDER_ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/inferstack/embedder-runtime:0.1.0"
        "@sha256:ef9b6b36502fa94d17957b9ed0c80298cdbb24cfef431090a64ecd593167143b"
    }


def test_data_sources_are_answered_with_marked_placeholders(document: dict[str, object]) -> None:
    calls = document["data_sources"]
    assert isinstance(calls, list)
    tokens = {call["token"]: call for call in calls}
    assert set(tokens) == {
        "aws:index/getCallerIdentity:getCallerIdentity",
        "aws:eks/getCluster:getCluster",
    }
    assert tokens["aws:index/getCallerIdentity:getCallerIdentity"]["answer"]["accountId"] == (
        PLACEHOLDER_ACCOUNT
    )
    assert tokens["aws:eks/getCluster:getCluster"]["args"] == {"name": "inference-prod"}
    text = _preview("--stack", "aws-prod").stdout
    assert "answered offline with placeholders" in text


def test_cost_prices_g6_on_demand_and_spot(document: dict[str, object]) -> None:
    cost = document["cost"]
    assert isinstance(cost, dict)
    assert "aws g6.xlarge" in cost["price_source"]
    g6 = default_price_table().instances["aws"]["g6.xlarge"]
    share = f"{g6['spot'] / g6['on_demand']:.0%}"
    assert any(f"at {share} of the on-demand price" in note for note in cost["notes"])
    spot = next(row for row in cost["rows"] if row["lever"] == "spot")
    assert spot["saves_usd"] > 0


def test_check_passes(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    code = main(["check", "--stack", "aws-prod", "--json"])
    assert json.loads(capsys.readouterr().out) == []
    assert code == 0


def test_bad_aws_options_in_the_stack_config_fail_with_every_field(tmp_path: Path) -> None:
    document = yaml.safe_load((REPO / "stacks" / "Pulumi.aws-prod.yaml").read_text())
    config = document["config"]
    config["inferstack:aws"] = {"region": "af-south-1", "subnet_selector": {}}
    (tmp_path / "Pulumi.yaml").write_text(
        yaml.safe_dump({"name": "inferstack", "runtime": "python", "main": str(REPO / "stacks")})
    )
    (tmp_path / "Pulumi.broken.yaml").write_text(yaml.safe_dump(document))
    result = _preview("--stack", "broken", cwd=tmp_path)
    assert result.returncode != 0
    for expected in (
        "inferstack:aws.cluster_name:",
        "inferstack:aws.region: af-south-1 has no g6 instances",
        "inferstack:aws.subnet_selector:",
    ):
        assert expected in result.stderr, result.stderr
