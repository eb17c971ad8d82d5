"""KEDA manifests of an inference service: demand autoscaling, pre-warm, wake-from-zero, queues.

Pure functions returning wire-form dicts, like `k8s_workloads`. What each pool scales on:

- realtime: a Prometheus trigger on the runtime's own demand gauges (queue depth, in-flight or
  request rate, never utilisation) with an `AverageValue` target of sizing's per-replica figure;
  one cron trigger per pre-warm window (a replica floor raised before a known spike by the
  measured cold start); with scale-to-zero, an `external-push` trigger fed by the KEDA HTTP
  add-on's interceptor, which holds requests while a replica starts. A Prometheus trigger alone
  can never wake a Deployment at zero: its series disappear with the last pod.
- batch: the queue's own length (SQS, Redis Streams, Pub/Sub via Google Managed Prometheus),
  read with pod identity, from zero replicas.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

from inferstack.components.kubernetes.bindings import KubernetesBindings, queue_name
from inferstack.components.kubernetes.options import KubernetesOptions
from inferstack.components.kubernetes.pods import PORT_NAME, decimal
from inferstack.components.kubernetes.queues import NULL_IS_ERROR, TRIGGER_NAME, backend
from inferstack.components.kubernetes.workloads import (
    Manifest,
    labels,
    metadata,
    pool_annotations,
    realtime_annotations,
    scraped_label_selector,
    workload_name,
)
from inferstack.components.planning.pools import (
    BatchPool,
    Pool,
    RealtimePool,
)
from inferstack.components.planning.scale_up import ScaleUp
from inferstack.components.planning.sizing import Sizing
from inferstack.components.planning.spec import InferenceServiceSpec
from inferstack.contract import metrics as metric_names

KEDA_API: Final = "keda.sh/v1alpha1"
HTTP_ADDON_API: Final = "http.keda.sh/v1beta1"
INTERCEPTOR_SERVICE: Final = "keda-add-ons-http-interceptor-proxy"
INTERCEPTOR_PORT: Final = 8080
EXTERNAL_SCALER: Final = "keda-add-ons-http-external-scaler"
EXTERNAL_SCALER_PORT: Final = 9090
BATCH_POLLING_SECONDS: Final = 15
BATCH_SCALE_UP: Final = ScaleUp(
    stabilization_seconds=0,
    period_seconds=15,
    pods=4,
    percent=100,
    polling_seconds=BATCH_POLLING_SECONDS,
)
"""The batch pool's backlog has no latency budget: four workers or double per HPA sync."""
IDLE_BEFORE_ZERO_SECONDS: Final = 300
"""How long a pool sits without demand before KEDA takes it to zero."""
SCALE_DOWN_STABILIZATION_SECONDS: Final = 300
RATE_WINDOW: Final = "1m"
FALLBACK_FAILURE_THRESHOLD: Final = 3
"""Failed reads of a trigger before KEDA falls back: three polls (30 s realtime, 45 s batch)."""
FALLBACK_BEHAVIOR: Final = "currentReplicasIfHigher"
"""KEDA's fallback that holds the replicas a pool has and raises it to the floor, never lower: a
pool that cannot see its demand must not shed the capacity it is serving with."""


def demand_query(
    spec: InferenceServiceSpec,
    pool: RealtimePool,
    namespace: str,
    scraper_labels: Mapping[str, str] | None = None,
) -> str:
    """PromQL of the realtime pool's demand: the pool total, which KEDA divides per replica."""
    matchers = scraped_label_selector(spec, "realtime", namespace, scraper_labels)
    metric = pool.spec.scaling.metric
    if metric == "queue_depth":
        return f"sum({metric_names.QUEUE_DEPTH}{{{matchers}}})"
    if metric == "in_flight":
        return f"sum({metric_names.IN_FLIGHT}{{{matchers}}})"
    # Requests answered per second, whatever the outcome: rejected requests are demand too.
    return f"sum(rate({metric_names.REQUESTS}_total{{{matchers}}}[{RATE_WINDOW}]))"


def _behavior(up: ScaleUp, scale_down_window: int) -> Manifest:
    """Grow as fast as sizing derived (realtime: cold start, ramp); give back slowly, in steps."""
    return {
        "horizontalPodAutoscalerConfig": {
            "behavior": {
                "scaleUp": {
                    "stabilizationWindowSeconds": up.stabilization_seconds,
                    "selectPolicy": "Max",
                    "policies": [
                        {
                            "type": "Percent",
                            "value": up.percent,
                            "periodSeconds": up.period_seconds,
                        },
                        {"type": "Pods", "value": up.pods, "periodSeconds": up.period_seconds},
                    ],
                },
                "scaleDown": {
                    "stabilizationWindowSeconds": scale_down_window,
                    "selectPolicy": "Min",
                    "policies": [
                        {"type": "Percent", "value": 25, "periodSeconds": 60},
                        {"type": "Pods", "value": 2, "periodSeconds": 60},
                    ],
                },
            }
        }
    }


def _target_ref(name: str) -> Manifest:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}


