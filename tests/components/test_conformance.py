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
from inferstack.components.kubernetes.scaling import batch_scaled_object
from inferstack.components.planning.sizing import size_service
from inferstack.components.planning.spec import parse_spec
from tests.components.factories import make_profile, spec_data

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
PROMQL_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
"""Prometheus data model, "Metric names and labels": the legacy (unquoted) metric name."""


def _pubsub_scaled_object() -> dict[str, Any]:
    spec = parse_spec(spec_data(batch__queue={"kind": "pubsub", "name": "jobs-sub"}))
    options = KubernetesOptions(
        queue=QueueBinding(gcp_project="proj-1", results_uri="gs://results/p")
    )
    sizing = size_service(spec, make_profile(), now=NOW)
    return batch_scaled_object(spec, sizing, options, KubernetesBindings.from_options(options))


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
