"""The worker loop against an in-memory queue, a small model and a real result directory.

No sleeps: the worker exits when the queue stays empty (`exit_when_idle_s` with a zero poll
wait), and interruption tests hold the model on a gate while they send the notice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inferstack.cli import main
from inferstack.runtime.protocol.large_bodies import LARGE_BODY_BYTES
from inferstack.runtime.queues import Message
from inferstack.runtime.results.local import DirectoryStore
from inferstack.runtime.settings import SettingsError
from inferstack.runtime.tensors import TensorSpec
from inferstack.runtime.worker.interruption import Notice
from inferstack.runtime.worker.loop import Worker
from inferstack.runtime.worker.process import WorkerProcess, WorkerStartError
from inferstack.runtime.worker.settings import WorkerSettings, resolve_settings
from tests.worker.fakes import GATE_SAFETY_S, DoublingModel, MemoryQueue, request_body


def settings(**overrides: object) -> WorkerSettings:
    values: dict[str, object] = {
        "queue": "memory://test",
        "model": "double",
        "max_batch_size": 4,
        "max_queue_delay_ms": 0,
        "poll_wait_s": 0,
        "exit_when_idle_s": 0.05,
        "retry_base_s": 1,
        "metrics_port": 0,
    }
    values.update(overrides)
    return WorkerSettings.model_validate(values)


def v2(name: str, shape: list[int], data: list[float]) -> bytes:
    tensor = {"name": name, "datatype": "FP32", "shape": shape, "data": data}
    return json.dumps({"inputs": [tensor]}).encode()


def with_outputs(outputs: object) -> bytes:
    document = json.loads(request_body([1, 2, 3, 4]))
    return json.dumps(document | {"outputs": outputs}).encode()


def run_worker(worker: Worker) -> None:
    asyncio.run(asyncio.wait_for(worker.run(), GATE_SAFETY_S))


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """`inferstack work` configures the root logger (its job as a CLI); undo it per test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def store(tmp_path: Path) -> DirectoryStore:
    return DirectoryStore(tmp_path / "results")


def result(store: DirectoryStore, message_id: str) -> dict[str, Any]:
    raw = store.get(message_id)
    assert raw is not None, f"no result for {message_id}"
    document: dict[str, Any] = json.loads(raw)
    return document


def test_every_message_gets_its_result_then_its_ack(store: DirectoryStore) -> None:
    queue = MemoryQueue()
    ids = [queue.put(request_body([i, i + 1, i + 2, i + 3], request_id=f"r{i}")) for i in range(10)]
    worker = Worker(queue, store, DoublingModel(), settings())
    run_worker(worker)
    assert sorted(queue.acked) == sorted(ids)
    for i, message_id in enumerate(ids):
        document = result(store, message_id)
        assert document["message_id"] == message_id
        assert document["id"] == f"r{i}"
        assert document["model_name"] == "double"
        assert document["outputs"] == [
            {
                "name": "output",
                "datatype": "FP32",
                "shape": [1, 4],
                "data": [2 * (i + k) for k in range(4)],
            }
        ]
    assert worker.counts() == {
        "processed": 10,
        "duplicate": 0,
        "retried": 0,
        "released": 0,
        "dead_lettered": 0,
    }
    assert worker.metrics.in_flight._value.get() == 0


def test_results_are_not_acked_when_the_store_fails(tmp_path: Path) -> None:
    class BrokenStore(DirectoryStore):
        def put_many(self, results: Mapping[str, bytes]) -> dict[str, bool]:
            raise OSError(28, "No space left on device")

    queue = MemoryQueue(max_attempts=5)
    message_id = queue.put(request_body([1, 2, 3, 4]))
    worker = Worker(queue, BrokenStore(tmp_path / "r"), DoublingModel(), settings())
    run_worker(worker)
    # Nothing durable, so nothing acked: retried with doubling delays until the attempts
    # are spent (the in-memory queue redelivers at once), then dead-lettered with the cause.
    assert queue.acked == []
    assert queue.retried == [
        (message_id, 1.0),
        (message_id, 2.0),
        (message_id, 4.0),
        (message_id, 8.0),
    ]
    assert len(queue.dead) == 1
    assert "No space left on device (attempt 5 of 5)" in queue.dead[0][1]


