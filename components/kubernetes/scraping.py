"""How the realtime pool's demand gauges are scraped, and where KEDA's trigger queries them.

A Prometheus trigger that queries a Prometheus nobody configured to scrape the pods reads an
empty result, which is not zero demand but a blind autoscaler (issue 27 item 4). So the object
that makes the pods scraped and the address KEDA queries are decided together, here, once per
target:

- `podmonitor` (the default on the kubernetes and aws targets): a Prometheus Operator
  `PodMonitor` (monitoring.coreos.com/v1), labelled `release: <prometheus_release>`. The
  kube-prometheus-stack chart creates its Prometheus with `podMonitorSelector.matchLabels.release`
  set to its own release name unless `podMonitorSelectorNilUsesHelmValues` is false
  (prometheus-community/helm-charts, charts/kube-prometheus-stack/values.yaml and
  templates/prometheus/prometheus.yaml): a PodMonitor without that label is never selected.
  KEDA queries the operator's `prometheus-operated` Service.
- `pod_monitoring` (the default on the gcp target): a Managed Prometheus `PodMonitoring`
  (monitoring.googleapis.com/v1, GoogleCloudPlatform/prometheus-engine
  charts/operator/crds/monitoring.googleapis.com_podmonitorings.yaml), scraped by GKE's managed
  collectors; KEDA queries the Managed Prometheus query API with its own Workload Identity
  (`roles/monitoring.viewer`), matching this cluster's series only.
- `annotations`: `prometheus.io/*` pod annotations, read only by a Prometheus whose scrape config
  has the `kubernetes-pods` job (the prometheus-community `prometheus` chart). The Prometheus
  Operator and kube-prometheus-stack ignore them (prometheus-community/helm-charts#1098), so
  this mode is never a default: a stack chooses it explicitly.

Pure values and wire-form dicts, no Pulumi.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from inferstack.components.kubernetes.options import (
    DEFAULT_PROMETHEUS_RELEASE,
    DEFAULT_PROMETHEUS_URL,
    KubernetesOptions,
    MetricsScraping,
)

POD_MONITOR_API: Final = "monitoring.coreos.com/v1"
"""Prometheus Operator's PodMonitor (prometheus-operator `pkg/apis/monitoring/v1`)."""
POD_MONITORING_API: Final = "monitoring.googleapis.com/v1"
"""Managed Prometheus' PodMonitoring (prometheus-engine CRD `monitoring.googleapis.com`, `v1`)."""
RELEASE_LABEL: Final = "release"
"""The label kube-prometheus-stack's default `podMonitorSelector` matches (its release name)."""
SCRAPE_INTERVAL: Final = "15s"
"""Half KEDA's realtime polling period at most, so each poll sees a fresh sample."""
GMP_QUERY_HOST: Final = "https://monitoring.googleapis.com"
GKE_MANAGED_COLLECTION_NAMESPACE: Final = "gke-gmp-system"
"""Where GKE runs its managed collectors (the scraper the NetworkPolicy admits)."""
GMP_CLUSTER_LABEL: Final = "cluster"
"""Managed Prometheus writes the cluster's name on every series it collects (a protected target
label in the PodMonitoring CRD), so a query can exclude another cluster's pods."""

TARGET_DEFAULTS: Final[Mapping[str, MetricsScraping]] = {
    "kubernetes": "podmonitor",
    "aws": "podmonitor",
    "gcp": "pod_monitoring",
}
"""The scrape mode each target uses when `metrics` is not set."""


def gmp_query_url(project: str) -> str:
    """The Managed Prometheus query API of `project` (the Prometheus HTTP API, `global` scope):
    Google Cloud, "Query using Grafana/API" (`/v1/projects/PROJECT/location/global/prometheus`)."""
    return f"{GMP_QUERY_HOST}/v1/projects/{project}/location/global/prometheus"


@dataclass(frozen=True)
class Scrape:
    """The scrape mode of a stack and what follows from it for KEDA and the NetworkPolicy."""

    mode: MetricsScraping = "podmonitor"
    server_address: str = DEFAULT_PROMETHEUS_URL
    """Where KEDA's Prometheus trigger sends the demand query."""
    scraper_namespace: str = "monitoring"
    """Namespace of the pods that scrape the realtime pool (admitted to its port)."""
    release: str = DEFAULT_PROMETHEUS_RELEASE
    """`podmonitor`: the `release` label kube-prometheus-stack selects PodMonitors by."""
    pod_identity: Mapping[str, str] | None = None
    """KEDA's pod identity for the query API (`{"provider": "gcp"}` on Managed Prometheus)."""
    matchers: Mapping[str, str] = field(default_factory=dict)
    """Labels the scraper adds to every series that the demand query must match too."""


def scrape_for(
    options: KubernetesOptions,
    target: str = "kubernetes",
    *,
    gcp_project: str | None = None,
    gke_cluster: str | None = None,
) -> Scrape:
    """The scrape of a stack on `target`: `options.metrics`, or the target's default.

    On the gcp target, `pod_monitoring` queries the project's Managed Prometheus with KEDA's
    Workload Identity, restricted to `gke_cluster`'s series, and admits GKE's managed collectors
    (`gke-gmp-system`, or a `prometheus_namespace` the options set); elsewhere it queries
    `prometheus_url` (a self-deployed Managed Prometheus frontend, say) as is.
    """
    mode = options.metrics or TARGET_DEFAULTS[target]
    if mode == "pod_monitoring" and gcp_project is not None:
        # GKE's managed collectors, unless the options name the scraper's namespace themselves.
        scraper = (
            options.prometheus_namespace
            if "prometheus_namespace" in options.model_fields_set
            else GKE_MANAGED_COLLECTION_NAMESPACE
        )
        return Scrape(
            mode=mode,
            server_address=gmp_query_url(gcp_project),
            scraper_namespace=scraper,
            pod_identity={"provider": "gcp"},
            matchers={GMP_CLUSTER_LABEL: gke_cluster} if gke_cluster else {},
        )
    return Scrape(
        mode=mode,
        server_address=options.prometheus_url,
        scraper_namespace=options.prometheus_namespace,
        release=options.prometheus_release if mode == "podmonitor" else "",
    )


__all__ = [
    "GKE_MANAGED_COLLECTION_NAMESPACE",
    "GMP_CLUSTER_LABEL",
    "POD_MONITORING_API",
    "POD_MONITOR_API",
    "RELEASE_LABEL",
    "SCRAPE_INTERVAL",
    "TARGET_DEFAULTS",
    "Scrape",
    "gmp_query_url",
    "scrape_for",
]
