"""KubernetesInferenceService rendered under the Pulumi SDK's mock monitor, object by object.

One capture of a fixture program builds several services (one per scenario) in a fresh
interpreter, exactly as `pulumi preview` would register them; the tests read the wire inputs,
turn them back into manifests and validate every one against the pinned Kubernetes schema and
the KEDA CRDs, then check the behaviour each mechanism promises.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema
import kubernetes_validate
import pytest
from croniter import croniter

from inferstack.components.kubernetes.bindings import KubernetesBindings
from inferstack.components.kubernetes.options import (
    HTTP_ADDON_CHART_VERSION,
    KEDA_CHART_VERSION,
    KubernetesOptions,
    QueueBinding,
    parse_options,
)
from inferstack.components.kubernetes.pods import SPOT_NODE_LABELS, cpu_request_env
from inferstack.components.planning.sizing import size_service
from inferstack.contract import metrics as metric_names
from inferstack.contract.clouds import INTERRUPTION_NOTICE_SECONDS
from inferstack.contract.labels import (
    COLD_START_SECONDS_ANNOTATION,
    LATENCY_BUDGET_MS_ANNOTATION,
    MAX_QUEUE_DELAY_MS_ANNOTATION,
    SERVICE_LABEL,
    TIER_LABEL,
)
from inferstack.errors import SpecError
from inferstack.offline.capture import Capture, CapturedResource
from tests.components import schemas
from tests.components.downward import cpu_millis, resolved_env
from tests.components.factories import PROFILE, make_profile, spec_data
from tests.components.netpol import Peer, allows
from tests.components.scenarios import capture_scenarios
from tests.components.scheduling import NODES, preference_score, schedulable

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
COLD_START_SECONDS = 180  # factories.PROFILE: node 90 + image 60 + load 20 + warm-up 10


def _scenario(name: str, options: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {"spec": spec_data(name=name, **changes), "options": options, "profile": PROFILE}


SQS_OPTIONS = {
    "namespace": "inference",
    "queue": {"aws_region": "us-east-1", "results_uri": "s3://results/full"},
}
SCENARIOS = [
    # Both pools, queue-depth demand, one weekday spike in New York, SQS on spot with fallback.
    _scenario("full", SQS_OPTIONS),
    # Sync scale-to-zero through the HTTP add-on; in-flight demand; Redis Streams; scraped by
    # pod annotations (chosen explicitly: only a `kubernetes-pods` job reads them).
    _scenario(
        "zero",
        {
            "metrics": "annotations",
            "queue": {"results_uri": "redis://redis:6379/1"},
        },
        realtime__scale_to_zero=True,
        realtime__allow_cold_start_over_budget=True,
        realtime__scaling__metric="in_flight",
        batch__queue={"kind": "redis-streams", "name": "jobs", "redis_address": "redis:6379"},
    ),
    # Batch only, Pub/Sub, spot required (no on-demand fallback).
    _scenario(
        "pubsub",
        {
            "queue": {"gcp_project": "proj-1", "results_uri": "gs://results/p"},
            "network_policy": False,
        },
        realtime=None,
        batch__queue={"kind": "pubsub", "name": "jobs-sub"},
        batch__capacity={"spot": True, "fallback": "none"},
    ),
    # Request-rate demand, batch pool kept off spot, KEDA, the device plugin and
    # kube-prometheus-stack installed by the component; two acceptors per realtime pod.
    _scenario(
        "ondemand",
        {
            "acceptors": 2,
            "install_keda": True,
            "addons": {
                "nvidia_device_plugin": {"install": True},
                "prometheus": {"install": True},
            },
            "prometheus_release": "prom",
            "queue": {"aws_region": "eu-west-1", "results_uri": "s3://r/o"},
            "ingress_own_namespace": False,
            "ingress_namespaces": ["gateway"],
            "ingress_peers": [{"podSelector": {"matchLabels": {"app": "caller"}}}],
            "prometheus_namespace": "observability",
        },
        realtime__scaling__metric="rps",
        batch__capacity={"spot": False, "fallback": "on_demand"},
    ),
    # Pre-warm across a DST gap (New York 03:02 daily: 02:59 is missing one day a year) and
    # across midnight (London 00:01).
    _scenario(
        "dst",
        SQS_OPTIONS | {"namespace": "dst"},
        batch=None,
        traffic__spikes=[
            {
                "cron": "2 3 * * *",
                "timezone": "America/New_York",
                "duration_minutes": 60,
                "rps": 9000,
            },
            {"cron": "1 0 * * *", "timezone": "Europe/London", "duration_minutes": 30, "rps": 7000},
        ],
    ),
    # A hold timeout shorter than the 180 s cold start: refused before any child exists.
    _scenario(
        "refused",
        SQS_OPTIONS,
        realtime__scale_to_zero=True,
        realtime__allow_cold_start_over_budget=True,
        realtime__request_hold_timeout_s=10,
    ),
]


@dataclass(frozen=True)
class Rendered:
    """What the fixture program registered, with manifests rebuilt from the wire."""

    capture: Capture

    def children(self, service: str) -> list[CapturedResource]:
        component = next(
            r
            for r in self.capture.resources
            if r.type == "inferstack:kubernetes:InferenceService" and r.name == service
        )
        return [r for r in self.capture.resources if r.parent == component.urn]

    def manifests(self, service: str) -> list[dict[str, Any]]:
        return [
            schemas.manifest_from_wire(r.type, r.inputs)
            for r in self.children(service)
            if r.type.startswith("kubernetes:") and not r.type.startswith("kubernetes:helm.sh")
        ]

    def one(self, service: str, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [
            m
            for m in self.manifests(service)
            if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)
        ]
        assert len(found) == 1, (kind, name, [m["metadata"]["name"] for m in found])
        return found[0]

    def all_of(self, kind: str) -> list[dict[str, Any]]:
        return [
            schemas.manifest_from_wire(r.type, r.inputs)
            for r in self.capture.resources
            if r.type.startswith("kubernetes:") and r.type.rsplit(":", 1)[1] == kind
        ]


@pytest.fixture(scope="module")
def rendered() -> Rendered:
    return Rendered(capture_scenarios("k8s_services", SCENARIOS, NOW))


def _sizing(name: str) -> Any:
    scenario = next(s for s in SCENARIOS if s["spec"]["name"] == name)
    from inferstack.components.planning.spec import parse_spec

    return size_service(parse_spec(scenario["spec"]), make_profile(), now=NOW)


def _pod_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def _containers(rendered: Rendered) -> Iterator[tuple[str, dict[str, Any]]]:
    for deployment in rendered.all_of("Deployment"):
        for container in _pod_spec(deployment)["containers"]:
            yield deployment["metadata"]["name"], container


# ---------------------------------------------------------------------------------------------
# Schemas


def test_every_object_validates_strictly_against_its_schema(rendered: Rendered) -> None:
    schemas.require_schema_dir()
    validated: set[str] = set()
    for resource in rendered.capture.resources:
        if not resource.type.startswith("kubernetes:") or resource.type.startswith(
            "kubernetes:helm.sh"
        ):
            continue
        manifest = schemas.manifest_from_wire(resource.type, resource.inputs)
        schemas.validate(manifest)
        validated.add(manifest["kind"])
    assert validated == {
        "Deployment",
        "Service",
        "ServiceAccount",
        "PodDisruptionBudget",
        "ScaledObject",
        "TriggerAuthentication",
        "InterceptorRoute",
        "NetworkPolicy",
        "PodMonitor",
    }


def test_validators_reject_unknown_fields_and_broken_rules(rendered: Rendered) -> None:
    """The checks above are strict: each mutation here is something kubectl would refuse."""
    schemas.require_schema_dir()
    deployment = rendered.one("full", "Deployment", "full-realtime")
    _pod_spec(deployment)["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        schemas.validate(deployment)

    scaled = rendered.one("full", "ScaledObject", "full-realtime")
    scaled["spec"]["triggers"][0]["threshhold"] = "3"
    with pytest.raises(jsonschema.ValidationError, match="threshhold"):
        schemas.validate(scaled)

    scaled = rendered.one("full", "ScaledObject", "full-realtime")
    scaled["spec"]["minReplicaCount"] = scaled["spec"]["maxReplicaCount"] + 1
    with pytest.raises(jsonschema.ValidationError, match="minReplicaCount"):
        schemas.validate(scaled)

    route = rendered.one("zero", "InterceptorRoute")
    route["spec"]["target"]["port"] = 8000  # port and portName are mutually exclusive
    with pytest.raises(jsonschema.ValidationError, match="portName"):
        schemas.validate(route)

    route = rendered.one("zero", "InterceptorRoute")
    route["metadata"]["labelz"] = {}
    with pytest.raises(jsonschema.ValidationError, match="labelz"):
        schemas.validate(route)


# ---------------------------------------------------------------------------------------------
# Placement


@pytest.mark.parametrize("service", ["full", "zero", "ondemand", "dst"])
def test_realtime_pods_never_schedule_on_spot(rendered: Rendered, service: str) -> None:
    pod = _pod_spec(rendered.one(service, "Deployment", f"{service}-realtime"))
    for node in NODES:
        assert schedulable(pod, node) is not node.spot, node.name
    keys = {key for key, _ in SPOT_NODE_LABELS}
    assert not [t for t in pod.get("tolerations", []) if t.get("key") in keys or not t.get("key")]


def test_batch_pool_prefers_spot_tolerates_it_and_falls_back(rendered: Rendered) -> None:
    pod = _pod_spec(rendered.one("full", "Deployment", "full-batch"))
    assert all(schedulable(pod, node) for node in NODES)  # spot taints tolerated, fallback open
    for node in NODES:
        assert (preference_score(pod, node) > 0) is node.spot, node.name


def test_batch_pool_without_fallback_requires_spot(rendered: Rendered) -> None:
    pod = _pod_spec(rendered.one("pubsub", "Deployment", "pubsub-batch"))
    for node in NODES:
        assert schedulable(pod, node) is node.spot, node.name


def test_batch_pool_with_spot_off_stays_on_demand(rendered: Rendered) -> None:
    pod = _pod_spec(rendered.one("ondemand", "Deployment", "ondemand-batch"))
    for node in NODES:
        assert schedulable(pod, node) is not node.spot, node.name


def test_batch_grace_fits_inside_the_shortest_spot_notice(rendered: Rendered) -> None:
    for service in ("full", "zero", "pubsub", "ondemand"):
        grace = _pod_spec(rendered.one(service, "Deployment", f"{service}-batch"))[
            "terminationGracePeriodSeconds"
        ]
        assert 0 < grace < min(INTERRUPTION_NOTICE_SECONDS.values())
        assert grace == _sizing(service).batch.termination_grace_seconds.value


# ---------------------------------------------------------------------------------------------
# Demand autoscaling


@pytest.mark.parametrize(
    ("service", "series"),
    [
        ("full", metric_names.QUEUE_DEPTH),
        ("zero", metric_names.IN_FLIGHT),
        ("ondemand", f"{metric_names.REQUESTS}_total"),
    ],
)
def test_prometheus_trigger_carries_a_demand_query(
    rendered: Rendered, service: str, series: str
) -> None:
    scaled = rendered.one(service, "ScaledObject", f"{service}-realtime")
    sizing = _sizing(service).realtime
    (demand,) = [t for t in scaled["spec"]["triggers"] if t["type"] == "prometheus"]
    assert demand["metricType"] == "AverageValue"
    assert float(demand["metadata"]["threshold"]) == sizing.target_per_replica.value
    query = demand["metadata"]["query"]
    assert query.startswith("sum(")
    assert series + "{" in query
    assert f'inferstack_io_service="{service}"' in query
    assert 'inferstack_io_tier="realtime"' in query
    assert not {t["type"] for t in scaled["spec"]["triggers"]} & {"cpu", "memory"}
    assert scaled["spec"]["minReplicaCount"] == sizing.min_replicas.value
    assert scaled["spec"]["maxReplicaCount"] == sizing.max_replicas.value
    assert scaled["spec"]["scaleTargetRef"]["name"] == f"{service}-realtime"
    behavior = scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 60


def _active(trigger: dict[str, Any], at: datetime) -> bool:
    """KEDA's cron scaler: active when the next `end` comes before the next `start`."""
    zone = ZoneInfo(trigger["metadata"]["timezone"])
    local = at.astimezone(zone)
    next_start = croniter(trigger["metadata"]["start"], local).get_next(datetime)
    next_end = croniter(trigger["metadata"]["end"], local).get_next(datetime)
    return bool(next_end < next_start)


