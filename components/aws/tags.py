"""The tags every AWS resource of a service carries (and the Karpenter objects' labels).

The service tag marks an inference role for the pack's scoped-inference-identities rule and
lets a platform team find what one service costs; `managed-by` says which tool owns it.
"""

from __future__ import annotations

from typing import Final

from inferstack.components.planning.plan import ServicePlan
from inferstack.contract.labels import SERVICE_LABEL

MANAGED_BY: Final = {"app.kubernetes.io/managed-by": "inferstack"}


def resource_tags(plan: ServicePlan, **extra: str) -> dict[str, str]:
    """The service's tags, plus `extra` (e.g. the queue's max job time)."""
    return {SERVICE_LABEL: plan.spec.name, **MANAGED_BY, **extra}


__all__ = ["MANAGED_BY", "resource_tags"]
