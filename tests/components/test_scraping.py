"""Conformance of the realtime pool's scraping with the scrapers that read it (issue 27 item 4).

Sources, each vendored or cited where the test reads it:
- kube-prometheus-stack (prometheus-community/helm-charts, chart 88.5.3): values.yaml sets
  `prometheus.prometheusSpec.podMonitorSelectorNilUsesHelmValues: true`, and
  templates/prometheus/prometheus.yaml then renders
  `podMonitorSelector: {matchLabels: {release: {{ $.Release.Name }}}}`: a PodMonitor without
  `release: <release name>` is never scraped.
- prometheus-community/helm-charts#1098: the operator ignores `prometheus.io/*` annotations.
- Managed Prometheus' PodMonitoring CRD (tests/components/crds/, GoogleCloudPlatform/
  prometheus-engine): `targetLabels.fromPod[].to` matches `^[a-zA-Z_][a-zA-Z0-9_]*$` and is none
  of the protected labels (its CEL rule); `cluster` and `namespace` are set by the collector.
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest
import yaml

from inferstack.components.kubernetes.bindings import KubernetesBindings
from inferstack.components.kubernetes.options import KubernetesOptions, parse_options
from inferstack.components.kubernetes.scaling import realtime_triggers
from inferstack.components.kubernetes.scraping import (
    GKE_MANAGED_COLLECTION_NAMESPACE,
    GMP_CLUSTER_LABEL,
    RELEASE_LABEL,
    TARGET_DEFAULTS,
    scrape_for,
)
from inferstack.components.kubernetes.workloads import (
    pod_monitor,
    pod_monitoring,
    scrape_object,
    scraped_label_selector,
)
from inferstack.components.planning.pools import realtime_pool
from inferstack.components.planning.sizing import size_service
from inferstack.errors import SpecError
from tests.components import schemas
from tests.components.factories import make_profile, make_spec
from tests.components.monitoring_cel import PROTECTED_TARGET_LABELS

CRD = schemas.MONITORING_CRDS / "monitoring.googleapis.com_podmonitorings.yaml"


def _from_pod_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    [v1] = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    spec = v1["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    schema: dict[str, Any] = spec["targetLabels"]["properties"]["fromPod"]["items"]
    return schema


def test_podmonitor_carries_the_release_label_kube_prometheus_stack_selects() -> None:
    spec = make_spec()
    monitor = pod_monitor(spec, KubernetesOptions())
    assert monitor["metadata"]["labels"][RELEASE_LABEL] == "kube-prometheus-stack"
    named = KubernetesOptions(prometheus_release="prom")
    assert pod_monitor(spec, named)["metadata"]["labels"]["release"] == "prom"
    schemas.validate(monitor)


def test_annotations_are_never_a_default_scrape_mode() -> None:
    # Only a Prometheus with a `kubernetes-pods` job reads them; the operator does not.
    assert set(TARGET_DEFAULTS) == {"kubernetes", "aws", "gcp"}
    assert "annotations" not in TARGET_DEFAULTS.values()
    assert TARGET_DEFAULTS["gcp"] == "pod_monitoring"
    assert scrape_for(KubernetesOptions()).mode == "podmonitor"
    assert scrape_for(KubernetesOptions(metrics="annotations")).mode == "annotations"
    assert scrape_object(make_spec(), KubernetesOptions(), scrape_for(KubernetesOptions()))


def test_pod_monitoring_maps_every_pool_label_onto_an_allowed_target_label() -> None:
    item = _from_pod_schema()
    pattern = re.compile(item["properties"]["to"]["pattern"])
    monitoring = pod_monitoring(make_spec(), KubernetesOptions(namespace="inference"))
    schemas.validate(monitoring)
    for mapping in monitoring["spec"]["targetLabels"]["fromPod"]:
        assert pattern.match(mapping["to"]), mapping
        assert mapping["to"] not in PROTECTED_TARGET_LABELS
    # The query matches exactly what the mapping produces, plus the collector's own labels.
    gke = scrape_for(KubernetesOptions(), "gcp", gcp_project="p-1", gke_cluster="c1")
    query = scraped_label_selector(make_spec(), "realtime", "inference", gke.matchers)
    for mapping in monitoring["spec"]["targetLabels"]["fromPod"]:
        assert f"{mapping['to']}=" in query
    assert GMP_CLUSTER_LABEL in PROTECTED_TARGET_LABELS  # set by the collector, not by us
    assert f'{GMP_CLUSTER_LABEL}="c1"' in query


def test_pod_monitoring_validator_refuses_a_protected_target_label() -> None:
    monitoring = pod_monitoring(make_spec(), KubernetesOptions())
    monitoring["spec"]["targetLabels"]["fromPod"][0]["to"] = "cluster"
    with pytest.raises(jsonschema.ValidationError, match="CEL rule"):
        schemas.validate(monitoring)


def test_managed_prometheus_trigger_authenticates_with_pod_identity() -> None:
    spec = make_spec()
    sizing = size_service(spec, make_profile())
    pool = realtime_pool(spec, sizing)
    assert pool is not None
    options = KubernetesOptions(namespace="inference")
    scrape = scrape_for(options, "gcp", gcp_project="p-1", gke_cluster="c1")
    assert scrape.scraper_namespace == GKE_MANAGED_COLLECTION_NAMESPACE
    bindings = KubernetesBindings(scrape=scrape)
    demand = realtime_triggers(spec, pool, options, bindings)[0]
    assert demand["authenticationRef"] == {"name": f"{spec.name}-metrics"}
    assert demand["metadata"]["serverAddress"] == (
        "https://monitoring.googleapis.com/v1/projects/p-1/location/global/prometheus"
    )
    plain = realtime_triggers(spec, pool, options)[0]
    assert "authenticationRef" not in plain
    assert plain["metadata"]["serverAddress"] == options.prometheus_url


def test_release_name_is_checked_by_helms_rule() -> None:
    with pytest.raises(SpecError, match="prometheus_release"):
        parse_options({"prometheus_release": 'x"} or vector(1)'}, source="test")


def test_a_stated_scraper_namespace_overrides_gkes_managed_collectors() -> None:
    stated = KubernetesOptions(prometheus_namespace="gmp-system")
    scrape = scrape_for(stated, "gcp", gcp_project="p-1", gke_cluster="c1")
    assert scrape.scraper_namespace == "gmp-system"
    default = scrape_for(KubernetesOptions(), "gcp", gcp_project="p-1", gke_cluster="c1")
    assert default.scraper_namespace == GKE_MANAGED_COLLECTION_NAMESPACE
