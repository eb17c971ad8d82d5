"""The Kubernetes layer: workloads and KEDA autoscalers of a planned service, on any cluster.

`options` (what a user writes) and `bindings` (what a target wires in) are plain data;
`workloads`, `scaling` and `network` are pure functions returning wire-form manifests (no
Pulumi); `component` holds the Pulumi `KubernetesInferenceService`, loaded only when asked for.
"""

from __future__ import annotations

import importlib
from typing import Any

from inferstack.components.kubernetes.bindings import KubernetesBindings, QueueWiring
from inferstack.components.kubernetes.options import (
    KubernetesOptions,
    PoolPlacement,
    QueueBinding,
    parse_options,
)


def __getattr__(name: str) -> Any:
    """Load the Pulumi component (and Pulumi itself) only when it is asked for."""
    if name == "KubernetesInferenceService":
        return importlib.import_module(f"{__name__}.component").KubernetesInferenceService
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "KubernetesBindings",
    "KubernetesInferenceService",
    "KubernetesOptions",
    "PoolPlacement",
    "QueueBinding",
    "QueueWiring",
    "parse_options",
]