@pytest.mark.parametrize("service", ["full", "dst"])
def test_cron_triggers_prewarm_every_spike_by_the_cold_start(
    rendered: Rendered, service: str
) -> None:
    spec = next(s for s in SCENARIOS if s["spec"]["name"] == service)["spec"]
    scaled = rendered.one(service, "ScaledObject", f"{service}-realtime")
    crons = [t for t in scaled["spec"]["triggers"] if t["type"] == "cron"]
    windows = _sizing(service).realtime.prewarm
    assert len(crons) == len(spec["traffic"]["spikes"]) == len(windows)
    for index, (spike, trigger, window) in enumerate(
        zip(spec["traffic"]["spikes"], crons, windows, strict=True)
    ):
        assert trigger["name"] == f"prewarm-{index}"
        assert trigger["metadata"]["timezone"] == spike["timezone"]
        assert trigger["metadata"]["desiredReplicas"] == str(window.desired_replicas)
        # A year of occurrences, DST changes included: the floor is up from a full cold start
        # before each spike (real elapsed time) until the spike ends.
        zone = ZoneInfo(spike["timezone"])
        occurrences = croniter(spike["cron"], NOW.astimezone(zone))
        for _ in range(370):
            start = occurrences.get_next(datetime).astimezone(UTC)
            end = start + timedelta(minutes=spike["duration_minutes"])
            for at in (
                start - timedelta(seconds=COLD_START_SECONDS),
                start,
                end - timedelta(minutes=1),
            ):
                assert _active(trigger, at), (trigger, at.isoformat())


