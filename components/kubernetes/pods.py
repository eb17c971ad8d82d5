"""What runs in a pool's pods and where: the containers, their probes and settings, and the
nodes the pool may land on.

Pure functions returning wire-form (camelCase) dicts, like the rest of the Kubernetes layer. The
realtime pool must never land on spot capacity (a reclaimed node breaks the latency budget);
the batch pool prefers spot when its spec allows, tolerates its taints and falls back to
on-demand nodes when spot is gone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from inferstack.components.kubernetes.bindings import KubernetesBindings, queue_uri
from inferstack.components.kubernetes.options import KubernetesOptions, PoolPlacement
from inferstack.components.planning.model_delivery import is_fetched
from inferstack.components.planning.pools import BatchPool, Pool, RealtimePool
from inferstack.components.planning.spec import Gpu, InferenceServiceSpec
from inferstack.contract import clouds
from inferstack.contract import env as runtime_env
from inferstack.contract.model_uris import MODEL_CACHE_MOUNT
from inferstack.contract.pods import (
    GPU_RESOURCE,
    GRPC_HEALTH_SERVICE,
    LIVE_PATH,
    PRESTOP_SECONDS,
    READY_PATH,
    RUN_AS_USER,
    WORKER_HEALTH_PATH,
    WORKER_METRICS_PORT,
)

if TYPE_CHECKING:
    import pulumi

Manifest = dict[str, Any]


def decimal(value: float) -> str:
    """A number as manifests carry it in strings: `8`, `0.5`, never `8.0`."""
    return f"{value:g}"


CONTAINER_NAME: Final = "runtime"
PORT_NAME: Final = "http"
GRPC_PORT_NAME: Final = "grpc"
"""The gRPC port's name (meshes such as Istio read the protocol from its `grpc` prefix)."""
WORKER_PORT_NAME: Final = "metrics"
STARTUP_PERIOD_SECONDS: Final = 5
DRAIN_MARGIN_SECONDS: Final = 2
SCRATCH_SIZE: Final = "2Gi"
MODEL_CACHE_VOLUME: Final = "model-cache"
SPOT_NODE_LABELS: Final = tuple((label.key, label.value) for label in clouds.SPOT_LABELS)
"""(key, value) of every node label that marks spot capacity (see `inferstack.contract.clouds`);
the same keys are used as taints by the platforms that taint spot nodes."""


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


def pod_security() -> Manifest:
    """Every pool's pod: non-root with the image's user and group, the runtime's seccomp."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "fsGroup": RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def scratch_volume() -> tuple[Manifest, Manifest]:
    """A writable /tmp: the root filesystem is read-only, torch and loaders still need scratch."""
    return (
        {"name": "scratch", "emptyDir": {"sizeLimit": SCRATCH_SIZE}},
        {"name": "scratch", "mountPath": "/tmp"},
    )


def model_cache_volume(spec: InferenceServiceSpec) -> tuple[Manifest, Manifest] | None:
    """The volume a fetched model is written to and its mount (None: nothing is fetched).

    The runtime fetches the model itself at start-up (`INFERSTACK_MODEL_CACHE`): an emptyDir
    by default (each pod downloads once per start), or an existing claim that keeps the file
    across restarts and pods (reused when its sha256 matches model.sha256).
    """
    if not is_fetched(spec.model.uri):
        return None
    cache = spec.model.cache
    source: Manifest
    if cache.volume == "claim":
        source = {"persistentVolumeClaim": {"claimName": cache.claim_name}}
    else:
        limit = {"sizeLimit": cache.size_limit} if cache.size_limit else {}
        source = {"emptyDir": limit}
    return (
        {"name": MODEL_CACHE_VOLUME, **source},
        {"name": MODEL_CACHE_VOLUME, "mountPath": MODEL_CACHE_MOUNT},
    )


def pod_volumes(spec: InferenceServiceSpec) -> list[Manifest]:
    """Every pool pod's volumes: the scratch /tmp, and the model cache when the model is fetched."""
    cache = model_cache_volume(spec)
    return [scratch_volume()[0], *([cache[0]] if cache else [])]


def _volume_mounts(spec: InferenceServiceSpec) -> list[Manifest]:
    cache = model_cache_volume(spec)
    return [scratch_volume()[1], *([cache[1]] if cache else [])]


def _model_values(spec: InferenceServiceSpec) -> dict[str, str | None]:
    """What the runtime's fetch step reads: the digest, and where to put a fetched model."""
    fetched = is_fetched(spec.model.uri)
    return {
        "model_sha256": spec.model.sha256,
        "model_cache": MODEL_CACHE_MOUNT if fetched else None,
    }


def cpu_request_env(container_name: str) -> Manifest:
    """`INFERSTACK_CPUS` from the container's CPU request, through the Downward API.

    The pods request CPU without a limit (no quota), so the runtime would otherwise count every
    CPU of the node. `resourceFieldRef` with divisor 1 gives the request in whole CPUs, rounded
    up (Kubernetes docs, "Expose Pod Information to Containers Through Environment Variables";
    kubelet: `convertResourceCPUToString`, math.Ceil of millicores over the divisor's).
    """
    return {
        "name": runtime_env.ENV_CPUS,
        "valueFrom": {
            "resourceFieldRef": {
                "containerName": container_name,
                "resource": "requests.cpu",
                "divisor": "1",
            }
        },
    }


