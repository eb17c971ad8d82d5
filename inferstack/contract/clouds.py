"""Spot capacity, per cloud: the node labels that mark it, and how much notice it gives.

The components keep realtime pods off every one of these labels and steer batch pods onto them;
the policy pack recognises spot admission by the same table; the worker and sizing fit their
drain into the same notices.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

Provider = Literal["aws", "gcp", "azure"]


@dataclass(frozen=True)
class SpotLabel:
    """A node label (and the matching taint, where a platform taints) that marks spot capacity."""

    key: str
    value: str
    """The value nodes carry when they are spot (compared case-insensitively when read)."""
    only_on_spot: bool
    """True when on-demand nodes lack the label (GKE, AKS); False when every node carries it."""
    provider: Provider


EKS_CAPACITY_TYPE: Final = "eks.amazonaws.com/capacityType"
KARPENTER_CAPACITY_TYPE: Final = "karpenter.sh/capacity-type"
GKE_SPOT: Final = "cloud.google.com/gke-spot"
GKE_PREEMPTIBLE: Final = "cloud.google.com/gke-preemptible"
GKE_PROVISIONING: Final = "cloud.google.com/gke-provisioning"
AKS_SCALESET_PRIORITY: Final = "kubernetes.azure.com/scalesetpriority"

SPOT_LABELS: Final[tuple[SpotLabel, ...]] = (
    SpotLabel(EKS_CAPACITY_TYPE, "SPOT", False, "aws"),
    SpotLabel(KARPENTER_CAPACITY_TYPE, "spot", False, "aws"),
    SpotLabel(GKE_SPOT, "true", True, "gcp"),
    SpotLabel(GKE_PREEMPTIBLE, "true", True, "gcp"),
    SpotLabel(GKE_PROVISIONING, "spot", False, "gcp"),
    SpotLabel(AKS_SCALESET_PRIORITY, "spot", True, "azure"),
)
"""By convention: EKS managed node groups, Karpenter, GKE Spot VMs, GKE preemptible VMs, GKE
ComputeClass provisioning, AKS spot pools."""

INTERRUPTION_NOTICE_SECONDS: Final[dict[Provider, int]] = {"aws": 120, "gcp": 30, "azure": 30}
"""Time between the spot notice and the machine's stop: EC2 two minutes, GCE and Azure 30 s."""

PUBSUB_SERVICE_AGENT_DOMAIN: Final = "gcp-sa-pubsub.iam.gserviceaccount.com"
"""Domain of a project's Pub/Sub service agent, which forwards messages to dead-letter topics."""


def pubsub_service_agent(project_number: str) -> str:
    """The IAM member of the Pub/Sub service agent of the project numbered `project_number`."""
    return f"serviceAccount:service-{project_number}@{PUBSUB_SERVICE_AGENT_DOMAIN}"


GCP_PROJECT_ID: Final = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
"""A Google Cloud project ID (Resource Manager, "Creating and managing projects": 6 to 30
lowercase letters, digits or hyphens, starting with a letter, no trailing hyphen)."""
