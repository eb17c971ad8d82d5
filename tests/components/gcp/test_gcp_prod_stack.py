"""`stacks/Pulumi.gcp-prod.yaml` end to end: preview lists every resource, check passes, g2 prices.

The real stack program under the SDK's mock monitor, as `inferstack preview` and `inferstack
check` run it; the per-resource behaviour is tested in test_gcp_stack.py.
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
    result = _preview("--stack", "gcp-prod", "--json")
    assert result.returncode == 0, result.stderr
    loaded: dict[str, object] = json.loads(result.stdout)
    return loaded


def test_preview_lists_every_resource(document: dict[str, object]) -> None:
    resources = document["resources"]
    assert isinstance(resources, list)
    counts = Counter(r["type"] for r in resources)
    assert counts == {
        "pulumi:pulumi:Stack": 1,
        # The default providers the engine creates, as `pulumi up` would list them.
        "pulumi:providers:gcp": 1,
        "pulumi:providers:kubernetes": 1,
        "inferstack:gcp:InferenceStack": 1,
        "gcp:serviceaccount/account:Account": 1,
        "gcp:artifactregistry/repository:Repository": 1,
        "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember": 1,
        "gcp:projects/iAMMember:IAMMember": 2,  # node role, KEDA's monitoring viewer
        "gcp:container/nodePool:NodePool": 3,
        "kubernetes:cloud.google.com/v1:ComputeClass": 1,
        "gcp:pubsub/topic:Topic": 2,
        "gcp:pubsub/subscription:Subscription": 2,
        "gcp:pubsub/topicIAMMember:TopicIAMMember": 2,
        "gcp:pubsub/subscriptionIAMMember:SubscriptionIAMMember": 3,
        "gcp:storage/bucket:Bucket": 1,
        "gcp:storage/bucketIAMMember:BucketIAMMember": 2,
        "inferstack:kubernetes:InferenceService": 1,
        "kubernetes:core/v1:ServiceAccount": 2,
        "kubernetes:apps/v1:Deployment": 2,
        "kubernetes:core/v1:Service": 1,
        "kubernetes:policy/v1:PodDisruptionBudget": 1,
        "kubernetes:keda.sh/v1alpha1:TriggerAuthentication": 1,
        "kubernetes:keda.sh/v1alpha1:ScaledObject": 2,
        "kubernetes:networking.k8s.io/v1:NetworkPolicy": 2,
    }


def test_the_pools_are_l4_on_g2_in_us_central1(document: dict[str, object]) -> None:
    resources = document["resources"]
    assert isinstance(resources, list)
    pools = [r for r in resources if r["type"] == "gcp:container/nodePool:NodePool"]
    for pool in pools:
        assert pool["inputs"]["location"] == "us-central1"
        assert pool["inputs"]["nodeConfig"]["machineType"] == "g2-standard-8"
        assert pool["inputs"]["nodeConfig"]["guestAccelerators"][0]["type"] == "nvidia-l4"


def test_cost_prices_g2_on_demand_and_spot(document: dict[str, object]) -> None:
    cost = document["cost"]
    assert isinstance(cost, dict)
    assert "gcp g2-standard-8" in cost["price_source"]
    g2 = default_price_table().instances["gcp"]["g2-standard-8"]
    share = f"{g2['spot'] / g2['on_demand']:.0%}"
    assert any(f"at {share} of the on-demand price" in note for note in cost["notes"])
    spot = next(row for row in cost["rows"] if row["lever"] == "spot")
    assert spot["saves_usd"] > 0


def test_check_passes(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    code = main(["check", "--stack", "gcp-prod", "--json"])
    assert json.loads(capsys.readouterr().out) == []
    assert code == 0


def test_bad_gcp_options_in_the_stack_config_fail_with_every_field(tmp_path: Path) -> None:
    document = yaml.safe_load((REPO / "stacks" / "Pulumi.gcp-prod.yaml").read_text())
    config = document["config"]
    config["inferstack:gcp"] = {**config["inferstack:gcp"], "project_number": "x", "zone": "a"}
    config["inferstack:service"]["batch"]["queue"] = {"kind": "sqs", "name": "jobs"}
    (tmp_path / "Pulumi.yaml").write_text(
        yaml.safe_dump({"name": "inferstack", "runtime": "python", "main": str(REPO / "stacks")})
    )
    (tmp_path / "Pulumi.broken.yaml").write_text(yaml.safe_dump(document))
    result = _preview("--stack", "broken", cwd=tmp_path)
    assert result.returncode != 0
    for expected in (
        "inferstack:gcp.zone: unknown option",
        "inferstack:gcp.project_number:",
        "batch.queue.kind: sqs is not a GCP queue",
    ):
        assert expected in result.stderr, result.stderr
