"""`stacks/Pulumi.gcp-prod.yaml` end to end: preview lists every resource, check passes, g2 prices.

The real stack program under the SDK's mock monitor, as `inferstack preview` and `inferstack
check` run it; the per-resource behaviour is tested in test_gcp_stack.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.components.prod_stacks import (
    Document,
    assert_broken_copy_fails,
    assert_check_passes,
    assert_cost_prices,
    assert_roles,
    resources,
)

STACK = "gcp-prod"


def test_preview_lists_every_resource(stack_preview: Document) -> None:
    assert_roles(
        stack_preview,
        present={
            "pulumi:pulumi:Stack": {"inferstack-gcp-prod"},
            "inferstack:gcp:InferenceStack": {"embedder"},
            "gcp:artifactregistry/repository:Repository": {"registry"},
            "gcp:container/nodePool:NodePool": {"realtime-pool", "spot-pool", "fallback-pool"},
            "kubernetes:cloud.google.com/v1:ComputeClass": {"compute-class"},
            "gcp:pubsub/topic:Topic": {"topic", "dead-letter-topic"},
            "gcp:pubsub/subscription:Subscription": {"subscription", "dead-letter-subscription"},
            "gcp:storage/bucket:Bucket": {"results"},
            "inferstack:kubernetes:InferenceService": {"embedder"},
            "kubernetes:core/v1:ServiceAccount": {"realtime-sa", "batch-sa"},
            "kubernetes:apps/v1:Deployment": {"realtime", "batch"},
            "kubernetes:core/v1:Service": {"realtime-service"},
            "kubernetes:policy/v1:PodDisruptionBudget": {"realtime-pdb"},
            "kubernetes:keda.sh/v1alpha1:TriggerAuthentication": {"queue-auth"},
            "kubernetes:keda.sh/v1alpha1:ScaledObject": {"realtime-scaler", "batch-scaler"},
            "kubernetes:networking.k8s.io/v1:NetworkPolicy": {"realtime-netpol", "batch-netpol"},
        },
        # Identities: the nodes' account and the grants of the nodes, the worker, KEDA and the
        # Pub/Sub service agent, and nothing else.
        exactly={
            "gcp:serviceaccount/account:Account": {"nodes"},
            "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember": {
                "nodes-repository-artifactregistry-reader"
            },
            "gcp:projects/iAMMember:IAMMember": {
                "nodes-project-container-defaultnodeserviceaccount",
                "keda-project-monitoring-viewer",
            },
            "gcp:pubsub/topicIAMMember:TopicIAMMember": {
                "dead-letter-agent-publisher",
                "worker-dead-letter-topic-pubsub-publisher",
            },
            "gcp:pubsub/subscriptionIAMMember:SubscriptionIAMMember": {
                "dead-letter-agent-subscriber",
                "worker-subscription-pubsub-subscriber",
                "worker-subscription-pubsub-viewer",
            },
            "gcp:storage/bucketIAMMember:BucketIAMMember": {
                "worker-results-bucket-storage-objectcreator",
                "worker-results-bucket-storage-objectviewer",
            },
        },
    )
    # The default providers the engine creates, as `pulumi up` would list them.
    assert len(resources(stack_preview, "pulumi:providers:gcp")) == 1
    assert len(resources(stack_preview, "pulumi:providers:kubernetes")) == 1


def test_the_pools_are_l4_on_g2_in_us_central1(stack_preview: Document) -> None:
    for pool in resources(stack_preview, "gcp:container/nodePool:NodePool"):
        assert pool["inputs"]["location"] == "us-central1"
        assert pool["inputs"]["nodeConfig"]["machineType"] == "g2-standard-8"
        assert pool["inputs"]["nodeConfig"]["guestAccelerators"][0]["type"] == "nvidia-l4"


def test_cost_prices_g2_on_demand_and_spot(stack_preview: Document) -> None:
    assert_cost_prices(stack_preview, "gcp", "g2-standard-8")


def test_check_passes(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert_check_passes(STACK, capsys, monkeypatch)


def test_bad_gcp_options_in_the_stack_config_fail_with_every_field(tmp_path: Any) -> None:
    def change(config: dict[str, Any]) -> None:
        config["inferstack:gcp"] = {**config["inferstack:gcp"], "project_number": "x", "zone": "a"}
        config["inferstack:service"]["batch"]["queue"] = {"kind": "sqs", "name": "jobs"}

    assert_broken_copy_fails(
        STACK,
        tmp_path,
        change,
        (
            "inferstack:gcp.zone: unknown option",
            "inferstack:gcp.project_number:",
            "batch.queue.kind: sqs is not a GCP queue",
        ),
    )
