"""The batch pool's GKE ComputeClass (`cloud.google.com/v1`), as a wire-form manifest.

A pure function like the Kubernetes manifests, so the test asserts the exact object. There is no
machine-readable schema for this CRD here; the fields follow GKE's ComputeClass reference:

- `priorities`: tried in order when the autoscaler needs a node. Each rule names one of our
  manually created pools (`nodepools: [...]`), spot first, then the on-demand fallback. Pools
  used by a class carry the `cloud.google.com/compute-class` label and taint (see node_pools).
- `activeMigration.optimizeRulePriority: true`: when spot capacity returns, GKE replaces the
  fallback nodes with spot ones (honouring PodDisruptionBudgets), so the pool does not stay on
  on-demand prices after one shortage.
- `nodePoolAutoCreation.enabled: false`: only the pools created here, with their GPU driver,
  taints, service account and bounds, ever carry the work.
- `whenUnsatisfiable: DoNotScaleUp`: when neither pool can grow (both at their max, or no
  capacity), pods wait for the queue to be drained rather than land on some default pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from inferstack.components.gcp.node_pools import PoolPlan, compute_class_name
from inferstack.contract import resource_types
from inferstack.contract.labels import SERVICE_LABEL, TIER_BATCH, TIER_LABEL

API_VERSION: Final = "cloud.google.com/v1"
KIND: Final = "ComputeClass"
TYPE_TOKEN: Final = resource_types.COMPUTE_CLASS
"""How pulumi-kubernetes registers the custom resource: `kubernetes:<apiVersion>:<kind>`."""


def compute_class(service: str, pools: Sequence[PoolPlan]) -> dict[str, Any]:
    """The ComputeClass over the batch pools, spot first (cluster-scoped: no namespace)."""
    batch = [pool for pool in pools if pool.role in ("spot", "fallback")]
    assert batch, "a ComputeClass needs at least one batch pool"
    ordered = sorted(batch, key=lambda pool: 0 if pool.spot else 1)
    migrate = any(pool.spot for pool in ordered) and any(not pool.spot for pool in ordered)
    spec: dict[str, Any] = {
        "description": (
            f"{service} batch pool: Spot VMs first, on-demand when Spot is out"
            if migrate
            else f"{service} batch pool"
        ),
        "priorities": [{"nodepools": [pool.name]} for pool in ordered],
        "nodePoolAutoCreation": {"enabled": False},
        "whenUnsatisfiable": "DoNotScaleUp",
    }
    if migrate:
        spec["activeMigration"] = {"optimizeRulePriority": True}
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": compute_class_name(service),
            "labels": {
                "app.kubernetes.io/name": service,
                "app.kubernetes.io/managed-by": "inferstack",
                SERVICE_LABEL: service,
                TIER_LABEL: TIER_BATCH,
            },
        },
        "spec": spec,
    }


__all__ = ["API_VERSION", "KIND", "TYPE_TOKEN", "compute_class"]
