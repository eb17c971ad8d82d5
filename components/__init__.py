"""Declaring an inference stack: the spec, sizing and cost, the Pulumi components, the preview.

Spec, profile, sizing and cost are pure Python and import no Pulumi; the Pulumi components are
loaded on first access, so `from inferstack.components import size_service` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

from inferstack.components.aws.options import AwsOptions
from inferstack.components.gcp.options import GcpOptions
from inferstack.components.kubernetes.bindings import KubernetesBindings, QueueWiring
from inferstack.components.kubernetes.options import (
    KubernetesOptions,
    PoolPlacement,
    QueueBinding,
)
from inferstack.components.planning.clouds import CLOUDS, Cloud, Target
from inferstack.components.planning.cost import CostEstimate, LeverRow, estimate_cost
from inferstack.components.planning.plan import ServicePlan, plan_service
from inferstack.components.planning.sizing import (
    BatchSizing,
    Derived,
    PrewarmWindow,
    RealtimeSizing,
    Sizing,
    size_service,
)
from inferstack.components.planning.spec import (
    InferenceServiceSpec,
    load_spec_file,
    load_spec_from_config,
    parse_spec,
)
from inferstack.errors import Problem, SpecError
from inferstack.profile import Profile, load_profile, parse_profile, resolve_profile

_PULUMI_COMPONENTS = {
    "KubernetesInferenceService": "inferstack.components.kubernetes.component",
    "GcpInferenceStack": "inferstack.components.gcp.component",
    "AwsInferenceStack": "inferstack.components.aws.component",
}


def __getattr__(name: str) -> Any:
    """Load the Pulumi components (and Pulumi itself) only when one is asked for."""
    if name in _PULUMI_COMPONENTS:
        return getattr(importlib.import_module(_PULUMI_COMPONENTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CLOUDS",
    "AwsInferenceStack",
    "AwsOptions",
    "BatchSizing",
    "Cloud",
    "CostEstimate",
    "Derived",
    "GcpInferenceStack",
    "GcpOptions",
    "InferenceServiceSpec",
    "KubernetesBindings",
    "KubernetesInferenceService",
    "KubernetesOptions",
    "LeverRow",
    "PoolPlacement",
    "PrewarmWindow",
    "Problem",
    "QueueBinding",
    "QueueWiring",
    "Profile",
    "RealtimeSizing",
    "ServicePlan",
    "Sizing",
    "SpecError",
    "Target",
    "estimate_cost",
    "load_profile",
    "load_spec_file",
    "load_spec_from_config",
    "parse_profile",
    "parse_spec",
    "plan_service",
    "resolve_profile",
    "size_service",
]
