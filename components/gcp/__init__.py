"""The GCP target: GKE GPU node pools, a ComputeClass, Pub/Sub, GCS, Artifact Registry and IAM.

One module per responsibility; `component` assembles them and hands the result to the Kubernetes
layer. Everything but `component` and the resource builders is plain Python without Pulumi.
"""

from __future__ import annotations

import importlib
from typing import Any


def __getattr__(name: str) -> Any:
    """Load the Pulumi component (and Pulumi itself) only when it is asked for."""
    if name == "GcpInferenceStack":
        return importlib.import_module(f"{__name__}.component").GcpInferenceStack
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["GcpInferenceStack"]
