"""Conformance: every string a controller or cloud interprets, checked against its upstream source.

Each test names the page or the upstream file the rule comes from. A schema accepts any string;
these tests hold the strings to what the controller that reads them does with them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from inferstack.components.kubernetes.bindings import KubernetesBindings
from inferstack.components.kubernetes.options import KubernetesOptions, QueueBinding
from inferstack.components.kubernetes.queues import PUBSUB_UNDELIVERED, promql_metric_name
from inferstack.components.kubernetes.scaling import FALLBACK_FAILURE_THRESHOLD, scaled_object
from inferstack.components.planning.pools import Pool, batch_pool, realtime_pool
from inferstack.components.planning.sizing import size_service
from inferstack.components.planning.spec import parse_spec
from tests.components import schemas
from tests.components.factories import make_profile, spec_data
from tests.components.netpol import Peer, allows

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
PROMQL_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
"""Prometheus data model, "Metric names and labels": the legacy (unquoted) metric name."""


OPTIONS = KubernetesOptions(
    queue=QueueBinding(gcp_project="proj-1", aws_region="us-east-1", results_uri="gs://r/p")
)
ZERO = {"realtime__scale_to_zero": True, "realtime__allow_cold_start_over_budget": True}
QUEUES = {
    "sqs": {"kind": "sqs", "name": "jobs"},
    "pubsub": {"kind": "pubsub", "name": "jobs-sub"},
    "redis-streams": {"kind": "redis-streams", "name": "jobs", "redis_address": "redis:6379"},
}


def _pool(pool: Pool | None) -> Pool:
    assert pool is not None
    return pool


def _batch_scaled_object(queue: str = "pubsub", **changes: Any) -> dict[str, Any]:
    spec = parse_spec(spec_data(batch__queue=QUEUES[queue], **changes))
    sizing = size_service(spec, make_profile(), now=NOW)
    pool = _pool(batch_pool(spec, sizing))
    return scaled_object(spec, sizing, pool, OPTIONS, KubernetesBindings.from_options(OPTIONS))


def _pubsub_scaled_object() -> dict[str, Any]:
    return _batch_scaled_object("pubsub")


def _realtime_scaled_object(**changes: Any) -> dict[str, Any]:
    spec = parse_spec(spec_data(**changes))
    sizing = size_service(spec, make_profile(), now=NOW)
    pool = _pool(realtime_pool(spec, sizing))
    return scaled_object(spec, sizing, pool, OPTIONS, KubernetesBindings.from_options(OPTIONS))


def _every_scaled_object() -> list[dict[str, Any]]:
    return [
        _realtime_scaled_object(),
        _realtime_scaled_object(**ZERO),
        *(_batch_scaled_object(queue) for queue in QUEUES),
        _batch_scaled_object("sqs", batch__scaling__min_replicas=2),
    ]


# ---------------------------------------------------------------------------------------------
# Google Cloud Managed Service for Prometheus: Cloud Monitoring metric names in PromQL


@pytest.mark.parametrize(
    ("cloud_monitoring", "promql"),
    [
        # Google Cloud, "Mapping Cloud Monitoring metrics to PromQL"
        # (https://cloud.google.com/monitoring/promql/promql-mapping), the page's own table.
        ("kubernetes.io/container/cpu/limit_cores", "kubernetes_io:container_cpu_limit_cores"),
        (
            "compute.googleapis.com/instance/cpu/utilization",
            "compute_googleapis_com:instance_cpu_utilization",
        ),
        ("logging.googleapis.com/log_entry_count", "logging_googleapis_com:log_entry_count"),
        (
            "custom.googleapis.com/opencensus/opencensus.io/http/server/request_count_by_method",
            "custom_googleapis_com:opencensus_opencensus_io_http_server_request_count_by_method",
        ),
        ("agent.googleapis.com/disk/io_time", "agent_googleapis_com:disk_io_time"),
        # The same page's distribution example (the _sum/_count/_bucket suffixes go after it).
        ("networking.googleapis.com/vm_flow/rtt", "networking_googleapis_com:vm_flow_rtt"),
    ],
)
def test_promql_name_follows_googles_mapping_table(cloud_monitoring: str, promql: str) -> None:
    assert promql_metric_name(cloud_monitoring) == promql
    assert PROMQL_METRIC_NAME.fullmatch(promql)


@pytest.mark.parametrize("bad", ["no_slash", "/leading", "trailing/"])
def test_a_name_without_domain_and_path_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not a Cloud Monitoring metric type"):
        promql_metric_name(bad)


def test_the_pubsub_backlog_query_names_the_mapped_metric() -> None:
    """The issue's case: `pubsub.googleapis.com:subscription_...` matched no series."""
    query = _pubsub_scaled_object()["spec"]["triggers"][0]["metadata"]["query"]
    name = "pubsub_googleapis_com:subscription_num_undelivered_messages"
    assert promql_metric_name(PUBSUB_UNDELIVERED) == name
    assert query == (
        f'sum({name}{{monitored_resource="pubsub_subscription",'
        'project_id="proj-1",subscription_id="jobs-sub"})'
    )