def proxy_name(spec: InferenceServiceSpec) -> str:
    """The in-namespace name that routes through the HTTP add-on's interceptor."""
    return f"{spec.name}-proxy"


def proxy_hosts(spec: InferenceServiceSpec, options: KubernetesOptions) -> list[str]:
    """Every Host header an in-cluster caller of the proxy Service may send."""
    name, namespace = proxy_name(spec), options.namespace
    return [name, f"{name}.{namespace}", f"{name}.{namespace}.svc", _fqdn(name, namespace)]


def _fqdn(name: str, namespace: str) -> str:
    return f"{name}.{namespace}.svc.cluster.local"


def service_url(spec: InferenceServiceSpec, options: KubernetesOptions) -> str | None:
    """Where in-cluster clients send requests: the proxy when the pool can sit at zero."""
    if spec.realtime is None:
        return None
    if spec.realtime.scale_to_zero:
        return f"http://{_fqdn(proxy_name(spec), options.namespace)}:{INTERCEPTOR_PORT}"
    return f"http://{_fqdn(workload_name(spec, 'realtime'), options.namespace)}:{options.port}"


def metrics_authentication_name(spec: InferenceServiceSpec) -> str:
    """Name of the TriggerAuthentication KEDA queries the demand with (Managed Prometheus)."""
    return f"{spec.name}-metrics"


def metrics_trigger_authentication(
    spec: InferenceServiceSpec, options: KubernetesOptions, bindings: KubernetesBindings
) -> Manifest | None:
    """KEDA's pod identity for a query API that needs one (Managed Prometheus); else None."""
    identity = bindings.scrape.pod_identity
    if identity is None:
        return None
    return {
        "apiVersion": KEDA_API,
        "kind": "TriggerAuthentication",
        "metadata": metadata(metrics_authentication_name(spec), options, labels(spec, "realtime")),
        "spec": {"podIdentity": dict(identity)},
    }


def realtime_triggers(
    spec: InferenceServiceSpec,
    pool: RealtimePool,
    options: KubernetesOptions,
    bindings: KubernetesBindings | None = None,
) -> list[Manifest]:
    """Demand, then one cron floor per pre-warm window, then the HTTP wake-up when at zero.

    The demand query goes where `bindings.scrape` says the pods are scraped.
    """
    scrape = (bindings or KubernetesBindings.from_options(options)).scrape
    demand: Manifest = {"type": "prometheus", "name": "demand", "metricType": "AverageValue"}
    if scrape.pod_identity is not None:
        demand["authenticationRef"] = {"name": metrics_authentication_name(spec)}
    triggers: list[Manifest] = [
        {
            **demand,
            "metadata": {
                "serverAddress": scrape.server_address,
                "query": demand_query(spec, pool, options.namespace, scrape.matchers),
                "threshold": decimal(pool.sizing.target_per_replica.value),
                "activationThreshold": "0",
                # No series is an error, not zero demand. At zero replicas (scale-to-zero) KEDA
                # does not apply the fallback (its executor leaves the HPA idle), so the HTTP
                # add-on's trigger still decides the wake.
                **NULL_IS_ERROR,
            },
        }
    ]
    for window in pool.sizing.prewarm:
        triggers.append(
            {
                "type": "cron",
                "name": f"prewarm-{window.spike_index}",
                "metadata": {
                    "timezone": window.timezone,
                    "start": window.start_cron,
                    "end": window.end_cron,
                    "desiredReplicas": str(window.desired_replicas),
                },
            }
        )
    if pool.spec.scale_to_zero:
        triggers.append(
            {
                "type": "external-push",
                "name": "http-wake",
                "metadata": {
                    "interceptorRoute": workload_name(spec, "realtime"),
                    "scalerAddress": (
                        f"{EXTERNAL_SCALER}.{options.keda_namespace}:{EXTERNAL_SCALER_PORT}"
                    ),
                },
            }
        )
    return triggers


def scaled_object(
    spec: InferenceServiceSpec,
    sizing: Sizing,
    pool: Pool,
    options: KubernetesOptions,
    bindings: KubernetesBindings,
) -> Manifest:
    """A pool's autoscaler: bounds from sizing; realtime scales on demand plus pre-warm, batch
    from zero on its queue's backlog."""
    name = workload_name(spec, pool.tier)
    if isinstance(pool, RealtimePool):
        up, triggers = pool.sizing.scale_up.value, realtime_triggers(spec, pool, options, bindings)
    else:
        up, triggers = BATCH_SCALE_UP, [queue_trigger(spec, pool, bindings)]
    return {
        "apiVersion": KEDA_API,
        "kind": "ScaledObject",
        "metadata": metadata(
            name, options, labels(spec, pool.tier), pool_annotations(spec, sizing, pool)
        ),
        "spec": {
            "scaleTargetRef": _target_ref(name),
            "pollingInterval": up.polling_seconds,
            "cooldownPeriod": IDLE_BEFORE_ZERO_SECONDS,
            "minReplicaCount": pool.sizing.min_replicas.value,
            "maxReplicaCount": pool.sizing.max_replicas.value,
            "advanced": _behavior(up, SCALE_DOWN_STABILIZATION_SECONDS),
            "fallback": fallback(pool),
            "triggers": triggers,
        },
    }