def test_dst_case_moves_the_start_earlier_than_the_plain_lead(rendered: Rendered) -> None:
    """03:02 in New York minus 3 min is 02:59, which does not exist on the spring-forward day."""
    scaled = rendered.one("dst", "ScaledObject", "dst-realtime")
    new_york = next(t for t in scaled["spec"]["triggers"] if t["name"] == "prewarm-0")
    assert new_york["metadata"]["start"] != "59 2 * * *"


# ---------------------------------------------------------------------------------------------
# Scale to zero


def test_scale_to_zero_fronts_the_pool_with_the_http_addon(rendered: Rendered) -> None:
    scaled = rendered.one("zero", "ScaledObject", "zero-realtime")
    route = rendered.one("zero", "InterceptorRoute")
    service = rendered.one("zero", "Service", "zero-realtime")
    proxy = rendered.one("zero", "Service", "zero-proxy")
    deployment = rendered.one("zero", "Deployment", "zero-realtime")
    sizing = _sizing("zero").realtime
    assert scaled["spec"]["minReplicaCount"] == 0
    (wake,) = [t for t in scaled["spec"]["triggers"] if t["type"] == "external-push"]
    assert wake["metadata"]["interceptorRoute"] == route["metadata"]["name"]
    assert wake["metadata"]["scalerAddress"] == "keda-add-ons-http-external-scaler.keda:9090"
    # The route targets the pool's Service by its named port, and that Service selects the pods.
    assert route["spec"]["target"]["service"] == service["metadata"]["name"]
    assert route["spec"]["target"]["portName"] in {p["name"] for p in service["spec"]["ports"]}
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    # Requests are held at least a full cold start.
    hold = route["spec"]["timeouts"]["readiness"]
    assert hold.endswith("s")
    assert int(hold[:-1]) >= COLD_START_SECONDS
    assert int(hold[:-1]) == sizing.request_hold_timeout_seconds.value
    assert route["metadata"]["annotations"][COLD_START_SECONDS_ANNOTATION] == "180"
    # In-cluster callers reach the interceptor through a name in their own namespace.
    assert (
        proxy["spec"]["externalName"]
        == "keda-add-ons-http-interceptor-proxy.keda.svc.cluster.local"
    )
    assert "zero-proxy.default.svc.cluster.local" in route["spec"]["rules"][0]["hosts"]
    url = rendered.capture.stack_outputs["service_url-zero"]
    assert url == "http://zero-proxy.default.svc.cluster.local:8080"


