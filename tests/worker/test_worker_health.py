"""The worker's health reflects its consume loop, not just its process.

The loop's clock is injected (`ManualClock`): the tests move time past the bound while the loop
is held inside a receive, and see the health turn stale, then live again once it beats. The HTTP
side is the real server on loopback.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from inferstack.contract.pods import METRICS_PATH, WORKER_HEALTH_PATH
from inferstack.runtime.results.local import DirectoryStore
from inferstack.runtime.worker.health import Health, WorkerHttpServer
from inferstack.runtime.worker.loop import Worker
from inferstack.runtime.worker.metrics import WorkerMetrics
from inferstack.runtime.worker.settings import WorkerSettings
from tests.worker.fakes import GATE_SAFETY_S, DoublingModel, MemoryQueue, request_body


class ManualClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def settings(**overrides: object) -> WorkerSettings:
    values: dict[str, object] = {
        "queue": "memory://test",
        "model": "double",
        "max_batch_size": 4,
        "max_queue_delay_ms": 0,
        "poll_wait_s": 2,
        "lease_s": 30,
        "metrics_port": 0,
    }
    values.update(overrides)
    return WorkerSettings.model_validate(values)


@pytest.fixture
def store(tmp_path: Path) -> DirectoryStore:
    return DirectoryStore(tmp_path / "results")


def run_in_thread(worker: Worker) -> threading.Thread:
    thread = threading.Thread(
        target=lambda: asyncio.run(asyncio.wait_for(worker.run(), GATE_SAFETY_S)), daemon=True
    )
    thread.start()
    return thread


def test_the_bound_is_poll_wait_plus_lease(store: DirectoryStore) -> None:
    worker = Worker(MemoryQueue(), store, DoublingModel(), settings(poll_wait_s=20, lease_s=60))
    assert worker.health_bound_s == 80


def test_health_is_starting_consuming_stale_then_stopped(store: DirectoryStore) -> None:
    clock = ManualClock()
    queue = MemoryQueue(receive_gate=threading.Event())
    message_id = queue.put(request_body([1, 2, 3, 4]))
    worker = Worker(queue, store, DoublingModel(), settings(), clock=clock)
    before = worker.health()
    assert (before.live, before.state, before.beat_age_s) == (False, "starting", None)

    thread = run_in_thread(worker)
    assert queue.receiving.wait(GATE_SAFETY_S)  # The loop is inside a receive, held there.
    clock.now += worker.health_bound_s  # Just within the bound: still alive.
    held = worker.health()
    assert (held.live, held.state) == (True, "consuming")
    clock.now += 0.5  # Past it: a receive that never returns is a dead loop.
    stuck = worker.health()
    assert (stuck.live, stuck.state) == (False, "stale")
    assert stuck.beat_age_s == pytest.approx(worker.health_bound_s + 0.5)

    assert queue.receive_gate is not None
    queue.receive_gate.set()  # The receive returns: the loop beats again.
    assert queue.received.wait(GATE_SAFETY_S)
    for _ in range(1000):
        if message_id in queue.acked:
            break
        threading.Event().wait(0.01)
    assert worker.health().live
    worker.stop()
    thread.join(GATE_SAFETY_S)
    after = worker.health()
    assert (after.live, after.state) == (False, "stopped")


def test_a_long_batch_keeps_the_loop_alive_through_the_lease_heartbeat(
    store: DirectoryStore,
) -> None:
    clock = ManualClock()
    queue = MemoryQueue()
    queue.put(request_body([1, 2, 3, 4]))
    model = DoublingModel(gated=True)
    # prefetch 1: while the batch is on the model the pull loop waits for a slot, not beating.
    worker = Worker(queue, store, model, settings(lease_s=0.03, prefetch_batches=1), clock=clock)
    thread = run_in_thread(worker)
    assert model.entered.wait(GATE_SAFETY_S)
    clock.now += worker.health_bound_s + 5  # Longer than the bound since the pull loop beat.
    queue.extended_event.clear()
    assert queue.extended_event.wait(GATE_SAFETY_S)  # The lease heartbeat ran (and beat).
    assert worker.health().live
    model.gate.set()
    worker.stop()
    thread.join(GATE_SAFETY_S)


def test_draining_counts_as_alive_until_the_held_work_is_settled(store: DirectoryStore) -> None:
    queue = MemoryQueue()
    queue.put(request_body([1, 2, 3, 4]))
    model = DoublingModel(gated=True)
    worker = Worker(queue, store, model, settings())
    thread = run_in_thread(worker)
    assert model.entered.wait(GATE_SAFETY_S)
    worker.stop()
    for _ in range(1000):  # stop() lands on the loop's thread.
        if worker.health().state != "consuming":
            break
        threading.Event().wait(0.01)
    draining = worker.health()
    assert (draining.live, draining.state, draining.held) == (True, "draining", 1)
    model.gate.set()
    thread.join(GATE_SAFETY_S)
    assert worker.health().state == "stopped"


# The HTTP side ---------------------------------------------------------------------------------


@pytest.fixture
def served() -> Iterator[tuple[WorkerHttpServer, list[Health]]]:
    answers = [Health(True, "consuming", 0.5, 62.0, 3)]
    registry = CollectorRegistry()
    WorkerMetrics("double", registry)
    server = WorkerHttpServer(0, registry, lambda: answers[-1], host="127.0.0.1")
    server.start()
    yield server, answers
    server.close()


def get(server: WorkerHttpServer, path: str) -> tuple[int, str, bytes]:
    url = f"http://127.0.0.1:{server.port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=GATE_SAFETY_S) as reply:
            return reply.status, reply.headers["Content-Type"], reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def test_the_health_path_answers_200_while_live_and_503_otherwise(
    served: tuple[WorkerHttpServer, list[Health]],
) -> None:
    server, answers = served
    status, content_type, body = get(server, WORKER_HEALTH_PATH)
    assert (status, content_type) == (200, "application/json")
    assert json.loads(body) == {
        "live": True,
        "state": "consuming",
        "beat_age_s": 0.5,
        "bound_s": 62.0,
        "held": 3,
    }
    answers.append(Health(False, "stale", 90.0, 62.0, 0))
    status, _, body = get(server, WORKER_HEALTH_PATH)
    assert status == 503
    assert json.loads(body)["state"] == "stale"


def test_the_same_port_serves_the_metrics_and_names_its_paths_otherwise(
    served: tuple[WorkerHttpServer, list[Health]],
) -> None:
    server, _ = served
    status, content_type, body = get(server, METRICS_PATH)
    assert status == 200
    assert content_type.startswith("text/plain")
    assert b"inferstack_worker_messages_total" in body
    status, _, body = get(server, "/")
    assert status == 404
    assert WORKER_HEALTH_PATH.encode() in body
