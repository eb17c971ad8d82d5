"""A Cloud Run plan and options that are valid: each test changes one field."""

from __future__ import annotations

from typing import Any

from inferstack.components.cloudrun.options import CloudRunOptions
from inferstack.components.planning.plan import ServicePlan, plan_service
from inferstack.profile import parse_profile
from tests.components.aws.factories import NOW
from tests.components.factories import PROFILE, make_spec

PROJECT = "acme-inference"
NUMBER = "123456789012"
REGION = "us-central1"
DIGEST = "sha256:" + "ab" * 32
IMAGE = f"{REGION}-docker.pkg.dev/{PROJECT}/embedder/runtime:0.1.0-cuda@{DIGEST}"
MODEL_URI = "gs://team-models/embedder/model.pt"
MODEL = {"uri": MODEL_URI, "profile": "p.json"}
MODEL_PROFILE = {**PROFILE, "model": MODEL_URI}
GATEWAY = f"serviceAccount:gateway@{PROJECT}.iam.gserviceaccount.com"
QUEUE = {"kind": "pubsub", "name": "jobs"}

CLOUDRUN_OPTIONS: dict[str, Any] = {
    "project": PROJECT,
    "project_number": NUMBER,
    "region": REGION,
    "image": IMAGE,
    "invokers": [GATEWAY],
    "results_bucket": "team-results",
}


def make_options(**changes: Any) -> CloudRunOptions:
    return CloudRunOptions(**{**CLOUDRUN_OPTIONS, **changes})


def make_plan(**spec_changes: Any) -> ServicePlan:
    spec = make_spec(**{"model": MODEL, "batch__queue": QUEUE, **spec_changes})
    return plan_service(spec, parse_profile(MODEL_PROFILE), target="cloudrun", now=NOW)