def test_without_scale_to_zero_there_are_no_http_addon_objects(rendered: Rendered) -> None:
    kinds = {m["kind"] for m in rendered.manifests("full")}
    assert "InterceptorRoute" not in kinds
    assert "HTTPScaledObject" not in kinds
    scaled = rendered.one("full", "ScaledObject", "full-realtime")
    assert scaled["spec"]["minReplicaCount"] >= 1
    url = rendered.capture.stack_outputs["service_url-full"]
    assert url == "http://full-realtime.inference.svc.cluster.local:8000"


def test_short_hold_timeout_is_refused_before_any_resource_exists(rendered: Rendered) -> None:
    error = rendered.capture.stack_outputs["error-refused"]
    assert "realtime.request_hold_timeout_s" in error
    assert "shorter than the cold start" in error
    # Planning refuses it, so not even the component is registered.
    assert [r.name for r in rendered.capture.resources if r.name.startswith("refused")] == []


# ---------------------------------------------------------------------------------------------
# Batch pool scaling


def test_sqs_backlog_scales_from_zero_with_pod_identity(rendered: Rendered) -> None:
    scaled = rendered.one("full", "ScaledObject", "full-batch")
    sizing = _sizing("full").batch
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "aws-sqs-queue"
    assert scaled["spec"]["minReplicaCount"] == 0
    assert scaled["spec"]["maxReplicaCount"] == sizing.max_replicas.value
    assert trigger["metadata"]["queueLength"] == str(sizing.target_per_replica.value)
    assert trigger["metadata"]["activationQueueLength"] == "0"
    assert trigger["metadata"]["queueURL"] == "jobs"
    auth = rendered.one("full", "TriggerAuthentication")
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    assert auth["spec"] == {"podIdentity": {"provider": "aws", "identityOwner": "workload"}}
    worker = _pod_spec(rendered.one("full", "Deployment", "full-batch"))["containers"][0]
    assert worker["args"] == [
        "--queue", "sqs://jobs", "--model", "builtin://mlp", "--results", "s3://results/full",
    ]  # fmt: skip


def test_redis_streams_backlog_uses_the_consumer_group_lag(rendered: Rendered) -> None:
    (trigger,) = rendered.one("zero", "ScaledObject", "zero-batch")["spec"]["triggers"]
    assert trigger["type"] == "redis-streams"
    assert trigger["metadata"]["stream"] == "jobs"
    assert trigger["metadata"]["address"] == "redis:6379"
    assert trigger["metadata"]["lagCount"] == str(_sizing("zero").batch.target_per_replica.value)
    assert trigger["metadata"]["activationLagCount"] == "0"
    worker = _pod_spec(rendered.one("zero", "Deployment", "zero-batch"))["containers"][0]
    assert worker["args"][:2] == ["--queue", "redis://redis:6379/0?stream=jobs"]


def test_pubsub_backlog_reads_managed_prometheus_not_mql(rendered: Rendered) -> None:
    (trigger,) = rendered.one("pubsub", "ScaledObject", "pubsub-batch")["spec"]["triggers"]
    assert trigger["type"] == "prometheus"  # not the gcp-pubsub scaler (MQL, deprecated)
    meta = trigger["metadata"]
    assert meta["serverAddress"].startswith("https://monitoring.googleapis.com/v1/projects/proj-1/")
    assert "subscription_num_undelivered_messages" in meta["query"]
    assert 'subscription_id="jobs-sub"' in meta["query"]
    assert rendered.one("pubsub", "TriggerAuthentication")["spec"] == {
        "podIdentity": {"provider": "gcp"}
    }
    kinds = [m["kind"] for m in rendered.manifests("pubsub")]
    assert "InterceptorRoute" not in kinds
    assert kinds.count("Deployment") == 1


# ---------------------------------------------------------------------------------------------
# Containers, labels, outputs


def test_every_container_is_hardened_and_gpus_are_not_overcommitted(rendered: Rendered) -> None:
    seen = 0
    for deployment in rendered.all_of("Deployment"):
        pod = _pod_spec(deployment)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True
            assert context["runAsUser"] > 0
            assert context["allowPrivilegeEscalation"] is False
            assert context["privileged"] is False
            assert context["readOnlyRootFilesystem"] is True
            assert context["capabilities"] == {"drop": ["ALL"]}
            resources = container["resources"]
            assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"]
            assert {"cpu", "memory"} <= resources["requests"].keys()
            seen += 1
    assert seen == 8


