"""The cluster add-ons a GPU inference stack needs, and how a stack declares each of them.

Every stack here relies on controllers it does not run itself: the NVIDIA device plugin (or GKE's
own) advertises `nvidia.com/gpu`, KEDA runs the ScaledObjects, the KEDA HTTP add-on holds
requests while a pool scaled to zero wakes, a Prometheus scrapes the demand gauges (or Managed
Prometheus on GKE), and on EKS Karpenter launches the GPU nodes. Missing any of them, `pulumi up`
succeeds and the service never serves or never scales. So a stack declares each add-on it needs
(`inferstack:kubernetes.addons`): either `install: true` (a Helm release at the pinned chart
version below, created by this stack) or `present: "<version>"` (already on the cluster, at the
chart version the stack expects). `needed_addons` says which ones a stack needs and why;
`inferstack check` warns about each needed add-on that is neither installed nor stated present.

Cluster add-ons are cluster-scoped: one stack per cluster installs each, the others state it.
Karpenter is declared on the AWS target itself (`install_karpenter`, `KarpenterController`), or
stated present here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from pydantic import model_validator

from inferstack.components.planning.spec import InferenceServiceSpec
from inferstack.components.planning.validation import StrictModel

AddOnName = Literal["nvidia_device_plugin", "keda", "keda_http_addon", "prometheus", "karpenter"]


@dataclass(frozen=True)
class Chart:
    """A pinned Helm chart: where it comes from, its version, the namespace and release name."""

    repository: str
    chart: str
    version: str
    namespace: str
    release: str


NVIDIA_DEVICE_PLUGIN_CHART: Final = Chart(
    "https://nvidia.github.io/k8s-device-plugin",
    "nvidia-device-plugin",
    "0.20.0",
    "nvidia-device-plugin",
    "nvidia-device-plugin",
)
"""NVIDIA/k8s-device-plugin deployments/helm/nvidia-device-plugin (chart 0.20.0)."""
KEDA_CHART: Final = Chart("https://kedacore.github.io/charts", "keda", "2.19.0", "keda", "keda")
"""kedacore/charts `keda` (CRDs match ../shared/schemas/keda)."""
KEDA_HTTP_ADDON_CHART: Final = Chart(
    "https://kedacore.github.io/charts",
    "keda-add-ons-http",
    "0.14.0",
    "keda",
    "keda-add-ons-http",
)
"""kedacore/charts `keda-add-ons-http`: 0.14 introduced InterceptorRoute (v1beta1), used here."""
PROMETHEUS_CHART: Final = Chart(
    "https://prometheus-community.github.io/helm-charts",
    "kube-prometheus-stack",
    "88.5.3",
    "monitoring",
    "kube-prometheus-stack",
)
"""prometheus-community/helm-charts `kube-prometheus-stack` 88.5.3 (prometheus-operator v0.93.1,
whose PodMonitor CRD tests/components/crds/ holds), released under the name the PodMonitor's
`release` label selects by default (`KubernetesOptions.prometheus_release`)."""

CHARTS: Final[dict[AddOnName, Chart]] = {
    "nvidia_device_plugin": NVIDIA_DEVICE_PLUGIN_CHART,
    "keda": KEDA_CHART,
    "keda_http_addon": KEDA_HTTP_ADDON_CHART,
    "prometheus": PROMETHEUS_CHART,
}
"""The add-ons a stack may install here (Karpenter is installed by the AWS target)."""

DEVICE_PLUGIN_VALUES: Final = {"gfd": {"enabled": True}}
"""GPU Feature Discovery, which brings Node Feature Discovery: NFD labels GPU nodes
`feature.node.kubernetes.io/pci-10de.present=true`, one of the chart's default node-affinity
terms, on nodes this stack did not label itself (the cloud targets' pools carry
`nvidia.com/gpu.present=true`, another term)."""


class AddOn(StrictModel):
    """One add-on: installed by this stack, or stated present at the version the stack expects."""

    install: bool = False
    """Install it here, as a Helm release at the pinned chart version."""
    present: str | None = None
    """Already on the cluster: the chart version (or, for a managed add-on, its name, e.g.
    `gke-managed`) the stack expects."""

    @model_validator(mode="after")
    def _one_way(self) -> AddOn:
        if self.install == (self.present is not None):
            raise ValueError(
                "declare an add-on either installed (install: true) or present (present: "
                "'<version>'), exactly one of the two"
            )
        return self


class ClusterAddOns(StrictModel):
    """The add-ons of the cluster as this stack sees them (`inferstack:kubernetes.addons`)."""

    nvidia_device_plugin: AddOn | None = None
    """Advertises `nvidia.com/gpu` on GPU nodes (GKE runs its own on GPU node pools)."""
    keda: AddOn | None = None
    """Runs every ScaledObject and TriggerAuthentication."""
    keda_http_addon: AddOn | None = None
    """Holds requests while a realtime pool scaled to zero wakes (scale_to_zero only)."""
    prometheus: AddOn | None = None
    """Scrapes the realtime pool's demand: kube-prometheus-stack, or Managed Prometheus on GKE."""
    karpenter: AddOn | None = None
    """EKS: launches the GPU nodes; install it with the AWS target's `install_karpenter`."""

    def declared(self, name: AddOnName) -> AddOn | None:
        """The declaration of `name`, or None."""
        declaration: AddOn | None = getattr(self, name)
        return declaration


