"""Kubernetes workload manifests of an inference service, as plain dicts in wire (camelCase) form.

Pure functions of the spec, its sizing, the options and the bindings: no Pulumi here, so the
same manifests serve the Kubernetes component, the AWS and GCP components that reuse it, and the
tests that validate them against the Kubernetes schema.

Here: the names and labels every object of a pool shares, the declared values the policy pack
reads, and the objects themselves (Deployment, ServiceAccount, Service, PodDisruptionBudget,
PodMonitor). What runs in the pods and on which nodes is `inferstack.components.kubernetes.pods`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from inferstack.components.kubernetes.bindings import KubernetesBindings
from inferstack.components.kubernetes.options import KubernetesOptions
from inferstack.components.kubernetes.pods import (
    GRPC_PORT_NAME,
    PORT_NAME,
    capacity_spread,
    container,
    decimal,
    pod_security,
    pod_volumes,
    scheduling,
)
from inferstack.components.kubernetes.queues import promql_matchers
from inferstack.components.kubernetes.scraping import (
    POD_MONITOR_API,
    POD_MONITORING_API,
    RELEASE_LABEL,
    SCRAPE_INTERVAL,
    Scrape,
)
from inferstack.components.planning.pools import BatchPool, Pool, RealtimePool, Tier
from inferstack.components.planning.sizing import Sizing
from inferstack.components.planning.spec import InferenceServiceSpec
from inferstack.contract.images import has_digest
from inferstack.contract.labels import (
    COLD_START_SECONDS_ANNOTATION,
    LATENCY_BUDGET_MS_ANNOTATION,
    MAX_JOB_SECONDS_ANNOTATION,
    MAX_QUEUE_DELAY_MS_ANNOTATION,
    SERVICE_LABEL,
    TIER_BATCH,
    TIER_LABEL,
    TIER_REALTIME,
)
from inferstack.contract.pods import METRICS_PATH

if TYPE_CHECKING:
    import pulumi

Manifest = dict[str, Any]


def labels(spec: InferenceServiceSpec, tier: Tier) -> dict[str, str]:
    """Labels on every object of a pool: the policy pack and users' tooling key on them."""
    return {
        "app.kubernetes.io/name": spec.name,
        "app.kubernetes.io/component": tier,
        "app.kubernetes.io/managed-by": "inferstack",
        SERVICE_LABEL: spec.name,
        TIER_LABEL: TIER_REALTIME if tier == "realtime" else TIER_BATCH,
    }


def selector(spec: InferenceServiceSpec, tier: Tier) -> dict[str, str]:
    """The stable subset of the labels that selects a pool's pods."""
    return {SERVICE_LABEL: spec.name, TIER_LABEL: labels(spec, tier)[TIER_LABEL]}


def workload_name(spec: InferenceServiceSpec, tier: Tier) -> str:
    """Kubernetes name of a pool's Deployment (and of its ScaledObject, Service, PDB)."""
    return f"{spec.name}-{tier}"


def realtime_annotations(spec: InferenceServiceSpec, sizing: Sizing) -> dict[str, str]:
    """Declared values the policy pack cannot derive from the objects themselves."""
    return {
        LATENCY_BUDGET_MS_ANNOTATION: decimal(spec.latency_budget_ms),
        MAX_QUEUE_DELAY_MS_ANNOTATION: decimal(spec.batching.max_queue_delay_ms),
        COLD_START_SECONDS_ANNOTATION: decimal(sizing.cold_start_seconds.value),
    }


def batch_annotations(pool: BatchPool) -> dict[str, str]:
    """Declared values of the batch pool (its longest job), for the durability policy."""
    return {MAX_JOB_SECONDS_ANNOTATION: str(pool.spec.max_job_seconds)}


def pool_annotations(spec: InferenceServiceSpec, sizing: Sizing, pool: Pool) -> dict[str, str]:
    """The declared values a pool's objects carry for the policy pack."""
    if isinstance(pool, RealtimePool):
        return realtime_annotations(spec, sizing)
    return batch_annotations(pool)


PULL_POLICY_CHECK: Final = "CKV_K8S_15"
SCANNER_DECISIONS: Final = {
    "CKV_K8S_11": (
        "no CPU limit on purpose: a CFS quota throttles the batching and HTTP threads in bursts "
        "and breaks the latency budget; CPU is requested for scheduling, memory and GPUs are "
        "limited"
    ),
    PULL_POLICY_CHECK: (
        "IfNotPresent on purpose: the image is pinned by digest (CKV_K8S_43), so a cached copy "
        "is the same image, and Always adds a registry round trip to every cold start"
    ),
}
"""Checks of an independent scanner (checkov) the workloads fail by design, with the reason.
Recorded on each Deployment as `checkov.io/skip<N>: CHECK_ID=reason`, so that the decision
travels with the object to whichever CI scans it."""