def fallback_replicas(pool: Pool) -> int:
    """The floor a pool holds while a trigger cannot be read, from the plan's sizing.

    Realtime: what the declared baseline needs (at least the minimum), so the latency budget holds
    while demand is unknown. Batch: the minimum, but at least one worker, so a queue that cannot
    be measured is still drained. Never above the pool's maximum.
    """
    sizing = pool.sizing
    floor = sizing.min_replicas.value
    if isinstance(pool, RealtimePool):
        floor = max(floor, pool.sizing.baseline_replicas.value)
    return min(max(floor, 1), sizing.max_replicas.value)


def fallback(pool: Pool) -> Manifest:
    """KEDA's `spec.fallback` (ScaledObject specification, "fallback"): after
    `FALLBACK_FAILURE_THRESHOLD` failed reads the HPA is fed `fallback_replicas`, so a broken
    query holds a safe floor and shows as the ScaledObject's Fallback condition."""
    return {
        "failureThreshold": FALLBACK_FAILURE_THRESHOLD,
        "replicas": fallback_replicas(pool),
        "behavior": FALLBACK_BEHAVIOR,
    }


def pool_concurrency_target(spec: InferenceServiceSpec, pool: RealtimePool) -> int:
    """Requests in flight per replica of a realtime pool at its sized rate if each took the
    whole latency budget (the HTTP add-on's concurrency target)."""
    return max(1, math.ceil(pool.sizing.replica_rps.value * spec.latency_budget_ms / 1000))


def interceptor_route(
    spec: InferenceServiceSpec, sizing: Sizing, pool: RealtimePool, options: KubernetesOptions
) -> Manifest:
    """KEDA HTTP add-on routing: hold requests while the pool wakes, up to the hold timeout."""
    hold_timeout = pool.sizing.request_hold_timeout_seconds
    if hold_timeout is None:
        raise ValueError(f"{spec.name}: only a realtime pool that scales to zero holds requests")
    hold = hold_timeout.value
    return {
        "apiVersion": HTTP_ADDON_API,
        "kind": "InterceptorRoute",
        "metadata": metadata(
            workload_name(spec, "realtime"),
            options,
            labels(spec, "realtime"),
            realtime_annotations(spec, sizing),
        ),
        "spec": {
            "target": {"service": workload_name(spec, "realtime"), "portName": PORT_NAME},
            "rules": [{"hosts": proxy_hosts(spec, options)}],
            "scalingMetric": {"concurrency": {"targetValue": pool_concurrency_target(spec, pool)}},
            # readiness: how long a request waits for a ready replica (the wake from zero).
            "timeouts": {"readiness": f"{hold}s"},
        },
    }


def proxy_service(spec: InferenceServiceSpec, options: KubernetesOptions) -> Manifest:
    """A name in the service's namespace for the interceptor, which lives in KEDA's namespace."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(proxy_name(spec), options, labels(spec, "realtime")),
        "spec": {
            "type": "ExternalName",
            "externalName": _fqdn(INTERCEPTOR_SERVICE, options.keda_namespace),
        },
    }


# ---------------------------------------------------------------------------------------------
# Batch pool


def trigger_authentication_name(spec: InferenceServiceSpec) -> str:
    """Name of the TriggerAuthentication KEDA uses to read the batch queue."""
    return f"{spec.name}-queue"


def needs_trigger_authentication(pool: BatchPool, bindings: KubernetesBindings) -> bool:
    """Cloud queues are read with pod identity; an in-cluster Redis needs no cloud identity."""
    return backend(pool.spec.queue).pod_identity(bindings.queue) is not None


def trigger_authentication(
    spec: InferenceServiceSpec,
    pool: BatchPool,
    options: KubernetesOptions,
    bindings: KubernetesBindings,
) -> Manifest:
    """Pod identity (IRSA / EKS Pod Identity, GKE Workload Identity) for KEDA: no static keys."""
    identity = backend(pool.spec.queue).pod_identity(bindings.queue)
    if identity is None:
        raise ValueError(f"a {pool.spec.queue.kind} queue is read without a cloud identity")
    return {
        "apiVersion": KEDA_API,
        "kind": "TriggerAuthentication",
        "metadata": metadata(trigger_authentication_name(spec), options, labels(spec, "batch")),
        "spec": {"podIdentity": identity},
    }


def queue_trigger(
    spec: InferenceServiceSpec, pool: BatchPool, bindings: KubernetesBindings
) -> Manifest:
    """The batch pool's one trigger: the queue's backlog per replica, active from one message."""
    queue = pool.spec.queue
    kind, trigger_metadata = backend(queue).trigger_metadata(
        queue_name(spec, bindings),
        str(pool.sizing.target_per_replica.value),
        queue,
        bindings.queue,
    )
    trigger: Manifest = {"type": kind, "name": TRIGGER_NAME}
    if needs_trigger_authentication(pool, bindings):
        trigger["authenticationRef"] = {"name": trigger_authentication_name(spec)}
    trigger["metadata"] = dict(trigger_metadata)
    return trigger