def test_realtime_probes_and_drain_follow_the_sizing(rendered: Rendered) -> None:
    deployment = rendered.one("full", "Deployment", "full-realtime")
    sizing = _sizing("full").realtime
    pod = _pod_spec(deployment)
    (container,) = pod["containers"]
    startup = container["startupProbe"]
    assert startup["httpGet"]["path"] == "/v2/health/ready"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= sizing.startup_seconds.value
    # Readiness over gRPC health (the gRPC port opens once the model is ready).
    assert container["readinessProbe"]["grpc"] == {
        "port": 8001,
        "service": "inference.GRPCInferenceService",
    }
    assert {(p["name"], p["containerPort"]) for p in container["ports"]} == {
        ("http", 8000),
        ("grpc", 8001),
    }
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert pod["terminationGracePeriodSeconds"] == sizing.termination_grace_seconds.value
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    env = resolved_env(container)
    assert pre_stop + float(env["INFERSTACK_DRAIN_GRACE_S"]) < pod["terminationGracePeriodSeconds"]
    assert "replicas" not in deployment["spec"]  # KEDA owns the count


def _process_settings(container: dict[str, Any]) -> tuple[Any, Any]:
    """The settings model and resolver of the process the container runs."""
    from inferstack.runtime.server import settings as serve
    from inferstack.runtime.worker import settings as work

    process = container["command"][1]
    assert process in {"serve", "work"}, container["command"]
    if process == "serve":
        return serve.ServerSettings, serve.resolve_settings
    return work.WorkerSettings, work.resolve_settings


def test_every_container_env_resolves_through_the_settings_of_its_process(
    rendered: Rendered,
) -> None:
    """Each pod's env, read by the real resolver of the process that runs in it: any
    INFERSTACK_* variable that process does not know fails here (the batch pod once set the
    server's queue size and timeout, which the worker silently ignored)."""
    from inferstack.runtime.settings import env_vars

    seen = set()
    acceptors: list[tuple[str, int]] = []
    for name, container in _containers(rendered):
        model, resolve = _process_settings(container)
        seen.add(model.__name__)
        env = resolved_env(container)
        unknown = {key for key in env if key.startswith("INFERSTACK_")} - set(
            env_vars(model).values()
        )
        assert unknown == set(), f"{name} sets {unknown}, which {model.__name__} does not read"
        args = container.get("args", [])
        flags = {
            flag.removeprefix("--").replace("-", "_"): value
            for flag, value in zip(args[::2], args[1::2], strict=True)
        }
        # The resolver refuses a value its process cannot parse; these must round-trip.
        settings = resolve(flags, environ=env)
        assert settings.max_batch_size == int(env["INFERSTACK_MAX_BATCH_SIZE"])
        assert settings.max_queue_delay_ms == float(env["INFERSTACK_MAX_QUEUE_DELAY_MS"])
        preferred = env.get("INFERSTACK_PREFERRED_BATCH_SIZES")
        assert settings.preferred_batch_sizes == (
            tuple(int(size) for size in preferred.split(",")) if preferred else ()
        )
        # The CPU request, whole CPUs rounded up, is the runtime's budget (no quota in a pod).
        request = container["resources"]["requests"]["cpu"]
        assert settings.cpus == math.ceil(cpu_millis(request) / 1000) >= 1, (name, request)
        if model.__name__ == "ServerSettings":
            acceptors.append((name, settings.acceptors))
    assert seen == {"ServerSettings", "WorkerSettings"}
    # The option reaches the server when set; unset, the runtime's own default (1) stays.
    assert ("ondemand-realtime", 2) in acceptors
    assert {count for name, count in acceptors if name != "ondemand-realtime"} == {1}


def test_every_runtime_container_passes_its_cpu_request_as_the_cpu_budget(
    rendered: Rendered,
) -> None:
    """The pods request CPU with no CPU limit, so no cgroup quota bounds the runtime: without
    INFERSTACK_CPUS it counts the node's CPUs (~47 torch threads on a 48-core node). The
    Downward API passes the container's request instead: `resourceFieldRef` naming the
    container, `requests.cpu`, divisor 1 (whole CPUs, rounded up) - the form of the Kubernetes
    docs' "Expose Pod Information to Containers Through Environment Variables"
    (https://kubernetes.io/docs/tasks/configure-pod-container/environment-variable-expose-pod-information/,
    `dapi-envars-container.yaml`); the divisor's rounding up is the kubelet's
    `convertResourceCPUToString` (see tests/components/downward.py)."""
    containers = list(_containers(rendered))
    assert {container["command"][1] for _name, container in containers} == {"serve", "work"}
    for name, container in containers:
        assert "cpu" not in container["resources"].get("limits", {}), name
        (item,) = [item for item in container["env"] if item["name"] == "INFERSTACK_CPUS"]
        assert item == {
            "name": "INFERSTACK_CPUS",
            "valueFrom": {
                "resourceFieldRef": {
                    "containerName": container["name"],
                    "resource": "requests.cpu",
                    "divisor": "1",
                }
            },
        }, name
    # A fractional request is rounded up, as the kubelet does.
    fractional = {"name": "c", "resources": {"requests": {"cpu": "1500m"}}}
    assert resolved_env({**fractional, "env": [cpu_request_env("c")]}) == {"INFERSTACK_CPUS": "2"}