def _container_env(process: frozenset[str], values: Mapping[str, str | None]) -> list[Manifest]:
    """Env vars of one runtime process, from its setting names (`runtime_env.*_SETTINGS`), and
    its CPU budget from the container's CPU request (`cpu_request_env`; both containers request
    CPU, see `_resources`).

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
    return [*env, cpu_request_env(CONTAINER_NAME), {"name": "HOME", "value": "/tmp"}]


def _batching_values(spec: InferenceServiceSpec, max_batch: int) -> dict[str, str | None]:
    """Batcher settings both processes read, from the spec's batching block."""
    batching = spec.batching
    preferred = [size for size in batching.preferred_batch_sizes if size <= max_batch]
    return {
        "max_batch_size": str(max_batch),
        "preferred_batch_sizes": ",".join(str(size) for size in preferred) or None,
        "max_queue_delay_ms": decimal(batching.max_queue_delay_ms),
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
            **_model_values(spec),
            **_batching_values(spec, sizing.batch_size.value),
            "max_queue_size": str(batching.queue_limit),
            "request_timeout_ms": None if timeout is None else decimal(timeout),
            "port": str(options.port),
            "grpc_port": str(options.grpc_port),
            "acceptors": None if options.acceptors is None else str(options.acceptors),
            "drain_grace_s": str(drain),
        },
    )
    return {
        "name": CONTAINER_NAME,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["inferstack", "serve"],
        "env": env,
        "ports": [
            {"name": PORT_NAME, "containerPort": options.port, "protocol": "TCP"},
            {"name": GRPC_PORT_NAME, "containerPort": options.grpc_port, "protocol": "TCP"},
        ],
        "resources": _resources(pool.gpu, options),
        **_probes(sizing.startup_seconds.value, READY_PATH, LIVE_PATH, PORT_NAME, ready_period=5),
        # Readiness over gRPC health: the gRPC port opens once the model is ready and reports
        # NOT_SERVING from the drain on, so a pod is ready only while both protocols serve.
        # Startup and liveness stay on HTTP, which answers while the model loads.
        "readinessProbe": {
            "grpc": {"port": options.grpc_port, "service": GRPC_HEALTH_SERVICE},
            "periodSeconds": 5,
            "timeoutSeconds": 2,
            "failureThreshold": 2,
        },
        # preStop keeps the pod serving until endpoint removal has propagated; SIGTERM then
        # makes the server finish what it admitted (INFERSTACK_DRAIN_GRACE_S) and exit.
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_SECONDS}}},
        "securityContext": hardened_container_security(),
        "volumeMounts": _volume_mounts(spec),
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
                **_model_values(spec),
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
        "volumeMounts": _volume_mounts(spec),
    }


def node_selector(placement: PoolPlacement) -> Manifest:
    """`nodeSelector` when the placement names nodes (a cloud target's pool), else nothing."""
    return {"nodeSelector": dict(placement.node_selector)} if placement.node_selector else {}


def scheduling(pool: Pool, bindings: KubernetesBindings) -> Manifest:
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
        **node_selector(nodes),
        "affinity": affinity,
        "tolerations": [*tolerations, *nodes.tolerations],
    }


def capacity_spread(placement: PoolPlacement, pod_labels: Mapping[str, str]) -> Manifest:
    """Pods spread evenly over the placement's spread label, hard, at most one apart; nothing
    without one. The values the nodes of each capacity type may carry set the split
    (karpenter-blueprints, "Split Between On-Demand & Spot Instances")."""
    if placement.spread_label is None:
        return {}
    return {
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": placement.spread_label,
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": dict(pod_labels)},
            }
        ]
    }


def container(
    spec: InferenceServiceSpec,
    pool: Pool,
    options: KubernetesOptions,
    bindings: KubernetesBindings,
    image: pulumi.Input[str],
) -> Manifest:
    """The pool's one container: the server for realtime, the queue worker for batch."""
    if isinstance(pool, RealtimePool):
        return realtime_container(spec, pool, options, image)
    return worker_container(spec, pool, options, bindings, image)


__all__ = [
    "CONTAINER_NAME",
    "GRPC_PORT_NAME",
    "PORT_NAME",
    "SPOT_NODE_LABELS",
    "WORKER_PORT_NAME",
    "container",
    "cpu_request_env",
    "decimal",
    "gpu_toleration",
    "hardened_container_security",
    "model_cache_volume",
    "node_selector",
    "on_demand_only_affinity",
    "pod_security",
    "pod_volumes",
    "realtime_container",
    "scheduling",
    "scratch_volume",
    "spot_first_affinity",
    "capacity_spread",
    "spot_tolerations",
    "worker_container",
]
