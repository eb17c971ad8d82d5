"""A SageMaker plan and options that are valid: each test changes one field."""

from __future__ import annotations

from typing import Any

from inferstack.components.planning.plan import ServicePlan, plan_service
from inferstack.components.sagemaker.options import SageMakerOptions
from inferstack.profile import parse_profile
from tests.components.aws.factories import NOW
from tests.components.factories import PROFILE, make_spec

ACCOUNT = "123456789012"
REGION = "us-east-1"
DIGEST = "sha256:" + "ab" * 32
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/inferstack/runtime@{DIGEST}"
MODEL_URI = "s3://team-models/embedder/model.pt"
MODEL = {"uri": MODEL_URI, "profile": "p.json"}
MODEL_PROFILE = {**PROFILE, "model": MODEL_URI}

SAGEMAKER_OPTIONS: dict[str, Any] = {
    "region": REGION,
    "image": IMAGE,
    "async_bucket": "team-async",
}


def make_options(**changes: Any) -> SageMakerOptions:
    return SageMakerOptions(**{**SAGEMAKER_OPTIONS, **changes})


def make_plan(**spec_changes: Any) -> ServicePlan:
    spec = make_spec(**{"model": MODEL, **spec_changes})
    return plan_service(spec, parse_profile(MODEL_PROFILE), target="sagemaker", now=NOW)