# ---------------------------------------------------------------------------------------------
# KEDA: silent zeros are errors, and an error holds a floor


def test_every_prometheus_trigger_reads_an_empty_answer_as_an_error() -> None:
    """kedacore/keda `pkg/scalers/prometheus_scaler.go`: `ignoreNullValues` defaults to true and
    then an empty result, an empty value or NaN returns 0 with no error."""
    triggers = [t for so in _every_scaled_object() for t in so["spec"]["triggers"]]
    prometheus = [t for t in triggers if t["type"] == "prometheus"]
    assert len(prometheus) == 3  # realtime twice, the Pub/Sub backlog once
    for trigger in prometheus:
        assert trigger["metadata"]["ignoreNullValues"] == "false"


def test_every_scaled_object_falls_back_to_the_plans_floor() -> None:
    """KEDA ScaledObject specification, "fallback" (keda.sh/docs/2.18/reference/scaledobject-spec)
    and `pkg/fallback/fallback.go`: after `failureThreshold` failed reads the HPA is fed
    `replicas` (with `currentReplicasIfHigher`, the current count when higher). The webhook
    (`CheckFallbackValid`) needs a trigger other than cpu or memory; a `Value` metric would divide
    by ready replicas, which are zero on a woken pool, so every trigger keeps `AverageValue`."""
    expected = {
        # realtime: baseline 5000 rps needs 3 replicas of the factory profile
        "embedder-realtime": 3,
        "embedder-batch": 1,
    }
    for so in _every_scaled_object():
        fallback = so["spec"]["fallback"]
        assert fallback["failureThreshold"] == FALLBACK_FAILURE_THRESHOLD
        assert fallback["behavior"] == "currentReplicasIfHigher"
        minimum, maximum = so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]
        assert max(minimum, 1) <= fallback["replicas"] <= maximum
        if minimum <= 1:
            assert fallback["replicas"] == expected[so["metadata"]["name"]]
        assert all(
            t.get("metricType", "AverageValue") == "AverageValue" for t in so["spec"]["triggers"]
        )
        assert any(t["type"] not in ("cpu", "memory") for t in so["spec"]["triggers"])


def test_the_fallback_validates_against_the_keda_crd() -> None:
    schemas.require_schema_dir()
    for so in _every_scaled_object():
        schemas.validate(so)


# ---------------------------------------------------------------------------------------------
# NetworkPolicy semantics: the evaluator the flow tables use, on the Kubernetes docs' examples

DOCS_POLICY: dict[str, Any] = {
    # Kubernetes documentation, "Network Policies", "The NetworkPolicy resource" example.
    "apiVersion": "networking.k8s.io/v1",
    "kind": "NetworkPolicy",
    "metadata": {"name": "test-network-policy", "namespace": "default"},
    "spec": {
        "podSelector": {"matchLabels": {"role": "db"}},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [
            {
                "from": [
                    {"ipBlock": {"cidr": "172.17.0.0/16", "except": ["172.17.1.0/24"]}},
                    {"namespaceSelector": {"matchLabels": {"project": "myproject"}}},
                    {"podSelector": {"matchLabels": {"role": "frontend"}}},
                ],
                "ports": [{"protocol": "TCP", "port": 6379}],
            }
        ],
        "egress": [
            {
                "to": [{"ipBlock": {"cidr": "10.0.0.0/24"}}],
                "ports": [{"protocol": "TCP", "port": 5978}],
            }
        ],
    },
}
DEFAULT_NS = {"kubernetes.io/metadata.name": "default"}
MYPROJECT_NS = {"kubernetes.io/metadata.name": "p", "project": "myproject"}
OTHER_NS = {"kubernetes.io/metadata.name": "other"}


@pytest.mark.parametrize(
    ("direction", "peer", "port", "allowed"),
    [
        # "any pod in the default namespace with the label role=frontend"
        ("Ingress", Peer(DEFAULT_NS, {"role": "frontend"}), 6379, True),
        ("Ingress", Peer(OTHER_NS, {"role": "frontend"}), 6379, False),
        ("Ingress", Peer(DEFAULT_NS, {"role": "backend"}), 6379, False),
        # "any pod in a namespace with the label project=myproject"
        ("Ingress", Peer(MYPROJECT_NS, {}), 6379, True),
        ("Ingress", Peer(MYPROJECT_NS, {}), 6380, False),
        # "IP addresses in the ranges 172.17.0.0-172.17.0.255 and 172.17.2.0-172.17.255.255"
        ("Ingress", Peer(ip="172.17.0.9"), 6379, True),
        ("Ingress", Peer(ip="172.17.1.9"), 6379, False),
        ("Ingress", Peer(ip="172.17.200.9"), 6379, True),
        ("Ingress", Peer(ip="172.18.0.1"), 6379, False),
        # "connections from any pod in the default namespace with the label role=db to CIDR
        # 10.0.0.0/24 on TCP port 5978"
        ("Egress", Peer(ip="10.0.0.7"), 5978, True),
        ("Egress", Peer(ip="10.0.1.7"), 5978, False),
        ("Egress", Peer(ip="10.0.0.7"), 443, False),
    ],
)
def test_the_evaluator_reads_the_docs_example_as_the_docs_do(
    direction: str, peer: Peer, port: int, allowed: bool
) -> None:
    assert allows(DOCS_POLICY, direction, peer, port, own_namespace=DEFAULT_NS) is allowed


