"""The labels every GCP resource of a service carries (GCP's form of AWS's resource tags).

GCP label keys allow no `/` or `.`, so the Kubernetes-style keys are spelt with hyphens here;
they let a platform team find what one service costs in the billing export.
"""

from __future__ import annotations

from typing import Final

SERVICE_KEY: Final = "inferstack-service"
MANAGED_BY: Final = {"managed-by": "inferstack"}


def resource_labels(service: str, **extra: str) -> dict[str, str]:
    """The service's labels on a GCP resource, plus `extra` (e.g. a node pool's tier)."""
    return {SERVICE_KEY: service, **MANAGED_BY, **extra}


__all__ = ["MANAGED_BY", "SERVICE_KEY", "resource_labels"]
