"""Conformance of API versions, label and taint keys and annotations with their upstream rules.

Issue 27's "one function per external string, tested against its source", for the families
test_conformance.py does not cover:

- API versions: each group/version the builders write is one its CRD serves (KEDA and Karpenter
  CRDs in ../shared/schemas, the monitoring CRDs in tests/components/crds), or one the pinned
  Kubernetes minor's OpenAPI has (kubernetes-validate's schemas for 1.33).
- Label, taint and annotation keys: Kubernetes' qualified-name rule (k8s.io/apimachinery
  `pkg/util/validation` `IsQualifiedName`: an optional DNS-1123 subdomain prefix of at most 253
  characters, `/`, and a name of at most 63 matching `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`),
  label values by `IsValidLabelValue` (empty, or at most 63 of the same form); Karpenter's
  restricted label domains by its NodePool CRD's own CEL rule.
- The `prometheus.io/*` pod annotations by the `kubernetes-pods` job that reads them
  (prometheus-community/helm-charts charts/prometheus/values.yaml, chart 29.27.0, commit
  cf408a29): Prometheus turns an annotation into `__meta_kubernetes_pod_annotation_<name>` with
  every character outside `[a-zA-Z0-9_]` as `_`, and the job keeps `..._scrape` = `true`, takes
  `..._path` as the metrics path and `..._port` (`\\d+`) as the port.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from inferstack.components.aws import karpenter
from inferstack.components.kubernetes import network, scaling, scraping, workloads
from inferstack.components.kubernetes.bindings import KubernetesBindings
from inferstack.components.kubernetes.options import KubernetesOptions
from inferstack.components.planning.plan import plan_service
from inferstack.profile import parse_profile
from tests.components import schemas
from tests.components.factories import PROFILE, make_spec

_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
KUBERNETES_PODS_SOURCE_LABELS = frozenset(
    {
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape",
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape_slow",
        "__meta_kubernetes_pod_annotation_prometheus_io_scheme",
        "__meta_kubernetes_pod_annotation_prometheus_io_path",
        "__meta_kubernetes_pod_annotation_prometheus_io_port",
    }
)
"""The `kubernetes-pods` job's relabel `source_labels` that read pod annotations (chart 29.27.0)."""


def is_qualified_name(key: str) -> bool:
    """apimachinery `IsQualifiedName`."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _SUBDOMAIN.match(prefix)):
        return False
    return len(name) <= 63 and bool(_NAME.match(name))


def is_label_value(value: str) -> bool:
    """apimachinery `IsValidLabelValue`."""
    return value == "" or (len(value) <= 63 and bool(_NAME.match(value)))


def _rendered() -> list[dict[str, Any]]:
    """Every object kind the Kubernetes layer and the Karpenter builders write, both pools."""
    spec = make_spec()
    plan = plan_service(spec, parse_profile(PROFILE), target="aws")
    options = KubernetesOptions(namespace="inference")
    bindings = KubernetesBindings.from_options(options)
    objects: list[dict[str, Any]] = []
    for pool in plan.pools:
        objects += [
            workloads.deployment(spec, plan.sizing, pool, options, bindings),
            workloads.service_account(spec, pool.tier, options, bindings),
            network.network_policy(spec, pool, options, bindings),
            scaling.scaled_object(spec, plan.sizing, pool, options, bindings),
            karpenter.node_pool(plan, pool),
        ]
    objects += [
        workloads.realtime_service(spec, options),
        workloads.realtime_pdb(spec, options),
        workloads.pod_monitor(spec, options),
        workloads.pod_monitoring(spec, options),
    ]
    return objects


def _keys(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, key) of every label, annotation, selector, toleration and taint key."""
    found: list[tuple[str, str]] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for field in ("labels", "annotations", "matchLabels", "nodeSelector"):
                for key in (node.get(field) or {}) if isinstance(node.get(field), dict) else {}:
                    found.append((f"{path}.{field}", key))
            for field in ("tolerations", "taints"):
                for item in node.get(field) or []:
                    if "key" in item:
                        found.append((f"{path}.{field}", item["key"]))
            for key, child in node.items():
                walk(child, f"{path}.{key}")
        elif isinstance(node, list):
            for child in node:
                walk(child, path)

    walk(manifest, manifest["kind"])
    return found


def test_every_label_taint_and_annotation_key_is_a_qualified_name() -> None:
    checked = 0
    for manifest in _rendered():
        for where, key in _keys(manifest):
            assert is_qualified_name(key), (where, key)
            checked += 1
    assert checked > 50


def test_every_label_value_is_a_valid_label_value() -> None:
    for manifest in _rendered():
        labels = manifest["metadata"].get("labels", {})
        template = manifest.get("spec", {}).get("template", {}).get("metadata", {})
        for key, value in {**labels, **template.get("labels", {})}.items():
            assert is_label_value(value), (manifest["kind"], key, value)


