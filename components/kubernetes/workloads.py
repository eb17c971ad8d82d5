"""Kubernetes workload manifests of an inference service, as plain dicts in wire (camelCase) form.

Pure functions of the spec, its sizing, the options and the bindings: no Pulumi here, so the
same manifests serve the Kubernetes component, the AWS and GCP components that reuse it, and the
tests that validate them against the Kubernetes schema.

The two pools differ where it matters for cost and latency: the realtime pool must never land
on spot capacity (a reclaimed node breaks the latency budget), the batch pool prefers spot,
tolerates its taints and falls back to on-demand nodes when spot is gone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from inferstack.components.kubernetes.bindings import KubernetesBindings, queue_uri
from inferstack.components.kubernetes.options import KubernetesOptions, PoolPlacement
from inferstack.components.planning.pools import BatchPool, Pool, RealtimePool, Tier
from inferstack.components.planning.sizing import Sizing
from inferstack.components.planning.spec import Gpu, InferenceServiceSpec
from inferstack.contract import clouds
from inferstack.contract import env as runtime_env
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
from inferstack.contract.pods import (
    GPU_RESOURCE,
    LIVE_PATH,
    METRICS_PATH,
    PRESTOP_SECONDS,
    READY_PATH,
    RUN_AS_USER,
    WORKER_HEALTH_PATH,
    WORKER_METRICS_PORT,
)

if TYPE_CHECKING:
    import pulumi

Manifest = dict[str, Any]

CONTAINER_NAME: Final = "runtime"
PORT_NAME: Final = "http"
WORKER_PORT_NAME: Final = "metrics"
STARTUP_PERIOD_SECONDS: Final = 5
DRAIN_MARGIN_SECONDS: Final = 2
SCRATCH_SIZE: Final = "2Gi"
SPOT_NODE_LABELS: Final = tuple((label.key, label.value) for label in clouds.SPOT_LABELS)
"""(key, value) of every node label that marks spot capacity (see `inferstack.contract.clouds`);
the same keys are used as taints by the platforms that taint spot nodes."""


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


def _decimal(value: float) -> str:
    return f"{value:g}"


def realtime_annotations(spec: InferenceServiceSpec, sizing: Sizing) -> dict[str, str]:
    """Declared values the policy pack cannot derive from the objects themselves."""
    return {
        LATENCY_BUDGET_MS_ANNOTATION: _decimal(spec.latency_budget_ms),
        MAX_QUEUE_DELAY_MS_ANNOTATION: _decimal(spec.batching.max_queue_delay_ms),
        COLD_START_SECONDS_ANNOTATION: _decimal(sizing.cold_start_seconds.value),
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
# Scheduling


def on_demand_only_affinity() -> Manifest:
    """Required node affinity that rejects spot nodes under every convention in SPOT_NODE_LABELS.

    One term whose expressions are ANDed: `NotIn` also matches nodes without the label, so
    on-demand nodes of any platform qualify and a spot node of any platform does not.
    """
    expressions = [
        {"key": key, "operator": "NotIn", "values": [value]} for key, value in SPOT_NODE_LABELS
    ]
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": expressions}]
            }
        }
    }


def spot_first_affinity(
    fallback_on_demand: bool, spot_labels: Sequence[tuple[str, str]] = SPOT_NODE_LABELS
) -> Manifest:
    """Prefer spot nodes (every convention, or a cloud target's own); require them only when
    there is no fallback."""
    terms = [
        {"matchExpressions": [{"key": key, "operator": "In", "values": [value]}]}
        for key, value in spot_labels
    ]
    node_affinity: Manifest = {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "preference": term} for term in terms
        ]
    }
    if not fallback_on_demand:
        # Terms are ORed: any platform's spot label admits the node.
        node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {
            "nodeSelectorTerms": terms
        }
    return {"nodeAffinity": node_affinity}


def spot_tolerations(
    spot_labels: Sequence[tuple[str, str]] = SPOT_NODE_LABELS,
) -> list[Manifest]:
    """Tolerate the taints platforms put on spot nodes (GKE, AKS, and Karpenter/EKS when set)."""
    return [
        {"key": key, "operator": "Equal", "value": value, "effect": "NoSchedule"}
        for key, value in spot_labels
    ]


def gpu_toleration() -> Manifest:
    """GPU node pools are commonly tainted `nvidia.com/gpu` so that only GPU pods land there."""
    return {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}


# ---------------------------------------------------------------------------------------------
# Containers


def _resources(gpu: Gpu, options: KubernetesOptions) -> Manifest:
    cpu = _scaled_quantity(options.cpu_per_gpu, gpu.count)
    memory = _scaled_quantity(options.memory_per_gpu, gpu.count)
    # GPUs cannot be overcommitted: requests equal limits. Memory limit equals its request so
    # the pod is never OOM-killed for borrowing; CPU has no limit so batching is not throttled.
    return {
        "requests": {"cpu": cpu, "memory": memory, GPU_RESOURCE: str(gpu.count)},
        "limits": {"memory": memory, GPU_RESOURCE: str(gpu.count)},
    }


def _scaled_quantity(quantity: str, count: int) -> str:
    number = quantity.rstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    unit = quantity[len(number) :]
    value = float(number) * count
    return f"{value:g}{unit}"


def hardened_container_security() -> Manifest:
    """No root, no privilege escalation, no capabilities, read-only root filesystem."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _pod_security() -> Manifest:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "fsGroup": RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _scratch_volume() -> tuple[Manifest, Manifest]:
    """A writable /tmp: the root filesystem is read-only, torch and loaders still need scratch."""
    return (
        {"name": "scratch", "emptyDir": {"sizeLimit": SCRATCH_SIZE}},
        {"name": "scratch", "mountPath": "/tmp"},
    )


def _container_env(process: frozenset[str], values: Mapping[str, str | None]) -> list[Manifest]:
    """Env vars of one runtime process, from its setting names (`runtime_env.*_SETTINGS`).

    Refuses a setting the process does not read, so a variable no process reads cannot be
    written (the batch pod once carried two).
    """
    unknown = sorted(set(values) - process)
    if unknown:
        raise ValueError(
            f"settings {unknown} are not read by this process; known: {sorted(process)}"
        )
    env = [
        {"name": runtime_env.env_name(setting), "value": value}
        for setting, value in values.items()
        if value is not None
    ]
    return [*env, {"name": "HOME", "value": "/tmp"}]


def _batching_values(spec: InferenceServiceSpec, max_batch: int) -> dict[str, str | None]:
    """Batcher settings both processes read, from the spec's batching block."""
    batching = spec.batching
    preferred = [size for size in batching.preferred_batch_sizes if size <= max_batch]
    return {
        "max_batch_size": str(max_batch),
        "preferred_batch_sizes": ",".join(str(size) for size in preferred) or None,
        "max_queue_delay_ms": _decimal(batching.max_queue_delay_ms),
        "instances": str(batching.instances_per_gpu),
        "device": "cuda",
    }


def _http_probe(path: str, port: str) -> Manifest:
    return {"httpGet": {"path": path, "port": port}}


def _probes(
    startup_seconds: int, ready: str, live: str, port: str, *, ready_period: int
) -> Manifest:
    """Startup over the whole model load and warm-up budget (so liveness never kills a slow
    start), then readiness and liveness on the process's own endpoints."""
    return {
        "startupProbe": {
            **_http_probe(ready, port),
            "periodSeconds": STARTUP_PERIOD_SECONDS,
            "timeoutSeconds": 2,
            "failureThreshold": math.ceil(startup_seconds / STARTUP_PERIOD_SECONDS),
        },
        "readinessProbe": {
            **_http_probe(ready, port),
            "periodSeconds": ready_period,
            "timeoutSeconds": 2,
            "failureThreshold": 2,
        },
        "livenessProbe": {
            **_http_probe(live, port),
            "periodSeconds": 10,
            "timeoutSeconds": 3,
            "failureThreshold": 3,
        },
    }


def realtime_container(
    spec: InferenceServiceSpec,
    pool: RealtimePool,
    options: KubernetesOptions,
    image: pulumi.Input[str],
) -> Manifest:
    """The server container: probes sized to the cold start, a drain that fits the grace."""
    sizing = pool.sizing
    grace = sizing.termination_grace_seconds.value
    drain = max(1, grace - PRESTOP_SECONDS - DRAIN_MARGIN_SECONDS)
    batching = spec.batching
    timeout = batching.request_timeout_ms
    env = _container_env(
        runtime_env.SERVE_SETTINGS,
        {
            "model": spec.model.uri,
            **_batching_values(spec, sizing.batch_size.value),
            "max_queue_size": str(batching.queue_limit),
            "request_timeout_ms": None if timeout is None else _decimal(timeout),
            "port": str(options.port),
            "drain_grace_s": str(drain),
        },
    )
    _, scratch_mount = _scratch_volume()
    return {
        "name": CONTAINER_NAME,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["inferstack", "serve"],
        "env": env,
        "ports": [{"name": PORT_NAME, "containerPort": options.port, "protocol": "TCP"}],
        "resources": _resources(pool.gpu, options),
        **_probes(sizing.startup_seconds.value, READY_PATH, LIVE_PATH, PORT_NAME, ready_period=5),
        # preStop keeps the pod serving until endpoint removal has propagated; SIGTERM then
        # makes the server finish what it admitted (INFERSTACK_DRAIN_GRACE_S) and exit.
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_SECONDS}}},
        "securityContext": hardened_container_security(),
        "volumeMounts": [scratch_mount],
    }