def test_a_redelivered_message_with_a_result_is_acked_without_the_model(
    store: DirectoryStore,
) -> None:
    queue = MemoryQueue()
    message_id = queue.put(request_body([1, 2, 3, 4]))
    store.put_many({message_id: b'{"message_id": "earlier"}'})
    model = DoublingModel()
    worker = Worker(queue, store, model, settings())
    run_worker(worker)
    assert model.calls == 0
    assert queue.acked == [message_id]
    assert store.get(message_id) == b'{"message_id": "earlier"}'  # Write-once: not replaced.
    assert worker.counts()["duplicate"] == 1


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (v2("pixels", [1, 4], [1, 2, 3, 4]), "pixels"),
        (v2("input", [1, 3], [1, 2, 3]), "shape"),
        (v2("input", [5, 4], [0] * 20), "max_batch_size"),
        (with_outputs([{"name": ["output"]}]), "is not an output"),
        (with_outputs([{"name": {"output": 1}}]), "is not an output"),
        (b'{"inputs": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested more than 1024 levels"),
        (request_body([1, 2, 3, 4]).replace(b'"inputs"', b'"id": "\\ud800", "inputs"'), "'id'"),
        (request_body([1e39, 0, 0, 0]), "input 'input': values outside the finite FP32 range"),
        (
            request_body([1, 2, 3, 4]).replace(b"[1, 2, 3, 4]", b"[1, -1e400, 3, 4]"),
            "input 'input': values outside the finite FP32 range",
        ),
    ],
    ids=[
        "bad-json",
        "unknown-input",
        "wrong-shape",
        "larger-than-a-batch",
        "output-name-list",
        "output-name-dict",
        "nested-5000-deep",
        "id-lone-surrogate",
        "fp32-overflow",
        "beyond-a-double",
    ],
)
def test_poison_goes_to_the_dead_letter_queue_at_once(
    store: DirectoryStore, body: bytes, reason: str
) -> None:
    queue = MemoryQueue(max_attempts=5)
    good = queue.put(request_body([1, 2, 3, 4]))
    poison = queue.put(body)
    worker = Worker(queue, store, DoublingModel(), settings())
    run_worker(worker)
    assert queue.acked == [good]
    assert [message_id for message_id, _ in queue.dead] == [poison]
    assert reason in queue.dead[0][1]
    assert queue.retried == []  # Never retried: it could not succeed.
    assert store.get(poison) is None


