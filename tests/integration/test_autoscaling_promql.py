"""The realtime ScaledObject's PromQL, evaluated by a real Prometheus over scraped runtime metrics.

A Prometheus server (Debian `prometheus`, or `INFERSTACK_TEST_PROMETHEUS`) scrapes three
expositions of the runtime's own metrics (`RuntimeMetrics`, the class the server exports): two
pods of the service and one pod of another service in the same namespace. Each target carries
the labels that pod scraping attaches (`namespace`, and the pod labels sanitised by `labelmap` or
`podTargetLabels`). The query is taken verbatim from the ScaledObject that the component
registers under the Pulumi mock monitor, sent to Prometheus' HTTP query API, and must return the
service's total demand: what KEDA then divides by the replica count for the `AverageValue` target.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferstack.offline.capture import capture_program
from inferstack.runtime.metrics import CONTENT_TYPE, RuntimeMetrics
from tests.components.factories import PROFILE, spec_data
from tests.integration.conftest import free_port, stop, wait_for_port
from tests.servers import BY_FIXTURE
from tests.shared_data import require

pytestmark = pytest.mark.integration

PROGRAM = Path(__file__).resolve().parents[1] / "components" / "programs" / "k8s_services"
NAMESPACE = "inference"
QUERY_DEADLINE_S = 60.0


@dataclass
class Pod:
    """One scrape target: a runtime metrics registry and the labels scraping would attach."""

    metrics: RuntimeMetrics
    labels: dict[str, str]
    server: ThreadingHTTPServer | None = None

    @property
    def address(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.server_address[1]}"


def _serve(pod: Pod) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server API)
            body = pod.metrics.exposition()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

    pod.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=pod.server.serve_forever, daemon=True).start()


def _pod(service: str, tier: str, pod: str, queue_depth: int, in_flight: int) -> Pod:
    metrics = RuntimeMetrics(model="mlp")
    metrics.queue_depth.set(queue_depth)
    metrics.in_flight.set(in_flight)
    labels = {
        "namespace": NAMESPACE,
        "pod": pod,
        "inferstack_io_service": service,
        "inferstack_io_tier": tier,
    }
    return Pod(metrics, labels)


@pytest.fixture(scope="module")
def pods() -> Iterator[list[Pod]]:
    found = [
        _pod("ranker", "realtime", "ranker-realtime-a", queue_depth=7, in_flight=19),
        _pod("ranker", "realtime", "ranker-realtime-b", queue_depth=5, in_flight=11),
        _pod("rankerx", "realtime", "rankerx-realtime-a", queue_depth=3, in_flight=40),
        _pod("rankerx", "realtime", "rankerx-realtime-b", queue_depth=1, in_flight=2),
        # Same namespace, another service: its demand must not count.
        _pod("other", "realtime", "other-realtime-a", queue_depth=100, in_flight=300),
    ]
    for pod in found:
        _serve(pod)
    yield found
    for pod in found:
        assert pod.server is not None
        pod.server.shutdown()


@pytest.fixture(scope="module")
def prometheus(pods: list[Pod], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = os.environ.get("INFERSTACK_TEST_PROMETHEUS") or shutil.which("prometheus")
    require(binary is not None, BY_FIXTURE["prometheus"].reason())
    assert binary is not None
    folder = tmp_path_factory.mktemp("prometheus")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "kubernetes-pods",
                "static_configs": [
                    {"targets": [pod.address], "labels": pod.labels} for pod in pods
                ],
            }
        ],
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = folder / "prometheus.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, process, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


@pytest.fixture(scope="module")
def demand_queries() -> dict[str, str]:
    """The Prometheus trigger query of each rendered realtime ScaledObject, by metric."""
    scenarios = [
        {
            "spec": spec_data(name=name, batch=None, realtime__scaling__metric=metric),
            "options": {"namespace": NAMESPACE},
            "profile": PROFILE,
        }
        for name, metric in (("ranker", "queue_depth"), ("rankerx", "in_flight"))
    ]
    config = {
        "k8s-services:scenarios": json.dumps(scenarios),
        "k8s-services:now": "2026-01-15T12:00:00+00:00",
    }
    capture = capture_program(PROGRAM, stack="test", config=config)
    queries = {}
    for resource in capture.resources:
        if resource.type != "kubernetes:keda.sh/v1alpha1:ScaledObject":
            continue
        (trigger,) = [t for t in resource.inputs["spec"]["triggers"] if t["type"] == "prometheus"]
        queries[resource.inputs["metadata"]["name"]] = trigger["metadata"]["query"]
    return queries


def _query(prometheus: str, promql: str) -> list[dict[str, Any]]:
    url = f"{prometheus}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    with urllib.request.urlopen(url, timeout=10) as response:
        document = json.load(response)
    assert document["status"] == "success", document
    result: list[dict[str, Any]] = document["data"]["result"]
    return result


def _evaluate_once_scraped(prometheus: str, promql: str, targets: int) -> float:
    """The query's single value, once every target has been scraped (bounded wait)."""
    deadline = time.monotonic() + QUERY_DEADLINE_S
    while time.monotonic() < deadline:
        if len(_query(prometheus, "up == 1")) == targets:
            result = _query(prometheus, promql)
            assert len(result) == 1, result  # KEDA needs a single-element vector
            return float(result[0]["value"][1])
        time.sleep(0.5)
    pytest.fail(f"Prometheus did not scrape {targets} targets within {QUERY_DEADLINE_S} s")


def test_queue_depth_query_returns_the_services_total(
    prometheus: str, pods: list[Pod], demand_queries: dict[str, str]
) -> None:
    query = demand_queries["ranker-realtime"]
    assert query.startswith("sum(inferstack_queue_depth{")
    assert _evaluate_once_scraped(prometheus, query, len(pods)) == 7 + 5


def test_in_flight_query_returns_the_services_total(
    prometheus: str, pods: list[Pod], demand_queries: dict[str, str]
) -> None:
    query = demand_queries["rankerx-realtime"]
    assert query.startswith("sum(inferstack_inflight_requests{")
    assert _evaluate_once_scraped(prometheus, query, len(pods)) == 40 + 2