def worker_container(
    spec: InferenceServiceSpec,
    pool: BatchPool,
    options: KubernetesOptions,
    bindings: KubernetesBindings,
    image: pulumi.Input[str],
) -> Manifest:
    """The same image in worker mode: pulls the queue, writes results, drains on interruption."""
    sizing = pool.sizing
    _, scratch_mount = _scratch_volume()
    return {
        "name": CONTAINER_NAME,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["inferstack", "work"],
        "args": [
            "--queue",
            queue_uri(spec, bindings),
            "--model",
            spec.model.uri,
            "--results",
            # A string, or a Pulumi Output when a cloud target names the bucket it creates.
            bindings.queue.results_uri,
        ],
        "env": _container_env(
            runtime_env.WORK_SETTINGS,
            {
                **_batching_values(spec, sizing.batch_size.value),
                # What SIGTERM leaves the worker: the pod's grace, so it releases what it holds
                # before the kill rather than trusting its own default.
                "sigterm_grace_s": str(sizing.termination_grace_seconds.value),
            },
        ),
        "ports": [
            {"name": WORKER_PORT_NAME, "containerPort": WORKER_METRICS_PORT, "protocol": "TCP"}
        ],
        "resources": _resources(pool.gpu, options),
        # The worker's health endpoint answers from its consume loop, not just its process: it
        # turns 503 once the loop has not beaten within a poll wait plus a lease (see
        # `inferstack work`), and the port opens only after the model has loaded.
        **_probes(
            sizing.startup_seconds.value,
            WORKER_HEALTH_PATH,
            WORKER_HEALTH_PATH,
            WORKER_PORT_NAME,
            ready_period=10,
        ),
        "securityContext": hardened_container_security(),
        "volumeMounts": [scratch_mount],
    }