CLUSTER_TARGETS: Final = frozenset({"kubernetes", "aws", "gcp"})
"""The targets that deploy onto a Kubernetes cluster, and so rely on its add-ons."""


@dataclass(frozen=True)
class Need:
    """An add-on a stack needs, and why."""

    name: AddOnName
    reason: str


def needed_addons(
    spec: InferenceServiceSpec, target: str, scrape_mode: str, *, ami_family: str | None = None
) -> list[Need]:
    """The add-ons the stack of `spec` on `target` needs, each with its reason.

    - the NVIDIA device plugin, except on GKE (GPU node pools run GKE's own) and on Bottlerocket
      (its NVIDIA variants ship the plugin);
    - KEDA always (every pool scales through a ScaledObject), its HTTP add-on with scale-to-zero;
    - a Prometheus for the realtime pool's demand (Managed Prometheus with `pod_monitoring`);
    - Karpenter on the aws target.
    """
    needs: list[Need] = []
    if target not in CLUSTER_TARGETS:
        return needs  # a managed endpoint (SageMaker) runs on no cluster of the user's
    if target != "gcp" and ami_family != "bottlerocket":
        needs.append(Need("nvidia_device_plugin", "advertises nvidia.com/gpu on the GPU nodes"))
    needs.append(Need("keda", "runs the pools' ScaledObjects"))
    if spec.realtime is not None:
        if spec.realtime.scale_to_zero:
            needs.append(Need("keda_http_addon", "holds requests while the realtime pool wakes"))
        source = "Managed Prometheus" if scrape_mode == "pod_monitoring" else "Prometheus"
        needs.append(Need("prometheus", f"{source} scrapes the realtime pool's demand"))
    if target == "aws":
        needs.append(Need("karpenter", "launches the GPU nodes of the NodePools"))
    return needs


def missing_addons(
    needs: list[Need], addons: ClusterAddOns, *, karpenter_installed: bool = False
) -> list[Need]:
    """The needed add-ons that are neither installed by the stack nor stated present."""
    return [
        need
        for need in needs
        if addons.declared(need.name) is None
        and not (need.name == "karpenter" and karpenter_installed)
    ]


__all__ = [
    "CHARTS",
    "CLUSTER_TARGETS",
    "DEVICE_PLUGIN_VALUES",
    "KEDA_CHART",
    "KEDA_HTTP_ADDON_CHART",
    "NVIDIA_DEVICE_PLUGIN_CHART",
    "PROMETHEUS_CHART",
    "AddOn",
    "AddOnName",
    "Chart",
    "ClusterAddOns",
    "Need",
    "missing_addons",
    "needed_addons",
]
