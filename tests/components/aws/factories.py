"""An AWS plan and options that are valid: each test changes one field."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from inferstack.components.aws.options import AwsOptions
from inferstack.components.planning.plan import ServicePlan, plan_service
from tests.components.factories import make_profile, make_spec

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
ACCOUNT = "123456789012"
REGION = "us-east-1"

AWS_OPTIONS: dict[str, Any] = {
    "cluster_name": "inference-prod",
    "region": REGION,
    "subnet_selector": {"karpenter.sh/discovery": "inference-prod"},
}


def make_options(**changes: Any) -> AwsOptions:
    return AwsOptions(**{**AWS_OPTIONS, **changes})


def make_plan(**spec_changes: Any) -> ServicePlan:
    return plan_service(make_spec(**spec_changes), make_profile(), target="aws", now=NOW)