def test_the_worker_is_told_the_grace_its_pod_gets(rendered: Rendered) -> None:
    pod = _pod_spec(rendered.one("full", "Deployment", "full-batch"))
    env = resolved_env(pod["containers"][0])
    assert float(env["INFERSTACK_SIGTERM_GRACE_S"]) == pod["terminationGracePeriodSeconds"]


def test_runtime_settings_come_from_the_spec_under_the_runtime_names(rendered: Rendered) -> None:
    spec = next(s for s in SCENARIOS if s["spec"]["name"] == "full")["spec"]
    container = _pod_spec(rendered.one("full", "Deployment", "full-realtime"))["containers"][0]
    env = resolved_env(container)
    assert env["INFERSTACK_MODEL"] == spec["model"]["uri"]
    assert env["INFERSTACK_MAX_QUEUE_DELAY_MS"] == "5"
    assert env["INFERSTACK_MAX_BATCH_SIZE"] == str(_sizing("full").realtime.batch_size.value)
    assert env["INFERSTACK_PREFERRED_BATCH_SIZES"] == "8,32"


def test_pool_objects_carry_tier_and_service_labels(rendered: Rendered) -> None:
    for service in ("full", "zero", "pubsub", "ondemand", "dst"):
        for manifest in rendered.manifests(service):
            tier = (
                "batch"
                if manifest["metadata"]["name"].endswith(("-batch", "-queue"))
                else "realtime"
            )
            labels = manifest["metadata"]["labels"]
            assert labels[SERVICE_LABEL] == service
            assert labels[TIER_LABEL] == tier, manifest["metadata"]["name"]
            if manifest["kind"] == "Deployment":
                template = manifest["spec"]["template"]["metadata"]["labels"]
                assert template[TIER_LABEL] == tier
                assert template[SERVICE_LABEL] == service


def test_realtime_objects_declare_budget_delay_and_cold_start(rendered: Rendered) -> None:
    for kind in ("Deployment", "ScaledObject"):
        annotations = rendered.one("full", kind, "full-realtime")["metadata"]["annotations"]
        assert annotations[LATENCY_BUDGET_MS_ANNOTATION] == "20"
        assert annotations[MAX_QUEUE_DELAY_MS_ANNOTATION] == "5"
        assert annotations[COLD_START_SECONDS_ANNOTATION] == "180"


def test_podmonitor_scrapes_the_pool_labels(rendered: Rendered) -> None:
    # The kubernetes target's default: a PodMonitor kube-prometheus-stack's Prometheus selects.
    monitor = rendered.one("full", "PodMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["selector"]["matchLabels"] == {
        SERVICE_LABEL: "full",
        TIER_LABEL: "realtime",
    }
    assert set(monitor["spec"]["podTargetLabels"]) == {SERVICE_LABEL, TIER_LABEL}
    assert monitor["spec"]["podMetricsEndpoints"] == [
        {"port": "http", "path": "/metrics", "interval": "15s"}
    ]
    full = rendered.one("full", "Deployment", "full-realtime")["spec"]["template"]
    assert "prometheus.io/scrape" not in full["metadata"]["annotations"]
    # Annotations only where a stack chose them, and then no PodMonitor.
    template = rendered.one("zero", "Deployment", "zero-realtime")["spec"]["template"]
    assert template["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert not [m for m in rendered.manifests("zero") if m["kind"] == "PodMonitor"]


def test_outputs_name_the_workloads_scalers_and_sizing(rendered: Rendered) -> None:
    outputs = rendered.capture.stack_outputs
    assert outputs["realtime_workload-full"] == "full-realtime"
    assert outputs["batch_workload-full"] == "full-batch"
    assert outputs["realtime_scaled_object-full"] == "full-realtime"
    assert outputs["batch_scaled_object-full"] == "full-batch"
    # Pulumi drops null outputs from the stack's exports.
    assert outputs.get("realtime_workload-pubsub") is None
    assert outputs.get("service_url-pubsub") is None
    assert outputs["batch_workload-pubsub"] == "pubsub-batch"
    expected = schemas.integral_floats_to_int(_sizing("full").to_dict())
    assert schemas.integral_floats_to_int(outputs["sizing-full"]) == expected


def test_children_are_named_by_role_under_the_component(rendered: Rendered) -> None:
    names = sorted(r.name for r in rendered.children("full"))
    assert names == sorted(
        f"full-{role}"
        for role in (
            "realtime", "realtime-sa", "realtime-service", "realtime-pdb", "realtime-scaler",
            "realtime-netpol", "realtime-podmonitor", "batch", "batch-sa", "batch-scaler",
            "queue-auth", "batch-netpol",
        )
    )  # fmt: skip


def test_install_keda_adds_pinned_helm_releases_before_the_workloads(rendered: Rendered) -> None:
    releases = {
        r.inputs["chart"]: r
        for r in rendered.children("ondemand")
        if r.type == "kubernetes:helm.sh/v3:Release"
    }
    assert releases["keda"].inputs["version"] == KEDA_CHART_VERSION
    assert releases["keda-add-ons-http"].inputs["version"] == HTTP_ADDON_CHART_VERSION
    plugin = releases["nvidia-device-plugin"].inputs
    assert plugin["version"] == "0.20.0"
    assert plugin["values"] == {"gfd": {"enabled": True}}  # NFD labels nodes nobody labelled
    # kube-prometheus-stack under the release name the PodMonitor's `release` label carries.
    prometheus = releases["kube-prometheus-stack"].inputs
    assert (prometheus["name"], prometheus["namespace"]) == ("prom", "observability")
    assert rendered.one("ondemand", "PodMonitor")["metadata"]["labels"]["release"] == "prom"
    urns = {r.urn for r in releases.values()}
    for resource in rendered.children("ondemand"):
        if resource.type != "kubernetes:helm.sh/v3:Release":
            assert urns <= set(resource.dependencies), resource.name
    assert not [r for r in rendered.children("full") if r.type.startswith("kubernetes:helm")]


# ---------------------------------------------------------------------------------------------
# Network policies


def _namespace_peer(name: str) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}