def test_a_decoder_that_raises_anything_dead_letters_that_message_alone(
    store: DirectoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inferstack.runtime.worker import loop as module

    real = module.decode_checked

    def flaky_decoder(body: bytes, model: Any, header_length: int | None) -> Any:
        if b"boom" in body:
            raise KeyError("a decoder bug")
        return real(body, model, header_length)

    monkeypatch.setattr(module, "decode_checked", flaky_decoder)
    queue = MemoryQueue(max_attempts=5)
    good = [queue.put(request_body([i, 0, 0, 0])) for i in range(6)]
    poison = queue.put(b'{"boom": true}')
    good += [queue.put(request_body([i, 1, 1, 1])) for i in range(6)]
    worker = Worker(queue, store, DoublingModel(), settings(max_batch_size=4))
    run_worker(worker)
    assert sorted(queue.acked) == sorted(good)  # Its batch-mates too, on the first delivery.
    assert queue.dead == [(poison, "undecodable message: KeyError: 'a decoder bug'")]
    assert queue.released == []
    assert queue.retried == []
    assert worker.counts()["processed"] == 12
    assert store.existing(good) == set(good)


def test_empty_outputs_ask_for_every_output_as_over_http(store: DirectoryStore) -> None:
    queue = MemoryQueue()
    message = queue.put(with_outputs([]))
    run_worker(Worker(queue, store, DoublingModel(), settings()))
    assert queue.acked == [message]
    document = json.loads(store.get(message) or b"{}")
    assert [output["name"] for output in document["outputs"]] == ["output"]


def test_a_result_that_cannot_be_encoded_fails_that_message_not_its_batch(
    store: DirectoryStore,
) -> None:
    class ForgetfulModel(DoublingModel):
        """Declares `output2` but never returns it: a result that asks for it cannot encode."""

        def predict_batch(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return {"output": super().predict_batch(inputs)["output"]}

    queue = MemoryQueue(max_attempts=1)
    good = queue.put(request_body([1, 2, 3, 4]))
    bad = queue.put(with_outputs([{"name": "output"}, {"name": "output2"}]))
    model = ForgetfulModel()
    model.outputs.append(TensorSpec("output2", "FP32", [-1, 4]))
    run_worker(Worker(queue, store, model, settings()))
    assert queue.acked == [good]
    assert [message_id for message_id, _ in queue.dead] == [bad]
    assert "cannot encode the result: KeyError" in queue.dead[0][1]


def test_a_delivery_without_a_request_is_dead_lettered_with_its_problem(
    store: DirectoryStore,
) -> None:
    queue = MemoryQueue()
    poison = queue.put(b"", problem="stream entry has no 'body' field")
    run_worker(Worker(queue, store, DoublingModel(), settings()))
    assert queue.dead == [(poison, "stream entry has no 'body' field")]


def test_model_failures_retry_with_backoff_then_dead_letter(store: DirectoryStore) -> None:
    queue = MemoryQueue(max_attempts=3)
    good = queue.put(request_body([1, 2, 3, 4]))
    bad = queue.put(request_body([7, 7, 7, 7]))
    model = DoublingModel(fail_on=7.0)
    # max_batch_size 1: the failing request never shares a batch with the good one.
    worker = Worker(queue, store, model, settings(max_batch_size=1, retry_base_s=0.5))
    run_worker(worker)
    # The in-memory queue redelivers a retried message on the next receive, so all three
    # attempts happen within one run; the delays asked for double each time.
    assert queue.retried == [(bad, 0.5), (bad, 1.0)]
    assert len(queue.dead) == 1
    dead_id, reason = queue.dead[0]
    assert dead_id == bad
    assert "cannot handle 7.0" in reason
    assert "attempt 3 of 3" in reason
    assert queue.acked == [good]
    assert worker.counts()["retried"] == 2
    assert worker.counts()["dead_lettered"] == 1


def test_backoff_doubles_and_is_capped(store: DirectoryStore) -> None:
    worker = Worker(MemoryQueue(), store, DoublingModel(), settings(retry_base_s=2, retry_max_s=10))
    assert [worker.backoff_s(attempt) for attempt in (1, 2, 3, 4, 5)] == [2, 4, 8, 10, 10]


class SteppingClock:
    """A clock that moves `step_s` forward every time it is read."""

    def __init__(self, step_s: float) -> None:
        self.now = 0.0
        self.step_s = step_s

    def __call__(self) -> float:
        self.now += self.step_s
        return self.now


def test_the_idle_exit_is_timed_by_the_injected_clock(store: DirectoryStore) -> None:
    clock = SteppingClock(step_s=60.0)
    worker = Worker(
        MemoryQueue(), store, DoublingModel(), settings(exit_when_idle_s=3600), clock=clock
    )
    run_worker(worker)  # An hour of the worker's clock, a few empty receives of real time.
    assert 3600 <= clock.now <= 3600 + 3 * 60


def test_a_message_delivered_twice_in_one_pull_is_worked_once_under_its_last_receipt(
    store: DirectoryStore,
) -> None:
    class RedeliveringQueue(MemoryQueue):
        """Hands out each message, lets its lease lapse, and hands it out again in one pull."""

        def receive(self, max_messages: int, wait_s: float) -> list[Message]:
            first = super().receive(max_messages, wait_s)
            if not first:
                return first
            self.expire_leases()
            return first + super().receive(max_messages, wait_s)

    queue = RedeliveringQueue()
    message_id = queue.put(request_body([1, 2, 3, 4]))
    model = DoublingModel()
    worker = Worker(queue, store, model, settings())
    run_worker(worker)
    assert queue.acked == [message_id]  # Under the second receipt: the first one is stale.
    assert model.rows_seen == 1
    assert worker.counts()["processed"] == 1
    assert worker.counts()["duplicate"] == 0


def test_receive_errors_are_retried_not_fatal(store: DirectoryStore) -> None:
    queue = MemoryQueue(fail_receive=2)
    message_id = queue.put(request_body([1, 2, 3, 4]))
    run_worker(Worker(queue, store, DoublingModel(), settings(retry_base_s=0.01)))
    assert queue.acked == [message_id]


# Interruption ---------------------------------------------------------------------------------


def interrupt_when_model_entered(
    worker: Worker, model: DoublingModel, notice_in_s: float
) -> threading.Thread:
    """Once a batch is on the model: send the notice, then let the model go."""

    def go() -> None:
        assert model.entered.wait(GATE_SAFETY_S)
        worker.interrupt(Notice("aws-spot", time.monotonic() + notice_in_s, "test"))
        model.gate.set()

    thread = threading.Thread(target=go)
    thread.start()
    return thread


def test_a_notice_with_no_time_left_releases_everything_held(store: DirectoryStore) -> None:
    queue = MemoryQueue()
    ids = [queue.put(request_body([i, 0, 0, 0])) for i in range(12)]
    model = DoublingModel(gated=True)
    worker = Worker(queue, store, model, settings(prefetch_batches=3, drain_margin_s=5))
    thread = interrupt_when_model_entered(worker, model, notice_in_s=1)  # 1 s < 5 s margin.
    run_worker(worker)
    thread.join()
    # Nothing finished, nothing acked: all 12 pulled messages handed straight back.
    assert queue.acked == []
    assert sorted(queue.released) == sorted(ids)
    assert queue.visible == ids
    assert worker.counts()["released"] == 12
    assert store.existing(ids) == set()


def test_a_notice_with_time_left_finishes_the_held_batches(store: DirectoryStore) -> None:
    queue = MemoryQueue()
    ids = [queue.put(request_body([i, 0, 0, 0])) for i in range(12)]
    model = DoublingModel(gated=True)
    worker = Worker(queue, store, model, settings(prefetch_batches=2, drain_margin_s=1))
    thread = interrupt_when_model_entered(worker, model, notice_in_s=GATE_SAFETY_S)
    run_worker(worker)
    thread.join()
    # Two batches of four were held when the notice came: finished and acked; the third
    # batch was never pulled, and nothing was released.
    assert sorted(queue.acked) == sorted(ids[:8])
    assert queue.released == []
    assert queue.visible == ids[8:]
    assert len(store.existing(ids)) == 8


def test_a_notice_before_run_drains_at_once(store: DirectoryStore) -> None:
    queue = MemoryQueue()
    queue.put(request_body([1, 2, 3, 4]))
    worker = Worker(queue, store, DoublingModel(), settings(exit_when_idle_s=None))
    worker.interrupt(Notice("sigterm", time.monotonic() + 60, "before start"))
    run_worker(worker)
    assert queue.acked == []
    assert len(queue.visible) == 1


def test_leases_of_held_messages_are_extended(store: DirectoryStore) -> None:
    queue = MemoryQueue()
    message_id = queue.put(request_body([1, 2, 3, 4]))
    model = DoublingModel(gated=True)
    worker = Worker(queue, store, model, settings(lease_s=0.03))

    def go() -> None:
        assert model.entered.wait(GATE_SAFETY_S)
        # Held on the model: the heartbeat (every lease_s / 3) must extend its lease.
        queue.extended_event.wait(GATE_SAFETY_S)
        model.gate.set()

    thread = threading.Thread(target=go)
    thread.start()
    run_worker(worker)
    thread.join()
    assert message_id in queue.extended
    assert queue.acked == [message_id]


# Result store --------------------------------------------------------------------------------


def test_directory_store_is_write_once_and_leaves_no_temporaries(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    assert store.put_many({"a": b"1", "b": b"2"}) == {"a": True, "b": True}
    assert store.put_many({"a": b"3"}) == {"a": False}
    assert store.get("a") == b"1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json"]


def padded(size: int) -> bytes:
    """A valid one-row request of `size` bytes: the padding is its `id`."""
    body = request_body([1, 2, 3, 4], request_id="")
    return body.replace(b'"id": ""', b'"id": "' + b"x" * (size - len(body)) + b'"')


def test_a_message_larger_than_the_signature_allows_is_dead_lettered_before_decoding(
    store: DirectoryStore,
) -> None:
    # max_batch_size 4 rows of 4 FP32: 4 * 4 * 40 bytes of JSON + 64 KiB of envelope.
    limit = 4 * 4 * 40 + 64 * 1024
    queue = MemoryQueue(max_attempts=5)
    at_limit = queue.put(padded(limit))
    over = queue.put(padded(limit + 1))
    model = DoublingModel()
    worker = Worker(queue, store, model, settings())
    assert worker.max_message_bytes == limit
    run_worker(worker)
    assert queue.acked == [at_limit]
    ((dead, reason),) = queue.dead
    assert dead == over
    assert reason.startswith(f"the message has {limit + 1} bytes, more than the {limit} that")
    assert model.rows_seen == 1


def test_max_message_bytes_overrides_the_derived_limit(store: DirectoryStore) -> None:
    queue = MemoryQueue(max_attempts=5)
    small = queue.put(request_body([1, 2, 3, 4]))
    large = queue.put(padded(4096))
    worker = Worker(queue, store, DoublingModel(), settings(max_message_bytes=2048))
    run_worker(worker)
    assert queue.acked == [small]
    assert [message_id for message_id, _ in queue.dead] == [large]


def test_a_large_message_is_decoded_in_the_helper_process(store: DirectoryStore) -> None:
    queue = MemoryQueue(max_attempts=5)
    large = queue.put(padded(LARGE_BODY_BYTES + 1))
    broken = queue.put(b"[" * (LARGE_BODY_BYTES + 1))
    worker = Worker(queue, store, DoublingModel(), settings(max_message_bytes=4 * LARGE_BODY_BYTES))
    decoded_in: list[str] = []
    decode = worker._decoder.decode

    async def spy(*args: Any) -> Any:
        decoded_in.append("helper")
        return await decode(*args)

    worker._decoder.decode = spy  # type: ignore[method-assign]
    run_worker(worker)
    assert decoded_in == ["helper", "helper"]
    assert queue.acked == [large]
    ((dead, reason),) = queue.dead
    assert dead == broken
    assert reason.startswith("invalid v2 request: the request body is not valid JSON")


def test_directory_store_keeps_odd_ids_inside_the_directory(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "r")
    store.put_many({"../../etc/passwd": b"x", ".hidden": b"y", "id\n": b"z"})
    names = sorted(p.name for p in (tmp_path / "r").iterdir())
    # A trailing newline is not a plain id ("$" matched before it): it is encoded too.
    assert names == ["%2E%2E%2F%2E%2E%2Fetc%2Fpasswd.json", "%2Ehidden.json", "id%0A.json"]
    assert store.existing(["../../etc/passwd", ".hidden", "id\n", "id", "other"]) == {
        "../../etc/passwd",
        ".hidden",
        "id\n",
    }


# Settings and the command line ------------------------------------------------------------------


def test_settings_errors_name_their_source(tmp_path: Path) -> None:
    config = tmp_path / "worker.yaml"
    config.write_text("max_batch_size: 0\nbatchsize: 8\n")
    with pytest.raises(SettingsError) as raised:
        resolve_settings(
            {"queue": "redis://x/0?stream=s", "model": "builtin://mlp"},
            config_file=config,
            environ={"INFERSTACK_LEASE_S": "-1"},
        )
    message = str(raised.value)
    assert f"config file {config}: max_batch_size" in message
    assert "batchsize: unknown setting" in message
    assert "environment variable INFERSTACK_LEASE_S" in message


def test_flags_override_environment_and_config(tmp_path: Path) -> None:
    config = tmp_path / "worker.yaml"
    config.write_text("max_batch_size: 8\nlease_s: 30\n")
    resolved = resolve_settings(
        {"queue": "redis://x/0?stream=s", "model": "builtin://mlp", "max_batch_size": 16},
        config_file=config,
        environ={"INFERSTACK_LEASE_S": "45"},
    )
    assert (resolved.max_batch_size, resolved.lease_s) == (16, 45.0)


def test_missing_queue_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["work", "--model", "builtin://mlp"]) == 2
    assert "--queue or INFERSTACK_QUEUE: required" in capsys.readouterr().err


def test_unknown_queue_scheme_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["work", "--queue", "kafka://x", "--model", "builtin://mlp", "--metrics-port", "0"])
    assert code == 2
    error = capsys.readouterr().err
    assert "kafka://x" in error
    assert "redis://HOST:PORT/DB?stream=NAME" in error