def scanner_annotations(image: pulumi.Input[str]) -> dict[str, str]:
    """`checkov.io/skip<N>` annotations for SCANNER_DECISIONS that hold for this workload.

    The pull-policy decision holds only for an image pinned by digest: with a tag, checkov's
    pull-policy and digest checks both fail, as they should. An image that is a Pulumi Output
    (a registry the stack creates) is not known here, so it is not taken as pinned.
    """
    pinned = isinstance(image, str) and has_digest(image)
    decisions = {
        check: reason
        for check, reason in sorted(SCANNER_DECISIONS.items())
        if check != PULL_POLICY_CHECK or pinned
    }
    return {
        f"checkov.io/skip{index}": f"{check}={reason}"
        for index, (check, reason) in enumerate(decisions.items(), start=1)
    }


def metadata(
    name: str,
    options: KubernetesOptions,
    object_labels: Mapping[str, str],
    annotations: Mapping[str, pulumi.Input[str]] | None = None,
) -> Manifest:
    """Object metadata with an explicit name, so cross-references are plain, known strings."""
    result: Manifest = {"name": name, "namespace": options.namespace, "labels": dict(object_labels)}
    if annotations:
        result["annotations"] = dict(annotations)
    return result


# ---------------------------------------------------------------------------------------------
# Workloads


def _scrape_annotations(options: KubernetesOptions, scrape: Scrape) -> dict[str, str]:
    """The `kubernetes-pods` job's annotations, in the one mode that reads them."""
    if scrape.mode != "annotations":
        return {}
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(options.port),
        "prometheus.io/path": METRICS_PATH,
    }


def deployment(
    spec: InferenceServiceSpec,
    sizing: Sizing,
    pool: Pool,
    options: KubernetesOptions,
    bindings: KubernetesBindings,
) -> Manifest:
    """A pool's Deployment: hardened, on the nodes its placement allows, drained in its grace.

    The realtime pool never lands on spot capacity (a reclaimed node breaks the latency
    budget) and surges before it replaces; the batch pool prefers spot when its spec allows,
    and its grace fits inside the provider's interruption notice, so the worker's release of
    unfinished messages completes before the node disappears.
    """
    image = bindings.image or spec.image
    pool_labels = labels(spec, pool.tier)
    annotations = pool_annotations(spec, sizing, pool)
    name = workload_name(spec, pool.tier)
    # No `replicas`: KEDA's HPA owns the count, and a value here would fight it on every
    # update. The HPA starts from the Deployment default (1) until KEDA takes over.
    body: Manifest = {
        "selector": {"matchLabels": selector(spec, pool.tier)},
        "revisionHistoryLimit": 3,
    }
    pod_annotations = annotations
    if isinstance(pool, RealtimePool):
        # Surge first: a replica leaves only after its replacement is ready.
        body["strategy"] = {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        }
        pod_annotations = {**annotations, **_scrape_annotations(options, bindings.scrape)}
    body["template"] = {
        "metadata": {"labels": pool_labels, "annotations": pod_annotations},
        "spec": {
            "serviceAccountName": name,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": pool.sizing.termination_grace_seconds.value,
            "securityContext": pod_security(),
            **scheduling(pool, bindings),
            **capacity_spread(bindings.placement(pool.tier), selector(spec, pool.tier)),
            "containers": [container(spec, pool, options, bindings, image)],
            "volumes": pod_volumes(spec),
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(
            name, options, pool_labels, {**annotations, **scanner_annotations(image)}
        ),
        "spec": body,
    }


def service_account(
    spec: InferenceServiceSpec,
    tier: Tier,
    options: KubernetesOptions,
    bindings: KubernetesBindings,
) -> Manifest:
    """A pool's own identity: IRSA / Workload Identity annotations bind it to cloud roles."""
    annotations = bindings.service_account_annotations(tier)
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(workload_name(spec, tier), options, labels(spec, tier), annotations),
        "automountServiceAccountToken": False,
    }