def test_the_qualified_name_rule_refuses_what_the_api_server_refuses() -> None:
    assert is_qualified_name("inferstack.io/service")
    assert is_qualified_name("app")
    for bad in ("Inferstack.IO/x", "/x", "a/b/c", "x" * 64, "-x", "a/", "a b"):
        assert not is_qualified_name(bad), bad
    assert not is_label_value("x" * 64)
    assert not is_label_value("ends-")


def test_karpenter_node_labels_avoid_its_restricted_domains() -> None:
    # The NodePool CRD's rule on template labels (karpenter.sh_nodepools.yaml): the karpenter.sh
    # domain is restricted but for capacity-type and nodepool, and nodepool itself is set by
    # Karpenter; karpenter.k8s.aws only for its listed keys.
    plan = plan_service(make_spec(), parse_profile(PROFILE), target="aws")
    for pool in plan.pools:
        labels = karpenter.node_pool(plan, pool)["spec"]["template"]["metadata"]["labels"]
        for key in labels:
            domain = key.split("/")[0] if "/" in key else ""
            assert not domain.endswith("karpenter.sh"), key
            assert not domain.endswith("karpenter.k8s.aws"), key
    assert karpenter.NODEPOOL_LABEL == "karpenter.sh/nodepool"
    assert karpenter.CAPACITY_TYPE_LABEL == "karpenter.sh/capacity-type"


def _annotation_meta_label(annotation: str) -> str:
    return "__meta_kubernetes_pod_annotation_" + re.sub(r"[^a-zA-Z0-9_]", "_", annotation)


def test_scrape_annotations_are_the_ones_the_kubernetes_pods_job_reads() -> None:
    spec = make_spec()
    plan = plan_service(spec, parse_profile(PROFILE))
    options = KubernetesOptions(metrics="annotations", port=8000)
    bindings = KubernetesBindings.from_options(options)
    assert bindings.scrape.mode == "annotations"
    realtime = next(pool for pool in plan.pools if pool.tier == "realtime")
    pod = workloads.deployment(spec, plan.sizing, realtime, options, bindings)["spec"]["template"]
    scrape = {k: v for k, v in pod["metadata"]["annotations"].items() if "prometheus.io" in k}
    assert scrape
    for key in scrape:
        assert _annotation_meta_label(key) in KUBERNETES_PODS_SOURCE_LABELS, key
    assert scrape["prometheus.io/scrape"] == "true"  # the job's keep regex
    assert re.fullmatch(r"\d+", scrape["prometheus.io/port"])
    assert scrape["prometheus.io/path"] == "/metrics"


def _crd_versions(path: Path) -> tuple[str, dict[str, str], set[str]]:
    crd = yaml.safe_load(path.read_text())
    served = {v["name"] for v in crd["spec"]["versions"] if v.get("served")}
    return crd["spec"]["group"], {"kind": crd["spec"]["names"]["kind"]}, served


CRD_API_VERSIONS = [
    (scaling.KEDA_API, "ScaledObject"),
    (scaling.KEDA_API, "TriggerAuthentication"),
    (scaling.HTTP_ADDON_API, "InterceptorRoute"),
    (karpenter.NODEPOOL_API, "NodePool"),
    (karpenter.NODECLASS_API, "EC2NodeClass"),
    (scraping.POD_MONITOR_API, "PodMonitor"),
    (scraping.POD_MONITORING_API, "PodMonitoring"),
]


@pytest.mark.parametrize(("api_version", "kind"), CRD_API_VERSIONS)
def test_custom_resource_api_versions_are_served_by_their_crds(api_version: str, kind: str) -> None:
    group, version = api_version.split("/")
    if group in schemas.MONITORING_GROUPS:
        path = schemas.MONITORING_CRDS / schemas.MONITORING_CRD_FILES[(group, kind)]
    else:
        folder = schemas.KARPENTER_SCHEMA_DIR if group in schemas.KARPENTER_GROUPS else None
        folder = schemas.require_schema_dir(folder or schemas.KEDA_SCHEMA_DIR)
        path = folder / schemas.CRD_FILES[(group, kind)]
    crd_group, names, served = _crd_versions(path)
    assert (crd_group, names["kind"]) == (group, kind)
    assert version in served, (api_version, sorted(served))


def test_core_api_versions_exist_in_the_pinned_kubernetes_minor() -> None:
    folder = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    strict = folder / f"v{schemas.KUBERNETES_VERSION}-local-strict"
    for manifest in _rendered():
        group_version = manifest["apiVersion"]
        if "/" in group_version and group_version.split("/")[0] in {
            "keda.sh",
            "http.keda.sh",
            *schemas.KARPENTER_GROUPS,
            *schemas.MONITORING_GROUPS,
        }:
            continue
        # kubernetes-validate's file naming: kind-group-version, the group's first label.
        name = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", group_version)
        assert (strict / f"{manifest['kind'].lower()}-{name}.json").exists(), group_version
