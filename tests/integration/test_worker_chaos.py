"""Chaos: 10,000 messages through a pool of `inferstack work` processes that keep being interrupted.

A driver keeps a pool of workers on one queue (a Redis stream, or an SQS queue). Every few
seconds it picks a consuming worker and either announces a spot interruption on that worker's
own fake metadata prefix and sends it SIGTERM (the worker must drain and exit 0), or SIGKILLs
it (it must lose nothing: its leases expire and other workers take the messages over). Each
victim is replaced at once. At the end:
- every good message has exactly one result, and that result is right (checked against the
  model on every message);
- the dead-letter queue holds exactly the poison messages injected on purpose, once each;
- nothing is left queued or leased;
- repeated work (a message delivered again after its result was written, or written by one
  worker after another already had) happened only around a SIGKILL or an interruption, bounded
  by what those workers held.

`INFERSTACK_CHAOS_MESSAGES` scales the Redis Streams run (default 10,000);
`INFERSTACK_CHAOS_SQS_MESSAGES` the smaller SQS run (default 500; moto's server is slower than
Redis and does the SQS bookkeeping in Python). The counts are printed.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inferstack.runtime.models import load_model
from inferstack.runtime.queues.sqs import MESSAGE_ID_ATTRIBUTE
from tests.integration.conftest import AwsServer, RedisServer, unique
from tests.worker.fakes import FakeMetadataServer

pytestmark = pytest.mark.integration

MESSAGES = int(os.environ.get("INFERSTACK_CHAOS_MESSAGES", "10000"))
SQS_MESSAGES = int(os.environ.get("INFERSTACK_CHAOS_SQS_MESSAGES", "500"))
POISON_EVERY = 100  # 1 % poison: 100 of 10,000.
POOL = 3
CHAOS_INTERVAL_S = 2.0
MAX_BATCH = 32
PREFETCH = 2
LEASE_S = 10
RUN_LIMIT_S = 600
SEED = 20240611


def row(index: int) -> np.ndarray:
    return (((np.arange(512) * (index % 97 + 1)) % 17).astype(np.float32) / 16)[None]


def body(index: int) -> bytes:
    # Values are multiples of 1/16: short and exact in JSON.
    data = row(index).ravel().tolist()
    tensor = {"name": "input", "datatype": "FP32", "shape": [1, 512], "data": data}
    return json.dumps({"id": f"req-{index}", "inputs": [tensor]}, separators=(",", ":")).encode()


POISON_BODIES = (
    b"{truncated",
    b'{"inputs":[{"name":"input","datatype":"FP32","shape":[1,3],"data":[1,2,3]}]}',
)


class Backend:
    """One queue under chaos: fill it, name it to a worker, read its dead letters and leftovers."""

    name: str
    env: dict[str, str] = {}
    atomic_dead_letter = True
    """Whether moving a message to the DLQ is one atomic step (else a worker killed between
    the send and the delete leaves a second copy when the message is redelivered)."""

    def populate(self, count: int) -> tuple[dict[str, int], set[str]]:
        """Send `count` messages, 1 % poison: (good id -> request index, poison ids)."""
        raise NotImplementedError

    def queue_uri(self, prefix: str) -> str:
        raise NotImplementedError

    def dead_ids(self) -> list[str]:
        """The original message id of every dead-lettered entry, repeats included."""
        raise NotImplementedError

    def leftover(self) -> int:
        """Messages still queued or leased."""
        raise NotImplementedError


class RedisBackend(Backend):
    name = "redis-streams"

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.client = server.client()
        self.stream = unique("chaos")

    def populate(self, count: int) -> tuple[dict[str, int], set[str]]:
        pipe = self.client.pipeline(transaction=False)
        for index in range(count):
            if is_poison(index):
                kind = index // POISON_EVERY % (len(POISON_BODIES) + 1)
                # The third kind: an entry without a `body` field at all.
                fields = {"payload": b"x"} if kind == 2 else {"body": POISON_BODIES[kind]}
                pipe.xadd(self.stream, fields)
            else:
                pipe.xadd(self.stream, {"body": body(index)})
        return split(pipe.execute())

    def queue_uri(self, prefix: str) -> str:
        return f"{self.server.url}?stream={self.stream}&consumer={prefix}"

    def dead_ids(self) -> list[str]:
        entries = self.client.xrange(f"{self.stream}:dead")
        return [fields[b"message_id"].decode() for _, fields in entries]

    def leftover(self) -> int:
        group = self.client.xinfo_groups(self.stream)[0]
        return int(group["pending"]) + int(group["lag"])


class SqsBackend(Backend):
    name = "sqs"
    atomic_dead_letter = False  # SendMessage to the DLQ, then DeleteMessage.

    def __init__(self, server: AwsServer) -> None:
        self.sqs = server.client("sqs")
        self.env = server.environment
        name = unique("chaos")
        self.dlq_url = self.sqs.create_queue(QueueName=f"{name}-dead")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.dlq_url, AttributeNames=["QueueArn"])
        # SQS counts every receive, a drain's hand-back included, against maxReceiveCount and
        # moves the message on the next receive past it. This run interrupts a worker every
        # two seconds, orders of magnitude above any spot market, so a good message near the
        # head of the queue can be handed back many times; 20 keeps the policy's meaning
        # (poison ends there) without reading the test's own violence as poison.
        policy = {"deadLetterTargetArn": arn["Attributes"]["QueueArn"], "maxReceiveCount": "20"}
        self.url = self.sqs.create_queue(
            QueueName=name, Attributes={"RedrivePolicy": json.dumps(policy)}
        )["QueueUrl"]

    def populate(self, count: int) -> tuple[dict[str, int], set[str]]:
        ids: list[str] = []
        for start in range(0, count, 10):
            indexes = range(start, min(start + 10, count))
            entries = [
                {
                    "Id": str(index),
                    "MessageBody": (
                        POISON_BODIES[index // POISON_EVERY % len(POISON_BODIES)]
                        if is_poison(index)
                        else body(index)
                    ).decode(),
                }
                for index in indexes
            ]
            reply = self.sqs.send_message_batch(QueueUrl=self.url, Entries=entries)
            by_entry = {item["Id"]: item["MessageId"] for item in reply["Successful"]}
            ids.extend(by_entry[str(index)] for index in indexes)
        return split(ids)

    def queue_uri(self, prefix: str) -> str:
        return f"sqs://{self.url}"

    def dead_ids(self) -> list[str]:
        found: list[str] = []
        while True:
            reply = self.sqs.receive_message(
                QueueUrl=self.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
            )
            if not reply.get("Messages"):
                return found
            for message in reply["Messages"]:
                attribute = message.get("MessageAttributes", {}).get(MESSAGE_ID_ATTRIBUTE)
                # SQS's own redrive (a poison message whose workers kept dying) keeps the id.
                found.append(attribute["StringValue"] if attribute else message["MessageId"])

    def leftover(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(value) for value in attributes.values())


def is_poison(index: int) -> bool:
    return index % POISON_EVERY == POISON_EVERY - 1


def split(ids: list[Any]) -> tuple[dict[str, int], set[str]]:
    good: dict[str, int] = {}
    poison: set[str] = set()
    for index, raw in enumerate(ids):
        message_id = raw.decode() if isinstance(raw, bytes) else str(raw)
        if is_poison(index):
            poison.add(message_id)
        else:
            good[message_id] = index
    return good, poison


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    prefix: str
    log: Path
    fate: str = "running"
    ready: bool = False


@dataclass
class Chaos:
    workers: list[Worker] = field(default_factory=list)
    kills: int = 0
    notices: int = 0
    started: int = 0


def start_worker(
    backend: Backend, results: Path, metadata: FakeMetadataServer, logs: Path, number: int
) -> Worker:
    prefix = f"w{number}"
    metadata.state(prefix)
    log = logs / f"{prefix}.jsonl"
    command = [
        sys.executable, "-m", "inferstack.cli", "work",
        "--queue", backend.queue_uri(prefix),
        "--model", "builtin://mlp",
        "--results", results.as_uri(),
        "--metrics-port", "0",
        "--torch-threads", "1",
        "--max-batch-size", str(MAX_BATCH),
        "--prefetch-batches", str(PREFETCH),
        "--lease-s", str(LEASE_S),
        "--poll-wait-s", "0.2",
        "--retry-base-s", "0.2",
        "--aws-metadata-url", metadata.url(prefix),
        "--metadata-poll-s", "0.1",
        "--drain-margin-s", "1",
        "--sigterm-grace-s", "10",
        "--log-format", "json",
        "--log-level", "debug",
    ]  # fmt: skip
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env={**os.environ, **backend.env}
        )
    return Worker(process, prefix, log)


def consuming(worker: Worker) -> bool:
    if not worker.ready:
        worker.ready = b'"event": "batch"' in worker.log.read_bytes()
    return worker.ready


def read_events(logs: Path) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for log in sorted(logs.glob("*.jsonl")):
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                events.append(json.loads(line))
    return events


def test_chaos_redis_streams(redis_server: RedisServer, tmp_path: Path) -> None:
    run_chaos(RedisBackend(redis_server), MESSAGES, tmp_path)


def test_chaos_sqs(aws_server: AwsServer, tmp_path: Path) -> None:
    run_chaos(SqsBackend(aws_server), SQS_MESSAGES, tmp_path)


def run_chaos(backend: Backend, messages: int, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    good, poison = backend.populate(messages)

    results = tmp_path / "results"
    logs = tmp_path / "logs"
    logs.mkdir()
    chaos = Chaos()
    began = time.monotonic()
    try:
        with FakeMetadataServer() as metadata:
            drive(backend, chaos, metadata, rng, len(good), results, logs, began)
    finally:
        # Whatever failed above, leave no worker behind to spin against a stopped server.
        for worker in chaos.workers:
            if worker.process.poll() is None:
                worker.process.kill()
                worker.process.wait()
    elapsed = time.monotonic() - began

    # Every gracefully stopped worker drained and exited cleanly.
    unclean = [
        (w.prefix, w.fate, w.process.returncode, w.log.read_text()[-2000:])
        for w in chaos.workers
        if w.fate != "sigkill" and w.process.returncode != 0
    ]
    assert unclean == []

    names = check_results(results, good)
    dead_repeats = check_dead_letters(backend, poison, chaos)

    # Nothing left behind in the queue.
    assert backend.leftover() == 0

    duplicates, released = check_repeated_work(logs, good, chaos)
    interrupted = chaos.kills + chaos.notices
    print(  # noqa: T201 - the counts are the test's report (README quotes them).
        f"\nchaos ({backend.name}): {messages} messages "
        f"({len(good)} good, {len(poison)} poison) in "
        f"{elapsed:.0f} s; workers started {chaos.started}, SIGKILLed {chaos.kills}, "
        f"notice+SIGTERM {chaos.notices}; results {len(names)} (one per good message); "
        f"dead-lettered {len(poison)} (exactly the injected poison; repeated DLQ copies "
        f"{dead_repeats}); redelivered after their "
        f"result was written {duplicates} (bound {interrupted * MAX_BATCH * PREFETCH}); "
        f"released on drain {released}; lost 0"
    )
    assert chaos.kills >= 1
    assert chaos.notices >= 1


def drive(
    backend: Backend,
    chaos: Chaos,
    metadata: FakeMetadataServer,
    rng: random.Random,
    good: int,
    results: Path,
    logs: Path,
    began: float,
) -> None:
    """Run the pool, interrupting a consuming worker every CHAOS_INTERVAL_S and replacing it,
    until every good message has its result; then stop the pool with SIGTERM."""

    def spawn() -> None:
        chaos.workers.append(start_worker(backend, results, metadata, logs, chaos.started))
        chaos.started += 1

    for _ in range(POOL):
        spawn()

    def written() -> int:
        return len(os.listdir(results)) if results.exists() else 0

    # Chaos until 90 % of the good messages have results; then let the pool finish.
    while not (written() == good and backend.leftover() == 0):
        assert time.monotonic() - began < RUN_LIMIT_S, "chaos run did not finish in time"
        threading.Event().wait(CHAOS_INTERVAL_S)
        if written() >= 0.9 * good:
            continue
        # Victims are workers that are consuming: interrupting one that is still importing
        # torch proves nothing about draining.
        live = [w for w in chaos.workers if w.fate == "running" and consuming(w)]
        if not live:
            continue
        interrupt(rng.choice(live), chaos, metadata, rng)
        spawn()

    for worker in chaos.workers:
        if worker.fate == "running":
            worker.process.send_signal(signal.SIGTERM)
            worker.fate = "final-sigterm"
    for worker in chaos.workers:
        worker.process.wait(timeout=120)


def interrupt(
    victim: Worker, chaos: Chaos, metadata: FakeMetadataServer, rng: random.Random
) -> None:
    """SIGKILL the victim, or announce a spot interruption on its metadata prefix and SIGTERM it."""
    if rng.random() < 0.5:
        victim.process.kill()
        victim.fate = "sigkill"
        chaos.kills += 1
        return
    # A roomy notice (held batches finish) or a tight one (they are released).
    stop_at = datetime.now(UTC) + timedelta(seconds=rng.choice((1, 8)))
    metadata.state(victim.prefix).instance_action = {
        "action": "terminate",
        "time": stop_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    victim.process.send_signal(signal.SIGTERM)
    victim.fate = "notice+sigterm"
    chaos.notices += 1


def check_results(results: Path, good: dict[str, int]) -> list[str]:
    """Exactly one result per good message, none for poison, no debris; each one right."""
    names = sorted(os.listdir(results))
    assert names == sorted(f"{entry_id}.json" for entry_id in good)

    # Each result is the model's answer to that message.
    model = load_model("builtin://mlp", device="cpu")
    ids = list(good)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        expected = model.predict_batch({"input": np.concatenate([row(good[i]) for i in chunk])})
        for offset, entry_id in enumerate(chunk):
            document = json.loads((results / f"{entry_id}.json").read_bytes())
            assert document["message_id"] == entry_id
            assert document["id"] == f"req-{good[entry_id]}"
            np.testing.assert_allclose(
                document["outputs"][0]["data"],
                expected["output"][offset],
                rtol=1e-4,
                atol=1e-5,
            )
    return names


def check_dead_letters(backend: Backend, poison: set[str], chaos: Chaos) -> int:
    """The dead-letter queue holds exactly the injected poison, once each where the move is
    atomic; elsewhere a repeat needs an interruption between the send and the delete. Returns
    the repeats."""
    dead_ids = backend.dead_ids()
    assert set(dead_ids) == poison
    dead_repeats = len(dead_ids) - len(poison)
    if backend.atomic_dead_letter:
        assert dead_repeats == 0
    else:
        assert dead_repeats <= chaos.kills + chaos.notices
    return dead_repeats


def check_repeated_work(logs: Path, good: dict[str, int], chaos: Chaos) -> tuple[int, int]:
    """Repeated work only where at-least-once allows it. Returns the duplicates and releases."""
    events = read_events(logs)
    batches = [e for e in events if e.get("event") == "batch"]
    written = Counter(i for e in batches for i in e["processed"])
    duplicates = Counter(i for e in batches for i in e["duplicate"])
    released = sum(len(e["released"]) for e in events if e.get("event") == "released")
    # Workers log a batch between writing and acking it: a worker SIGKILLed before the line
    # acked nothing, so the redelivery logs the message as a duplicate. Either way it shows up.
    assert set(written) | set(duplicates) == set(good)
    assert max(written.values()) == 1  # Write-once: never two results for one message.
    interrupted = chaos.kills + chaos.notices
    held_per_worker = MAX_BATCH * PREFETCH
    assert sum(duplicates.values()) <= interrupted * held_per_worker
    retried = sum(len(e["retried"]) for e in events if e.get("event") == "failures")
    assert retried == 0  # Nothing transient failed: poison is dead-lettered without retries.
    return sum(duplicates.values()), released