def realtime_service(spec: InferenceServiceSpec, options: KubernetesOptions) -> Manifest:
    """The in-cluster endpoint of the realtime pool (ClusterIP unless the options say otherwise)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(
            workload_name(spec, "realtime"),
            options,
            labels(spec, "realtime"),
            options.service_annotations,
        ),
        "spec": {
            "type": options.service_type,
            "selector": selector(spec, "realtime"),
            "ports": [
                {
                    "name": PORT_NAME,
                    "port": options.port,
                    "targetPort": PORT_NAME,
                    "protocol": "TCP",
                },
                {
                    "name": GRPC_PORT_NAME,
                    "port": options.grpc_port,
                    "targetPort": GRPC_PORT_NAME,
                    "protocol": "TCP",
                },
            ],
        },
    }


def realtime_pdb(spec: InferenceServiceSpec, options: KubernetesOptions) -> Manifest:
    """Voluntary disruptions (node drains, upgrades) take one replica at a time.

    `maxUnavailable` rather than `minAvailable`, so a pool scaled to zero never blocks a drain.
    """
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(workload_name(spec, "realtime"), options, labels(spec, "realtime")),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector(spec, "realtime")},
        },
    }


def scraped_label_selector(
    spec: InferenceServiceSpec,
    tier: Tier,
    namespace: str,
    scraper_labels: Mapping[str, str] | None = None,
) -> str:
    """PromQL matchers for one pool's series, as scraping attaches them to each sample.

    Every scraping mode turns pod labels into sample labels with Prometheus' name sanitising
    (`inferstack.io/service` -> `inferstack_io_service`): the common `kubernetes-pods` job does it
    with `labelmap`, the PodMonitor with `podTargetLabels`, the PodMonitoring with
    `targetLabels.fromPod`. All add `namespace`; `scraper_labels` are what the scraper adds
    besides (Managed Prometheus: `cluster`).
    """
    matchers = {"namespace": namespace}
    for key, value in selector(spec, tier).items():
        matchers[target_label(key)] = value
    matchers.update(scraper_labels or {})
    return promql_matchers(matchers)


def target_label(pod_label: str) -> str:
    """The Prometheus label a pod label becomes: every character outside `[a-zA-Z0-9_]` turned
    into `_` (Prometheus `model.LabelName` rule `^[a-zA-Z_][a-zA-Z0-9_]*$`; the relabel
    `labelmap` and the operator's `podTargetLabels` sanitise this way)."""
    return _sanitise(pod_label)


def _sanitise(label: str) -> str:
    return "".join(char if char.isalnum() or char == "_" else "_" for char in label)


def pod_monitor(
    spec: InferenceServiceSpec, options: KubernetesOptions, scrape: Scrape | None = None
) -> Manifest:
    """Prometheus Operator scraping of the realtime pods, with the pool labels on every sample.

    Labelled `release: <prometheus_release>`, which kube-prometheus-stack's Prometheus selects
    PodMonitors by (see `inferstack.components.kubernetes.scraping`).
    """
    release = scrape.release if scrape is not None else options.prometheus_release
    return {
        "apiVersion": POD_MONITOR_API,
        "kind": "PodMonitor",
        "metadata": metadata(
            workload_name(spec, "realtime"),
            options,
            {**labels(spec, "realtime"), RELEASE_LABEL: release},
        ),
        "spec": {
            "selector": {"matchLabels": selector(spec, "realtime")},
            "podTargetLabels": list(selector(spec, "realtime")),
            "podMetricsEndpoints": [
                {"port": PORT_NAME, "path": METRICS_PATH, "interval": SCRAPE_INTERVAL},
            ],
        },
    }


def pod_monitoring(spec: InferenceServiceSpec, options: KubernetesOptions) -> Manifest:
    """Managed Prometheus scraping of the realtime pods (GKE's managed collection).

    `targetLabels.fromPod` maps each pool label onto the same sanitised target label the other
    modes produce, so one demand query serves every mode.
    """
    return {
        "apiVersion": POD_MONITORING_API,
        "kind": "PodMonitoring",
        "metadata": metadata(workload_name(spec, "realtime"), options, labels(spec, "realtime")),
        "spec": {
            "selector": {"matchLabels": selector(spec, "realtime")},
            "endpoints": [{"port": PORT_NAME, "path": METRICS_PATH, "interval": SCRAPE_INTERVAL}],
            "targetLabels": {
                "fromPod": [
                    {"from": key, "to": target_label(key)} for key in selector(spec, "realtime")
                ]
            },
        },
    }


def scrape_object(
    spec: InferenceServiceSpec, options: KubernetesOptions, scrape: Scrape
) -> Manifest | None:
    """The object that makes the realtime pool scraped in `scrape.mode`; None for annotations
    (they sit on the pods themselves)."""
    if scrape.mode == "podmonitor":
        return pod_monitor(spec, options, scrape)
    if scrape.mode == "pod_monitoring":
        return pod_monitoring(spec, options)
    return None


__all__ = [
    "deployment",
    "pool_annotations",
    "labels",
    "pod_monitor",
    "pod_monitoring",
    "realtime_pdb",
    "realtime_service",
    "scrape_object",
    "scraped_label_selector",
    "selector",
    "service_account",
    "target_label",
    "workload_name",
]
