"""The GCP target lets each pool's own identity read its model in Cloud Storage, and nothing
more: objectViewer on the model's bucket, conditioned on that one object, for the worker and the
realtime pool (a principal, or a Google service account only the pool's KSA may act as)."""

from __future__ import annotations

from typing import Any

import pytest

from inferstack.components.gcp import identity
from inferstack.offline.capture import Capture, CapturedResource
from tests.components.factories import PROFILE, spec_data
from tests.components.gcp.test_gcp_stack import GCP, NOW, PROJECT, PUBSUB_BATCH, principal
from tests.components.scenarios import capture_scenarios

MODEL = "gs://team-models/embedder/v3.pt"
CONDITION = 'resource.name == "projects/_/buckets/team-models/objects/embedder/v3.pt"'
VIEWER = "roles/storage.objectViewer"


def _scenario(name: str, gcp: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {
        "spec": spec_data(
            name=name,
            batch=dict(PUBSUB_BATCH),
            model={"uri": MODEL, "profile": "p.json"},
            **changes,
        ),
        "gcp": gcp,
        "kubernetes": {"namespace": "inference"},
        "profile": {**PROFILE, "model": MODEL, "model_bytes": 1_500_000_000},
    }


SCENARIOS = [
    _scenario("gmodel", GCP),
    _scenario("gsa", GCP | {"identity": "service_account"}),
]


@pytest.fixture(scope="module")
def capture() -> Capture:
    return capture_scenarios("gcp_stacks", SCENARIOS, NOW)


def _model_bindings(capture: Capture, stack: str) -> dict[str, CapturedResource]:
    """The bindings on the model's bucket, by member."""
    return {
        r.inputs["member"]: r
        for r in capture.resources
        if r.name.startswith(f"{stack}-")
        and r.type.endswith("BucketIAMMember")
        and r.inputs.get("bucket") == "team-models"
    }


def test_the_grant_is_one_object_of_the_model_bucket() -> None:
    member = "principal://example"
    [grant] = identity.model_grants(member, MODEL)
    assert grant == identity.Grant(
        "model_bucket",
        VIEWER,
        member,
        "fetch the model at pod start",
        identity.Condition("read the model object", CONDITION),
    )
    assert identity.model_grants(member, "s3://b/k.pt") == []
    assert identity.model_grants(member, "builtin://mlp") == []


def test_both_pools_read_the_model_object_with_their_own_principal(capture: Capture) -> None:
    bindings = _model_bindings(capture, "gmodel")
    assert set(bindings) == {
        principal("inference", "gmodel-batch"),
        principal("inference", "gmodel-realtime"),
    }
    for binding in bindings.values():
        assert binding.inputs["role"] == VIEWER
        assert binding.inputs["condition"] == {
            "title": "read the model object",
            "expression": CONDITION,
        }


def test_with_service_accounts_the_realtime_pool_gets_one_that_only_its_ksa_may_use(
    capture: Capture,
) -> None:
    realtime = f"serviceAccount:gsa-rt@{PROJECT}.iam.gserviceaccount.com"
    batch = f"serviceAccount:gsa-batch@{PROJECT}.iam.gserviceaccount.com"
    assert set(_model_bindings(capture, "gsa")) == {realtime, batch}
    [account] = [r for r in capture.resources if r.name == "gsa-realtime-identity"]
    assert account.inputs["accountId"] == "gsa-rt"
    [impersonation] = [
        r
        for r in capture.resources
        if r.name.startswith("gsa-realtime-")
        and r.inputs.get("role") == "roles/iam.workloadIdentityUser"
    ]
    assert impersonation.inputs["member"] == (
        f"serviceAccount:{PROJECT}.svc.id.goog[inference/gsa-realtime]"
    )
    [ksa] = [r for r in capture.resources if r.name == "gsa-realtime-sa"]
    assert ksa.inputs["metadata"]["annotations"] == {
        "iam.gke.io/gcp-service-account": f"gsa-rt@{PROJECT}.iam.gserviceaccount.com"
    }
