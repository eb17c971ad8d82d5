"""Test doubles for the worker: an in-memory queue, a small model, a fake metadata server.

The in-memory queue keeps the same books a real one keeps (visible, leased, acked, released,
dead-lettered, delivery counts) without timers: a leased message becomes visible again only when
the test says so (`expire_leases`), never by the clock. The model can be gated on a
`threading.Event` so a test holds a batch on the model while it interrupts the worker.
The metadata server is a real HTTP server on loopback that answers the AWS IMDSv2 and GCE
metadata paths, per base-path prefix so several workers can each get their own notice.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from inferstack.runtime.queues import Message, QueueConsumer
from inferstack.runtime.tensors import TensorSpec

GATE_SAFETY_S = 30.0
"""Upper bound on a gated model call, so a broken test fails instead of hanging CI."""


@dataclass
class _Entry:
    id: str
    body: bytes
    deliveries: int = 0
    leased: bool = False
    problem: str | None = None


@dataclass
class MemoryQueue(QueueConsumer):
    """A queue with SQS-like books and no clock (see the module docstring)."""

    max_attempts: int = 3
    lease_s: float = 60.0
    uri: str = "memory://test"
    entries: dict[str, _Entry] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    acked: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    retried: list[tuple[str, float]] = field(default_factory=list)
    dead: list[tuple[str, str]] = field(default_factory=list)
    extended: list[str] = field(default_factory=list)
    received: threading.Event = field(default_factory=threading.Event)
    extended_event: threading.Event = field(default_factory=threading.Event)
    fail_receive: int = 0
    receive_gate: threading.Event | None = None
    """When set, `receive` announces itself on `receiving` and blocks until the gate opens."""
    receiving: threading.Event = field(default_factory=threading.Event)

    def put(self, body: bytes, *, message_id: str | None = None, problem: str | None = None) -> str:
        message_id = message_id or uuid.uuid4().hex
        self.entries[message_id] = _Entry(message_id, body, problem=problem)
        self.order.append(message_id)
        return message_id

    @property
    def visible(self) -> list[str]:
        return [i for i in self.order if i in self.entries and not self.entries[i].leased]

    def receive(self, max_messages: int, wait_s: float) -> list[Message]:
        if self.fail_receive:
            self.fail_receive -= 1
            raise ConnectionError("queue unreachable")
        if self.receive_gate is not None and self.visible:
            self.receiving.set()
            if not self.receive_gate.wait(GATE_SAFETY_S):
                raise TimeoutError("test never opened the receive gate")
        batch = []
        for message_id in self.visible[:max_messages]:
            entry = self.entries[message_id]
            entry.leased = True
            entry.deliveries += 1
            batch.append(
                Message(
                    id=entry.id,
                    body=entry.body,
                    attempt=entry.deliveries,
                    handle=(entry.id, entry.deliveries),
                    problem=entry.problem,
                )
            )
        if batch:
            self.received.set()
        return batch

    def _own(self, message: Message) -> _Entry | None:
        entry = self.entries.get(message.id)
        # A stale receipt (the message was redelivered since) no longer controls it.
        if entry is None or message.handle != (entry.id, entry.deliveries):
            return None
        return entry

    def ack(self, messages: Sequence[Message]) -> None:
        for message in messages:
            if self._own(message) is not None:
                del self.entries[message.id]
                self.acked.append(message.id)

    def extend(self, messages: Sequence[Message]) -> None:
        self.extended.extend(m.id for m in messages)
        self.extended_event.set()

    def retry_later(self, message: Message, delay_s: float) -> None:
        entry = self._own(message)
        if entry is not None:
            entry.leased = False
            self.retried.append((message.id, delay_s))

    def release(self, messages: Sequence[Message]) -> None:
        for message in messages:
            entry = self._own(message)
            if entry is not None:
                entry.leased = False
                self.released.append(message.id)

    def dead_letter(self, message: Message, reason: str) -> None:
        if self._own(message) is not None:
            del self.entries[message.id]
            self.dead.append((message.id, reason))

    def backlog(self) -> int | None:
        return len(self.visible)

    def expire_leases(self) -> None:
        """What the queue does when leases run out: every leased message is visible again."""
        for entry in self.entries.values():
            entry.leased = False


class DoublingModel:
    """input FP32 [-1, 4] -> output = 2 * input; optionally gated, optionally failing."""

    name = "double"

    def __init__(self, *, gated: bool = False, fail_on: float | None = None) -> None:
        self.inputs = [TensorSpec("input", "FP32", [-1, 4])]
        self.outputs = [TensorSpec("output", "FP32", [-1, 4])]
        self.gate = threading.Event()
        if not gated:
            self.gate.set()
        self.entered = threading.Event()
        self.fail_on = fail_on
        self.calls = 0
        self.rows_seen = 0

    def predict_batch(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls += 1
        self.entered.set()
        if not self.gate.wait(GATE_SAFETY_S):
            raise TimeoutError("test never opened the model gate")
        batch = inputs["input"]
        self.rows_seen += batch.shape[0]
        if self.fail_on is not None and bool(np.any(batch == self.fail_on)):
            raise RuntimeError(f"cannot handle {self.fail_on}")
        return {"output": batch * 2}


def request_body(values: Sequence[float], *, request_id: str | None = None) -> bytes:
    """A v2 request JSON body with one row of four FP32 values."""
    document: dict[str, Any] = {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": list(values)}]
    }
    if request_id is not None:
        document["id"] = request_id
    return json.dumps(document).encode()


# Fake cloud metadata server ------------------------------------------------------------------


@dataclass
class MetadataState:
    """What one prefix of the fake metadata server reports."""

    instance_action: dict[str, str] | None = None
    rebalance: dict[str, str] | None = None
    preempted: bool = False
    tokens: set[str] = field(default_factory=set)


class FakeMetadataServer:
    """AWS IMDSv2 and GCE metadata on loopback; `url(prefix)` is a base URL for one worker."""

    def __init__(self) -> None:
        self.states: dict[str, MetadataState] = {}
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeMetadataServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def state(self, prefix: str = "") -> MetadataState:
        with self._lock:
            return self.states.setdefault(prefix, MetadataState())

    def url(self, prefix: str = "") -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}" + (f"/{prefix}" if prefix else "")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return type("Handler", (_MetadataHandler,), {"metadata": self})


class _MetadataHandler(BaseHTTPRequestHandler):
    """Answers for `metadata` (set per server): IMDSv2 token and paths, GCE's preempted flag."""

    metadata: FakeMetadataServer

    def log_message(self, *_: object) -> None:
        pass

    def _split(self) -> tuple[MetadataState, str]:
        path = self.path.split("?", 1)[0]
        for prefix in list(self.metadata.states):
            if prefix and path.startswith(f"/{prefix}/"):
                return self.metadata.state(prefix), path[len(prefix) + 1 :]
        return self.metadata.state(""), path

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self) -> None:  # noqa: N802 - http.server's naming.
        state, path = self._split()
        self.metadata.requests.append(("PUT", path))
        if path != "/latest/api/token":
            return self._send(404)
        if not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            return self._send(400)
        token = uuid.uuid4().hex
        state.tokens.add(token)
        return self._send(200, token.encode())

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming.
        state, path = self._split()
        self.metadata.requests.append(("GET", path))
        if path.startswith("/computeMetadata/"):
            return self._gcp(state, path)
        if self.headers.get("X-aws-ec2-metadata-token") not in state.tokens:
            return self._send(401)
        if path == "/latest/meta-data/spot/instance-action":
            return self._json_or_404(state.instance_action)
        if path == "/latest/meta-data/events/recommendations/rebalance":
            return self._json_or_404(state.rebalance)
        return self._send(404)

    def _gcp(self, state: MetadataState, path: str) -> None:
        if self.headers.get("Metadata-Flavor") != "Google":
            return self._send(403)
        if path == "/computeMetadata/v1/instance/preempted":
            body = b"TRUE" if state.preempted else b"FALSE"
            return self._send(200, body, {"Metadata-Flavor": "Google"})
        return self._send(404, headers={"Metadata-Flavor": "Google"})

    def _json_or_404(self, document: dict[str, str] | None) -> None:
        if document is None:
            return self._send(404)
        return self._send(200, json.dumps(document).encode())
