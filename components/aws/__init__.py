"""The AWS target: Karpenter GPU capacity, SQS with a DLQ, S3 results, ECR, scoped identities.

`options`, `karpenter` and `iam` are pure (no Pulumi): options with their checks, the Karpenter
objects as wire-form manifests, the IAM policy documents as data. `queue`, `interruption`,
`registry` and `controller` create the AWS resources; `component` holds the Pulumi
`AwsInferenceStack`, loaded only when asked for.
"""

from __future__ import annotations

import importlib
from typing import Any


def __getattr__(name: str) -> Any:
    """Load the Pulumi component (and Pulumi itself) only when it is asked for."""
    if name == "AwsInferenceStack":
        return importlib.import_module(f"{__name__}.component").AwsInferenceStack
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["AwsInferenceStack"]