# ---------------------------------------------------------------------------------------------
# Workloads


def _node_selector(placement: PoolPlacement) -> Manifest:
    """`nodeSelector` when the placement names nodes (a cloud target's pool), else nothing."""
    return {"nodeSelector": dict(placement.node_selector)} if placement.node_selector else {}


def _scrape_annotations(options: KubernetesOptions) -> dict[str, str]:
    if options.metrics != "annotations":
        return {}
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(options.port),
        "prometheus.io/path": METRICS_PATH,
    }


def _scheduling(pool: Pool, bindings: KubernetesBindings) -> Manifest:
    """Which nodes the pool's pods may land on: its placement, then the target's own nodes."""
    nodes = bindings.placement(pool.tier)
    if pool.placement == "on_demand":
        affinity = on_demand_only_affinity()
        tolerations = [gpu_toleration()]
    else:
        # A cloud target names its own spot labels: preferring other clouds' labels there would
        # only make the pod look interruptible on a cloud it cannot run on.
        spot_labels = bindings.spot_labels or SPOT_NODE_LABELS
        affinity = spot_first_affinity(pool.placement == "spot_first", spot_labels)
        tolerations = [gpu_toleration(), *spot_tolerations(spot_labels)]
    return {
        **_node_selector(nodes),
        "affinity": affinity,
        "tolerations": [*tolerations, *nodes.tolerations],
    }


def _container(
    spec: InferenceServiceSpec,
    pool: Pool,
    options: KubernetesOptions,
    bindings: KubernetesBindings,
    image: pulumi.Input[str],
) -> Manifest:
    if isinstance(pool, RealtimePool):
        return realtime_container(spec, pool, options, image)
    return worker_container(spec, pool, options, bindings, image)


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
    scratch_volume, _ = _scratch_volume()
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
        pod_annotations = {**annotations, **_scrape_annotations(options)}
    body["template"] = {
        "metadata": {"labels": pool_labels, "annotations": pod_annotations},
        "spec": {
            "serviceAccountName": name,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": pool.sizing.termination_grace_seconds.value,
            "securityContext": _pod_security(),
            **_scheduling(pool, bindings),
            "containers": [_container(spec, pool, options, bindings, image)],
            "volumes": [scratch_volume],
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
                }
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


def scraped_label_selector(spec: InferenceServiceSpec, tier: Tier, namespace: str) -> str:
    """PromQL matchers for one pool's series, as scraping attaches them to each sample.

    Both scraping modes turn pod labels into sample labels with Prometheus' name sanitising
    (`inferstack.io/service` -> `inferstack_io_service`): the common `kubernetes-pods` job does it
    with `labelmap`, the PodMonitor here with `podTargetLabels`. Both add `namespace`.
    """
    matchers = {"namespace": namespace}
    for key, value in selector(spec, tier).items():
        matchers[_sanitise(key)] = value
    return ",".join(f'{key}="{value}"' for key, value in matchers.items())


def _sanitise(label: str) -> str:
    return "".join(char if char.isalnum() or char == "_" else "_" for char in label)


def pod_monitor(spec: InferenceServiceSpec, options: KubernetesOptions) -> Manifest:
    """Prometheus Operator scraping of the realtime pods, with the pool labels on every sample."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": metadata(workload_name(spec, "realtime"), options, labels(spec, "realtime")),
        "spec": {
            "selector": {"matchLabels": selector(spec, "realtime")},
            "podTargetLabels": list(selector(spec, "realtime")),
            "podMetricsEndpoints": [
                {"port": PORT_NAME, "path": METRICS_PATH, "interval": "15s"},
            ],
        },
    }


__all__ = [
    "SPOT_NODE_LABELS",
    "deployment",
    "pool_annotations",
    "labels",
    "on_demand_only_affinity",
    "pod_monitor",
    "realtime_pdb",
    "realtime_service",
    "scraped_label_selector",
    "selector",
    "service_account",
    "spot_first_affinity",
    "workload_name",
]