def test_a_worker_process_that_cannot_open_its_queue_raises_and_holds_nothing() -> None:
    process = WorkerProcess(settings(queue="kafka://x"))
    with pytest.raises(WorkerStartError, match="kafka://x"):
        process.open()
    with pytest.raises(RuntimeError, match="call open"):
        _ = process.worker
    process.close()  # Nothing was opened: nothing to close, and no error.
    assert process.exit_code == 0


def test_prefetch_bounds_the_batcher_queue() -> None:
    config = settings(max_batch_size=8, prefetch_batches=3).batcher_config()
    assert config.max_queue_size == 24
    assert math.isclose(config.max_queue_delay_s, 0.0)


def test_result_rows_match_a_direct_model_call(store: DirectoryStore) -> None:
    queue = MemoryQueue()
    rows = np.arange(8, dtype=np.float32).reshape(2, 4)
    body = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "datatype": "FP32",
                    "shape": [2, 4],
                    "data": rows.ravel().tolist(),
                }
            ]
        }
    ).encode()
    message_id = queue.put(body)
    run_worker(Worker(queue, store, DoublingModel(), settings()))
    output = result(store, message_id)["outputs"][0]
    assert output["shape"] == [2, 4]
    assert output["data"] == (rows * 2).ravel().tolist()