DNS_RULE = {
    "to": [
        {**_namespace_peer("kube-system"), "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}
    ],
    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
}
HTTPS_RULE = {
    "to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
    "ports": [{"protocol": "TCP", "port": 443}],
}
METADATA_RULE = {
    "to": [{"ipBlock": {"cidr": "169.254.169.254/32"}}],
    "ports": [{"protocol": "TCP", "port": 80}],
}


def test_each_pool_admits_only_prometheus_and_reaches_only_dns_and_its_cloud(
    rendered: Rendered,
) -> None:
    realtime = rendered.one("full", "NetworkPolicy", "full-realtime")
    deployment = rendered.one("full", "Deployment", "full-realtime")
    assert realtime["spec"]["podSelector"] == deployment["spec"]["selector"]
    assert realtime["spec"]["policyTypes"] == ["Ingress", "Egress"]
    # Nobody named: the pods beside it and Prometheus may call the realtime port (its /metrics
    # is there too); a podSelector alone selects the policy's own namespace.
    assert realtime["spec"]["ingress"] == [
        {
            "from": [{"podSelector": {}}, _namespace_peer("monitoring")],
            "ports": [{"protocol": "TCP", "port": 8000}, {"protocol": "TCP", "port": 8001}],
        }
    ]
    assert realtime["spec"]["egress"] == [DNS_RULE]  # builtin:// model: nothing to fetch
    batch = rendered.one("full", "NetworkPolicy", "full-batch")
    assert batch["spec"]["ingress"] == [
        {"from": [_namespace_peer("monitoring")], "ports": [{"protocol": "TCP", "port": 9091}]}
    ]
    # SQS and S3 over HTTPS; the metadata endpoint for pod identity and the spot notice.
    assert batch["spec"]["egress"] == [DNS_RULE, HTTPS_RULE, METADATA_RULE]


def test_named_callers_and_the_interceptor_are_admitted(rendered: Rendered) -> None:
    # ingress_own_namespace: false: only the named callers.
    named = rendered.one("ondemand", "NetworkPolicy", "ondemand-realtime")
    assert named["spec"]["ingress"][0]["from"] == [
        _namespace_peer("gateway"),
        {"podSelector": {"matchLabels": {"app": "caller"}}},
        _namespace_peer("observability"),
    ]
    # Scale-to-zero: the HTTP add-on's interceptor (KEDA's namespace) forwards the requests.
    zero = rendered.one("zero", "NetworkPolicy", "zero-realtime")
    assert _namespace_peer("keda") in zero["spec"]["ingress"][0]["from"]


def test_a_redis_pool_reaches_redis_on_its_port_and_no_https(rendered: Rendered) -> None:
    batch = rendered.one("zero", "NetworkPolicy", "zero-batch")
    egress = batch["spec"]["egress"]
    assert HTTPS_RULE not in egress
    assert {"ports": [{"protocol": "TCP", "port": 6379}]} in egress
    assert METADATA_RULE in egress  # the spot watcher


def test_network_policies_can_be_turned_off(rendered: Rendered) -> None:
    assert not [m for m in rendered.manifests("pubsub") if m["kind"] == "NetworkPolicy"]


# ---------------------------------------------------------------------------------------------
# Options


def test_unknown_options_are_refused_with_the_known_ones() -> None:
    with pytest.raises(SpecError, match=r"opts\.namespce: unknown option; known options are"):
        parse_options({"namespce": "x"}, source="opts")
    with pytest.raises(SpecError, match=r"opts\.queue\.region: unknown option; known options are"):
        parse_options({"queue": {"region": "x"}}, source="opts")


def test_wrong_types_are_named_with_what_was_expected() -> None:
    with pytest.raises(SpecError) as raised:
        parse_options(
            {"port": "http", "queue": "jobs", "batch_placement": {"tolerations": {}}},
            source="inferstack:kubernetes",
        )
    assert {str(problem) for problem in raised.value.problems} == {
        "inferstack:kubernetes.port: expected a whole number, got str",
        "inferstack:kubernetes.queue: expected a mapping of options, got str",
        "inferstack:kubernetes.batch_placement.tolerations: expected a list, got dict",
    }


def test_acceptors_are_counted_or_automatic_from_the_cpu_request() -> None:
    """Automatic (0) is allowed: the pods pass their CPU request as INFERSTACK_CPUS, so the
    runtime counts the request, not the node's CPUs (it was refused before they did)."""
    with pytest.raises(SpecError) as raised:
        parse_options({"acceptors": -1}, source="inferstack:kubernetes")
    (problem,) = raised.value.problems
    assert problem.path == "inferstack:kubernetes.acceptors"
    assert "0 for automatic (from the request)" in str(problem)
    assert parse_options({"acceptors": 0}, source="o").acceptors == 0
    assert parse_options({"acceptors": 4}, source="o").acceptors == 4
    assert parse_options({}, source="o").acceptors is None


def test_names_in_workload_identities_are_checked_when_read() -> None:
    with pytest.raises(SpecError) as raised:
        parse_options({"namespace": "Inference", "keda_namespace": "k/eda"}, source="o")
    assert {p.path for p in raised.value.problems} == {"o.namespace", "o.keda_namespace"}


def test_options_missing_for_the_queue_are_named() -> None:
    from inferstack.components.planning.spec import parse_spec

    def missing(spec: Any, options: KubernetesOptions) -> set[str]:
        found = options.problems(spec) + KubernetesBindings.from_options(options).problems(spec)
        return {p.path for p in found}

    sqs = parse_spec(spec_data())
    assert missing(sqs, KubernetesOptions()) == {
        "inferstack:kubernetes.queue.results_uri",
        "inferstack:kubernetes.queue.aws_region",
    }
    pubsub = parse_spec(spec_data(batch__queue={"kind": "pubsub"}))
    bound = KubernetesOptions(queue=QueueBinding(results_uri="gs://b/p"))
    assert missing(pubsub, bound) == {"inferstack:kubernetes.queue.gcp_project"}
    public = KubernetesOptions(
        service_type="LoadBalancer",
        queue=QueueBinding(url="q", aws_region="r", results_uri="s3://b"),
    )
    assert missing(sqs, public) == {"inferstack:kubernetes.service_annotations"}


INFERENCE_NS = {"kubernetes.io/metadata.name": "inference"}
DEFAULT_NS = {"kubernetes.io/metadata.name": "default"}


@pytest.mark.parametrize(
    ("scenario", "peer", "port", "allowed"),
    [
        # The case: a client beside the service was refused (only monitoring admitted).
        ("full", Peer(INFERENCE_NS, {"app": "client"}), 8000, True),
        ("full", Peer(DEFAULT_NS, {"app": "client"}), 8000, False),
        ("full", Peer({"kubernetes.io/metadata.name": "monitoring"}, {}), 8000, True),
        ("full", Peer(INFERENCE_NS, {"app": "client"}), 22, False),
        ("full", Peer(ip="10.0.0.8"), 8000, False),
        # Declared callers only: a namespace, a peer in the policy's namespace.
        ("ondemand", Peer({"kubernetes.io/metadata.name": "gateway"}, {}), 8000, True),
        ("ondemand", Peer(DEFAULT_NS, {"app": "caller"}), 8000, True),
        ("ondemand", Peer(DEFAULT_NS, {"app": "other"}), 8000, False),
        # Scale-to-zero: the interceptor in KEDA's namespace.
        ("zero", Peer({"kubernetes.io/metadata.name": "keda"}, {}), 8000, True),
        ("zero", Peer({"kubernetes.io/metadata.name": "kube-system"}, {}), 8000, False),
    ],
)
def test_the_realtime_pods_callers(
    rendered: Rendered, scenario: str, peer: Peer, port: int, allowed: bool
) -> None:
    policy = rendered.one(scenario, "NetworkPolicy", f"{scenario}-realtime")
    namespace = {"kubernetes.io/metadata.name": policy["metadata"]["namespace"]}
    assert allows(policy, "Ingress", peer, port, own_namespace=namespace) is allowed


# The realtime pod's egress, through its NetworkPolicy: a built-in model reaches nothing but DNS.

REALTIME_EGRESS = [
    (
        Peer({"kubernetes.io/metadata.name": "kube-system"}, {"k8s-app": "kube-dns"}),
        53,
        "UDP",
        True,
    ),
    (
        Peer({"kubernetes.io/metadata.name": "kube-system"}, {"k8s-app": "kube-dns"}),
        53,
        "TCP",
        True,
    ),
    # Undeclared: any cloud API, the metadata endpoint (node credentials), another pod, Redis.
    (Peer(ip="52.94.0.10"), 443, "TCP", False),
    (Peer(ip="169.254.169.254"), 80, "TCP", False),
    (Peer({"kubernetes.io/metadata.name": "inference"}, {"app": "db"}), 5432, "TCP", False),
    (Peer(ip="10.0.0.7"), 6379, "TCP", False),
]


@pytest.mark.parametrize(("peer", "port", "protocol", "allowed"), REALTIME_EGRESS)
def test_the_realtime_pods_egress(
    rendered: Rendered, peer: Peer, port: int, protocol: str, allowed: bool
) -> None:
    policy = rendered.one("full", "NetworkPolicy", "full-realtime")
    own = {"kubernetes.io/metadata.name": "inference"}
    assert allows(policy, "Egress", peer, port, protocol=protocol, own_namespace=own) is allowed
