"""Poison messages on real queues: each one is dead-lettered once, alone, and its batch goes on.

Good requests and undecodable ones (each kind that used to escape the decoder as a TypeError or a
RecursionError, plus bad JSON, a lone surrogate, a broken header length or binary body) are mixed
so that every pulled batch holds some of each. The worker runs in this process against Redis
Streams (redis-server) and SQS (moto in server mode), with a small model, until the queue is idle.
Before the fix, the first poison in a batch released the whole batch over and over: no message
in it was ever processed or dead-lettered.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from inferstack.runtime.metrics import RuntimeMetrics
from inferstack.runtime.model_process import ProcessModel
from inferstack.runtime.models import open_model
from inferstack.runtime.queues import open_queue
from inferstack.runtime.queues.sqs import (
    HEADER_LENGTH_ATTRIBUTE,
    MESSAGE_ID_ATTRIBUTE,
    REASON_ATTRIBUTE,
)
from inferstack.runtime.results import open_result_store
from inferstack.runtime.worker.loop import Worker
from inferstack.runtime.worker.settings import WorkerSettings
from tests.integration.conftest import AwsServer, RedisServer, free_port, unique
from tests.integration.test_worker_sqs import drain, make_queue
from tests.runtime import embedding_model
from tests.worker.fakes import GATE_SAFETY_S, DoublingModel, request_body

pytestmark = pytest.mark.integration

GOOD = 60
STORE_DOWN_GUARD_S = 60.0
"""Hang guard of the store-outage run: it used to release and redeliver forever."""


def with_extra(extra: str) -> bytes:
    """A valid one-row request with `extra` spliced in as further top-level JSON members."""
    return request_body([1, 2, 3, 4]).replace(b'{"inputs"', ("{" + extra + ', "inputs"').encode())


POISON_BODIES = {
    "output-name-list": with_extra('"outputs": [{"name": ["output"]}]'),
    "output-name-dict": with_extra('"outputs": [{"name": {"output": true}}]'),
    "nested-2000": b'{"inputs": ' + b"[" * 2000 + b"]" * 2000 + b"}",
    "nested-100000": b'{"inputs": [{"name": "input", "data": '
    + b"[" * 100_000
    + b"]" * 100_000
    + b"}]}",
    "id-lone-surrogate": with_extra('"id": "\\ud800"'),
    "not-json": b"{not json",
    "wrong-shape": request_body([1, 2, 3, 4]).replace(b"[1, 4]", b"[1, 3]"),
}


def worker_settings(queue: str) -> WorkerSettings:
    return WorkerSettings(
        queue=queue,
        model="double",
        max_batch_size=8,
        max_queue_delay_ms=0,
        poll_wait_s=0,
        exit_when_idle_s=0.5,
        retry_base_s=0.1,
        metrics_port=0,
        # The 200 KB poison bodies must reach the decoder, past the size limit derived from
        # this small model (66 KB): the decoder's own refusals are what is tested.
        max_message_bytes=1 << 20,
    )


def run(worker: Worker) -> None:
    asyncio.run(asyncio.wait_for(worker.run(), GATE_SAFETY_S * 4))


def test_redis_poison_is_dead_lettered_once_and_every_good_message_processed(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    stream = unique("poison")
    client = redis_server.client()
    good: list[str] = []
    poison: dict[str, str] = {}
    kinds = list(POISON_BODIES.items())
    for index in range(GOOD):
        good.append(client.xadd(stream, {"body": request_body([index, 0, 0, 0])}).decode())
        if index % 6 == 0 and kinds:  # A poison among every few good ones: in most batches.
            kind, body = kinds.pop()
            poison[client.xadd(stream, {"body": body}).decode()] = kind
    # Deliveries that carry no request at all, or a header length that is not a byte count.
    poison[client.xadd(stream, {"payload": b"x"}).decode()] = "no-body-field"
    fields = {"body": b"{}", "header_length": "\u00b2".encode()}
    poison[client.xadd(stream, fields).decode()] = "header-length-superscript"

    queue = open_queue(f"{redis_server.url}?stream={stream}&max_attempts=3", lease_s=30)
    store = open_result_store((tmp_path / "results").as_uri())
    worker = Worker(queue, store, DoublingModel(), worker_settings(queue.uri))
    run(worker)

    assert store.existing(good) == set(good)
    assert worker.counts()["processed"] == GOOD
    dead = client.xrange(f"{stream}:dead")
    dead_ids = Counter(entry[b"message_id"].decode() for _, entry in dead)
    assert dead_ids == Counter(poison.keys()), (
        "each poison dead-lettered exactly once, nothing else"
    )
    assert worker.counts()["dead_lettered"] == len(poison)
    assert worker.counts()["retried"] == 0
    assert worker.counts()["released"] == 0
    reasons = {entry[b"message_id"].decode(): entry[b"reason"].decode() for _, entry in dead}
    assert "nested more than 1024 levels" in reasons[_id(poison, "nested-100000")]
    assert "is not an output" in reasons[_id(poison, "output-name-list")]
    assert client.xpending(stream, "inferstack")["pending"] == 0


def _id(poison: dict[str, str], kind: str) -> str:
    return next(message_id for message_id, known in poison.items() if known == kind)


def test_sqs_poison_is_dead_lettered_once_and_every_good_message_processed(
    aws_env: AwsServer, tmp_path: Path
) -> None:
    url, dlq_url = make_queue(aws_env, max_receive=3)
    sqs = aws_env.client("sqs")
    good: list[str] = []
    poison: dict[str, str] = {}
    kinds = list(POISON_BODIES.items())
    for index in range(GOOD):
        body = request_body([index, 0, 0, 0]).decode()
        good.append(sqs.send_message(QueueUrl=url, MessageBody=body)["MessageId"])
        if index % 6 == 0 and kinds:
            kind, poison_body = kinds.pop()
            sent = sqs.send_message(QueueUrl=url, MessageBody=poison_body.decode())
            poison[sent["MessageId"]] = kind
    # A binary-extension header length that is no byte count, and a body that is not base64:
    # both used to raise inside receive and hand back every message received with them.
    for kind, value, body in [
        ("header-length-fraction", "1.5", base64.b64encode(b"{}").decode()),
        ("body-not-base64", "2", "{} is not base64!"),
    ]:
        attributes = {HEADER_LENGTH_ATTRIBUTE: {"DataType": "Number", "StringValue": value}}
        sent = sqs.send_message(QueueUrl=url, MessageBody=body, MessageAttributes=attributes)
        poison[sent["MessageId"]] = kind

    settings = worker_settings(f"sqs://{url}")
    store = open_result_store((tmp_path / "results").as_uri())
    worker = Worker(open_queue(settings.queue), store, DoublingModel(), settings)
    run(worker)

    assert store.existing(good) == set(good)
    assert worker.counts()["processed"] == GOOD
    dead = drain(aws_env, dlq_url)
    dead_ids = Counter(m["MessageAttributes"][MESSAGE_ID_ATTRIBUTE]["StringValue"] for m in dead)
    assert dead_ids == Counter(poison.keys()), (
        "each poison dead-lettered exactly once, nothing else"
    )
    assert worker.counts()["dead_lettered"] == len(poison)
    assert worker.counts()["retried"] == 0
    reasons = {
        m["MessageAttributes"][MESSAGE_ID_ATTRIBUTE]["StringValue"]: m["MessageAttributes"][
            REASON_ATTRIBUTE
        ]["StringValue"]
        for m in dead
    }
    assert "must be a byte count" in reasons[_id(poison, "header-length-fraction")]
    assert "not valid base64" in reasons[_id(poison, "body-not-base64")]
    assert drain(aws_env, url) == []


# Poison that kills: a message whose earlier deliveries never finished ----------------------------


class RecordingModel(DoublingModel):
    """`DoublingModel` that remembers the first value of every row it ran."""

    def __init__(self) -> None:
        super().__init__()
        self.firsts: list[float] = []

    def predict_batch(self, inputs: dict[str, Any]) -> dict[str, Any]:
        self.firsts.extend(float(value) for value in inputs["input"][:, 0])
        return super().predict_batch(inputs)


CRASHER = 99.0
"""The first value of the message whose earlier deliveries all died with their worker."""


def test_redis_a_message_delivered_past_max_attempts_is_dead_lettered_before_work(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    stream = unique("overdelivered")
    client = redis_server.client()
    queue = open_queue(f"{redis_server.url}?stream={stream}&max_attempts=3", lease_s=30)
    crasher = client.xadd(stream, {"body": request_body([CRASHER, 0, 0, 0])}).decode()
    last_try = client.xadd(stream, {"body": request_body([7, 0, 0, 0])}).decode()
    # Delivered to workers that died holding them: crasher 3 times, last_try twice. The
    # worker's reclaim is one more delivery: 4, past max_attempts 3; and 3, the last attempt.
    client.xreadgroup("inferstack", "dead-worker", {stream: ">"}, count=2)
    for ids in ([crasher, last_try], [crasher]):
        client.xclaim(stream, "inferstack", "dead-worker", 0, ids, idle=10**9)
    good = [client.xadd(stream, {"body": request_body([i, 0, 0, 0])}).decode() for i in range(6)]
    pending = {
        row["message_id"].decode(): row["times_delivered"]
        for row in client.xpending_range(stream, "inferstack", "-", "+", 10)
    }
    assert pending == {crasher: 3, last_try: 2}

    model = RecordingModel()
    store = open_result_store((tmp_path / "results").as_uri())
    worker = Worker(queue, store, model, worker_settings(queue.uri))
    run(worker)

    assert CRASHER not in model.firsts
    assert 7.0 in model.firsts
    assert store.existing([crasher, last_try]) == {last_try}
    dead = client.xrange(f"{stream}:dead")
    assert [entry[b"message_id"].decode() for _, entry in dead] == [crasher]
    reason = dead[0][1][b"reason"].decode()
    assert reason.startswith("delivered 4 times, past max_attempts (3)"), reason
    assert worker.counts()["processed"] == len(good) + 1
    assert client.xpending(stream, "inferstack")["pending"] == 0


def test_sqs_a_message_received_past_max_attempts_is_dead_lettered_before_work(
    aws_env: AwsServer, tmp_path: Path
) -> None:
    url, dlq_url = make_queue(aws_env, max_receive=10)
    sqs = aws_env.client("sqs")
    crasher = sqs.send_message(QueueUrl=url, MessageBody=request_body([CRASHER, 0, 0, 0]).decode())
    for _ in range(2):  # Two receives by workers that died before settling it.
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=0)
        (message,) = received["Messages"]
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    good = [
        sqs.send_message(QueueUrl=url, MessageBody=request_body([i, 0, 0, 0]).decode())["MessageId"]
        for i in range(5)
    ]

    settings = worker_settings(f"sqs://{url}")
    model = RecordingModel()
    store = open_result_store((tmp_path / "results").as_uri())
    worker = Worker(open_queue(settings.queue, max_attempts=2), store, model, settings)
    run(worker)

    assert CRASHER not in model.firsts
    assert store.existing(good) == set(good)
    dead = drain(aws_env, dlq_url)
    ids = [m["MessageAttributes"][MESSAGE_ID_ATTRIBUTE]["StringValue"] for m in dead]
    assert ids == [crasher["MessageId"]]
    reason = dead[0]["MessageAttributes"][REASON_ATTRIBUTE]["StringValue"]
    assert reason.startswith("delivered 3 times, past max_attempts (2)"), reason


# The result store is down ------------------------------------------------------------------------


def test_redis_a_store_outage_backs_off_doubling_then_dead_letters_without_tracebacks(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    stream = unique("store-down")
    client = redis_server.client()
    ids = [client.xadd(stream, {"body": request_body([i, 0, 0, 0])}).decode() for i in range(6)]
    poison = client.xadd(stream, {"body": b"{not json"}).decode()
    queue = open_queue(f"{redis_server.url}?stream={stream}&max_attempts=3", lease_s=30)
    down = f"redis://127.0.0.1:{free_port()}/0"  # Nothing listens there: every call fails.
    store = open_result_store(down)
    model = RecordingModel()
    worker = Worker(queue, store, model, worker_settings(queue.uri))
    with caplog.at_level(logging.INFO, logger="inferstack.worker"):
        asyncio.run(asyncio.wait_for(worker.run(), STORE_DOWN_GUARD_S))

    assert model.firsts == []  # Nothing to run the model for while no result can be written.
    dead = {fields[b"message_id"].decode(): fields for _, fields in client.xrange(f"{stream}:dead")}
    assert sorted(dead) == sorted([*ids, poison])
    assert dead[poison][b"reason"].startswith(b"invalid v2 request")
    for message_id in ids:
        reason = dead[message_id][b"reason"].decode()
        assert reason.startswith(f"result store {down} failed: ConnectionError"), reason
        assert reason.endswith("(attempt 3 of 3)"), reason
        assert dead[message_id][b"attempts"] == b"3"
    assert worker.counts()["retried"] == 2 * len(ids)
    assert worker.counts()["released"] == 0
    # Doubling from retry_base_s (0.1 s): each message waited 0.1 s, then 0.2 s.
    delays: dict[str, list[str]] = {}
    for record in caplog.records:
        if record.getMessage().startswith("message ") and " retrying in " in record.getMessage():
            message_id = str(record.args[0]) if isinstance(record.args, tuple) else ""
            delays.setdefault(message_id, []).append(record.getMessage().split(" retrying in ")[1])
    assert {key: [d.split(" s:")[0] for d in value] for key, value in delays.items()} == {
        message_id: ["0.1", "0.2"] for message_id in ids
    }
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert all(record.exc_info is None for record in caplog.records)
    assert client.xpending(stream, "inferstack")["pending"] == 0


# A message the model raises on: it alone is retried and dead-lettered -----------------------


def test_redis_a_message_the_model_rejects_fails_alone_and_costs_one_line_per_attempt(
    redis_server: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One out-of-range token id among 10 messages, through a TorchScript embedding model in
    its own process: it used to fail all 10 five times (0 results) with 50 tracebacks logged."""
    stream = unique("rejected")
    client = redis_server.client()
    ids = [
        client.xadd(
            stream,
            {"body": embedding_model.request(embedding_model.tokens(row), f"row{row}")},
        ).decode()
        for row in range(9)
    ]
    bad_row = [1, 2, embedding_model.OUT_OF_RANGE, 3]
    poison = client.xadd(stream, {"body": embedding_model.request(bad_row, "bad")}).decode()
    ids.insert(4, poison)  # Order does not matter to the test; all 10 fit one pulled batch.

    path = embedding_model.build(tmp_path / "embedder.pt")
    model = open_model(
        str(path), name="embedder", device="cpu", threads=1, warm_up_sizes=(1,), model_process=True
    ).model
    assert isinstance(model, ProcessModel)
    queue = open_queue(f"{redis_server.url}?stream={stream}&max_attempts=3", lease_s=30)
    store = open_result_store((tmp_path / "results").as_uri())
    settings = WorkerSettings(
        queue=queue.uri,
        model=str(path),
        max_batch_size=16,
        max_queue_delay_ms=20,
        poll_wait_s=0,
        exit_when_idle_s=1.0,
        retry_base_s=0.1,
        metrics_port=0,
    )
    batches = RuntimeMetrics("embedder")
    worker = Worker(
        queue, store, model, settings, runtime_metrics=batches, revive_model=model.restart_dead
    )
    try:
        with caplog.at_level(logging.DEBUG, logger="inferstack"):
            run(worker)
    finally:
        model.close()

    good = [message_id for message_id in ids if message_id != poison]
    assert store.existing(ids) == set(good)
    assert worker.counts()["processed"] == 9
    # The poison shared its first batch with the others (a batch of more than 8 rows ran).
    exposition = batches.exposition().decode()
    over_8 = _sample(exposition, "inferstack_batch_size_count") - _sample(
        exposition, 'inferstack_batch_size_bucket{le="8.0"'
    )
    assert over_8 >= 1, exposition
    dead = client.xrange(f"{stream}:dead")
    assert [entry[b"message_id"].decode() for _, entry in dead] == [poison]
    reason = dead[0][1][b"reason"].decode()
    assert "rejected this request's input 'tokens' (its row): RuntimeError: index out of range" in (
        reason
    ), reason
    assert reason.endswith("(attempt 3 of 3)"), reason
    for leak in ("\n", "Traceback", ".py", str(tmp_path)):
        assert leak not in reason, reason
    assert worker.counts()["retried"] == 2
    # One line per attempt, about this message alone; no traceback anywhere.
    about_it = [r for r in caplog.records if poison in r.getMessage() and r.levelno >= logging.INFO]
    assert 1 <= len(about_it) <= 5, [r.getMessage() for r in about_it]
    assert len(about_it) == 3, [r.getMessage() for r in about_it]
    assert all("\n" not in r.getMessage() for r in caplog.records)
    assert all(r.exc_info is None for r in caplog.records)
    assert not any("Traceback" in r.getMessage() for r in caplog.records)


def _sample(exposition: str, prefix: str) -> float:
    """The value of the first exposition line that starts with `prefix`."""
    return next(
        float(line.split()[-1]) for line in exposition.splitlines() if line.startswith(prefix)
    )