def test_directory_store_without_o_tmpfile_uses_named_temporaries(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    store._anonymous = False  # As on a filesystem without O_TMPFILE.
    assert store.put_many({"a": b"1"}) == {"a": True}
    assert store.put_many({"a": b"2"}) == {"a": False}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
    assert store.get("a") == b"1"


def test_metrics_are_exported_under_the_shared_names(store: DirectoryStore) -> None:
    from prometheus_client import generate_latest

    from inferstack.contract import metrics as names
    from inferstack.runtime.worker.metrics import WorkerMetrics

    queue = MemoryQueue()
    queue.put(request_body([1, 2, 3, 4]))
    queue.put(b"poison")
    metrics = WorkerMetrics("double")
    fast_backlog = settings(backlog_interval_s=0.01)
    worker = Worker(queue, store, DoublingModel(), fast_backlog, metrics=metrics)
    run_worker(worker)
    text = generate_latest(metrics.registry).decode()
    assert f'{names.WORKER_MESSAGES}_total{{model="double",outcome="processed"}} 1.0' in text
    assert f'{names.WORKER_MESSAGES}_total{{model="double",outcome="dead_lettered"}} 1.0' in text
    assert f'{names.WORKER_IN_FLIGHT}{{model="double"}} 0.0' in text
    assert f'{names.WORKER_BACKLOG}{{model="double"}}' in text
    for outcome in names.WORKER_OUTCOMES:  # Every outcome exported from the start.
        assert f'outcome="{outcome}"' in text


@pytest.mark.parametrize(("notice_in_s", "worked"), [(GATE_SAFETY_S, True), (0.5, False)])
def test_messages_received_as_the_notice_arrives_are_worked_if_they_fit(
    store: DirectoryStore, notice_in_s: float, worked: bool
) -> None:
    queue = MemoryQueue(receive_gate=threading.Event())
    ids = [queue.put(request_body([i, 0, 0, 0])) for i in range(3)]
    worker = Worker(queue, store, DoublingModel(), settings(drain_margin_s=1))

    def go() -> None:
        assert queue.receiving.wait(GATE_SAFETY_S)
        worker.interrupt(Notice("gcp-preempted", time.monotonic() + notice_in_s, "test"))
        assert queue.receive_gate is not None
        queue.receive_gate.set()

    thread = threading.Thread(target=go)
    thread.start()
    run_worker(worker)
    thread.join()
    if worked:  # Plenty of time: finishing them beats handing them back (an attempt each).
        assert sorted(queue.acked) == sorted(ids)
        assert queue.released == []
    else:  # Past the margin already: handed back untouched.
        assert queue.acked == []
        assert sorted(queue.released) == sorted(ids)
