"""The Kubernetes layer: workloads and KEDA autoscalers of a planned service, on any cluster.

`options`, `workloads` and `scaling` are pure functions returning wire-form manifests (no Pulumi);
`component` holds the Pulumi `KubernetesInferenceService`, loaded only when asked for.
"""

from __future__ import annotations

import importlib
from typing import Any


def __getattr__(name: str) -> Any:
    """Load the Pulumi component (and Pulumi itself) only when it is asked for."""
    if name == "KubernetesInferenceService":
        return importlib.import_module(f"{__name__}.component").KubernetesInferenceService
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["KubernetesInferenceService"]