def test_the_evaluator_ands_selectors_in_one_peer_and_reads_end_port() -> None:
    """The docs' "Behavior of to and from selectors" (one element: namespace AND pod) and
    "Targeting a range of ports" (port 32000, endPort 32768)."""
    spec = {
        "podSelector": {},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [
            {
                "from": [
                    {
                        "namespaceSelector": {"matchLabels": {"user": "alice"}},
                        "podSelector": {"matchLabels": {"role": "client"}},
                    }
                ]
            }
        ],
        "egress": [
            {
                "to": [{"ipBlock": {"cidr": "10.0.0.0/24"}}],
                "ports": [{"protocol": "TCP", "port": 32000, "endPort": 32768}],
            }
        ],
    }
    policy = {"spec": spec}
    alice = {"user": "alice"}
    assert allows(policy, "Ingress", Peer(alice, {"role": "client"}), 80)
    assert not allows(policy, "Ingress", Peer(alice, {"role": "server"}), 80)
    assert not allows(policy, "Ingress", Peer({"user": "bob"}, {"role": "client"}), 80)
    assert allows(policy, "Egress", Peer(ip="10.0.0.1"), 32768)
    assert not allows(policy, "Egress", Peer(ip="10.0.0.1"), 32769)
    assert not allows(policy, "Egress", Peer(ip="10.0.0.1"), 32000, protocol="UDP")
    deny_all = {"spec": {"podSelector": {}, "policyTypes": ["Egress"]}}
    assert not allows(deny_all, "Egress", Peer(ip="10.0.0.1"), 443)
    assert allows(deny_all, "Ingress", Peer(ip="10.0.0.1"), 443)


# ---------------------------------------------------------------------------------------------
# KEDA trigger metadata: every key is one the scaler reads

KEDA_V2_18 = "kedacore/keda v2.18.0 (559e738)"
SCALER_KEYS: dict[str, frozenset[str]] = {
    # The `keda:"name=..."` tags of each scaler's metadata struct at KEDA_V2_18.
    # pkg/scalers/prometheus_scaler.go
    "prometheus": frozenset(
        {"activationThreshold", "awsRegion", "customHeaders", "ignoreNullValues", "namespace"}
        | {"query", "queryParameters", "serverAddress", "threshold", "timeout", "unsafeSsl"}
    ),
    # pkg/scalers/aws_sqs_queue_scaler.go
    "aws-sqs-queue": frozenset(
        {"activationQueueLength", "awsEndpoint", "awsRegion", "queueLength", "queueURL"}
        | {"scaleOnDelayed", "scaleOnInFlight"}
    ),
    # pkg/scalers/redis_streams_scaler.go, with the connection's `address` (redis_scaler.go)
    "redis-streams": frozenset(
        {"activationLagCount", "consumerGroup", "databaseIndex", "enableTLS", "lagCount"}
        | {"pendingEntriesCount", "stream", "streamLength", "tls", "address"}
    ),
    # pkg/scalers/cron_scaler.go
    "cron": frozenset({"desiredReplicas", "end", "start", "timezone"}),
    # pkg/scalers/external_scaler.go, plus what the KEDA HTTP add-on's scaler reads from the
    # metadata it is handed (kedacore/http-add-on pkg/k8s/scaledobject.go: interceptorRoute,
    # httpScaledObject).
    "external-push": frozenset(
        {"caCert", "enableTLS", "scalerAddress", "tlsClientCert", "tlsClientKey", "unsafeSsl"}
        | {"interceptorRoute", "httpScaledObject"}
    ),
}


def test_every_trigger_key_is_one_its_scaler_reads() -> None:
    """A misspelt key is ignored by KEDA (the scaler falls back to its default), so a typo in
    `ignoreNullValues` would bring back the silent zero; keys are held to KEDA_V2_18's tags."""
    scaled_objects = [*_every_scaled_object(), _realtime_scaled_object(**ZERO)]
    seen = set()
    for so in scaled_objects:
        for trigger in so["spec"]["triggers"]:
            seen.add(trigger["type"])
            unknown = set(trigger["metadata"]) - SCALER_KEYS[trigger["type"]]
            assert not unknown, f"{trigger['type']}: {unknown} not read by {KEDA_V2_18}"
    assert seen == set(SCALER_KEYS)  # every scaler kind the components render is covered
