"""Redis Streams: the consumer's books against a real redis-server; `inferstack work` end to end.

Lease expiry is simulated by rewriting an entry's idle time (XCLAIM ... IDLE), exactly what the
passage of time does to it, so no test waits for a clock.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from inferstack.contract.pods import METRICS_PATH, WORKER_HEALTH_PATH
from inferstack.runtime.models import load_model
from inferstack.runtime.queues import QueueConfigError, open_queue
from inferstack.runtime.queues.redis_streams import RedisStreamQueue
from inferstack.runtime.results import open_result_store
from tests.integration.conftest import RedisServer, free_port, unique
from tests.processes import model_processes
from tests.runtime.handlers import BREAK_RELOAD_ENV, CRASH_VALUE
from tests.v2_client import encode_request
from tests.worker.fakes import FakeMetadataServer, request_body

pytestmark = pytest.mark.integration

WORKER_TIMEOUT_S = 300
_STARTED: list[subprocess.Popen[bytes]] = []


@pytest.fixture(autouse=True)
def _no_worker_left_behind() -> Iterator[None]:
    """A failed test must not leave a worker process running."""
    yield
    while _STARTED:
        process = _STARTED.pop()
        if process.poll() is None:
            process.kill()
            process.wait()


def stream_uri(redis_server: RedisServer, stream: str, **options: str) -> str:
    query = "&".join([f"stream={stream}", *(f"{k}={v}" for k, v in options.items())])
    return f"{redis_server.url}?{query}"


def mlp_request(index: int) -> bytes:
    row = ((np.arange(512) * (index + 1)) % 17).astype(np.float32)[None] / 16
    return encode_request({"input": row}, request_id=f"req-{index}").body


def age(redis_server: RedisServer, stream: str, entry_id: str, idle_ms: int) -> None:
    """Make an entry look idle for `idle_ms`, as if its consumer had gone quiet that long."""
    client = redis_server.client()
    owner = client.xpending_range(stream, "inferstack", min=entry_id, max=entry_id, count=1)
    client.xclaim(
        stream, "inferstack", owner[0]["consumer"], 0, [entry_id], idle=idle_ms, justid=True
    )


# The consumer's books --------------------------------------------------------------------------


def test_uri_without_stream_is_refused(redis_server: RedisServer) -> None:
    with pytest.raises(QueueConfigError, match=r"add \?stream=NAME"):
        open_queue(redis_server.url)


def test_unknown_uri_option_is_refused(redis_server: RedisServer) -> None:
    with pytest.raises(QueueConfigError, match="unknown option"):
        open_queue(stream_uri(redis_server, "s", strem="typo"))


def test_receive_ack_and_backlog(redis_server: RedisServer) -> None:
    stream = unique("books")
    client = redis_server.client()
    ids = [client.xadd(stream, {"body": f"m{i}"}).decode() for i in range(5)]
    queue = open_queue(stream_uri(redis_server, stream), lease_s=30)
    assert queue.backlog() == 5
    messages = queue.receive(3, wait_s=0.1)
    assert [m.id for m in messages] == ids[:3]
    assert [m.body for m in messages] == [b"m0", b"m1", b"m2"]
    assert {m.attempt for m in messages} == {1}
    queue.ack(messages)
    assert queue.backlog() == 2  # Two never delivered; none pending.
    assert client.xpending(stream, "inferstack")["pending"] == 0


def test_release_hands_entries_to_another_consumer_at_once(redis_server: RedisServer) -> None:
    stream = unique("release")
    redis_server.client().xadd(stream, {"body": "x"})
    first = open_queue(stream_uri(redis_server, stream, consumer="a"), lease_s=600)
    second = open_queue(stream_uri(redis_server, stream, consumer="b"), lease_s=600)
    [message] = first.receive(1, wait_s=0.1)
    assert second.receive(1, wait_s=0.1) == []  # Leased to `a` for ten minutes.
    first.release([message])
    [again] = second.receive(1, wait_s=0.1)
    assert (again.id, again.attempt) == (message.id, 2)


def test_extend_resets_the_idle_time_and_keeps_the_entry(redis_server: RedisServer) -> None:
    stream = unique("extend")
    redis_server.client().xadd(stream, {"body": "x"})
    first = open_queue(stream_uri(redis_server, stream, consumer="a"), lease_s=60)
    second = open_queue(stream_uri(redis_server, stream, consumer="b"), lease_s=60)
    [message] = first.receive(1, wait_s=0.1)
    age(redis_server, stream, message.id, 59_000)
    first.extend([message])
    assert second.receive(1, wait_s=0.1) == []
    idle = redis_server.client().xpending_range(stream, "inferstack", "-", "+", 1)[0]
    assert idle["time_since_delivered"] < 59_000


def test_expired_lease_is_reclaimed_and_the_old_owner_cannot_take_it_back(
    redis_server: RedisServer,
) -> None:
    stream = unique("reclaim")
    redis_server.client().xadd(stream, {"body": "x"})
    first = open_queue(stream_uri(redis_server, stream, consumer="a"), lease_s=60)
    second = open_queue(stream_uri(redis_server, stream, consumer="b"), lease_s=60)
    [message] = first.receive(1, wait_s=0.1)
    age(redis_server, stream, message.id, 61_000)  # `a` went quiet past its lease.
    [reclaimed] = second.receive(1, wait_s=0.1)
    assert (reclaimed.id, reclaimed.attempt) == (message.id, 2)
    # `a` wakes up: its extension and release must not touch `b`'s entry.
    first.extend([message])
    first.release([message])
    owner = redis_server.client().xpending_range(stream, "inferstack", "-", "+", 1)[0]
    assert owner["consumer"] == b"b"
    assert owner["time_since_delivered"] < 60_000


def test_retry_later_makes_the_entry_claimable_after_the_delay(
    redis_server: RedisServer,
) -> None:
    stream = unique("retry")
    redis_server.client().xadd(stream, {"body": "x"})
    queue = open_queue(stream_uri(redis_server, stream), lease_s=60)
    [message] = queue.receive(1, wait_s=0.1)
    queue.retry_later(message, 10)
    idle = redis_server.client().xpending_range(stream, "inferstack", "-", "+", 1)[0]
    # Idle is set to lease - delay: claimable once ten more seconds pass.
    assert 50_000 <= idle["time_since_delivered"] < 51_000


def test_dead_letter_records_the_reason_and_acks(redis_server: RedisServer) -> None:
    stream = unique("dead")
    client = redis_server.client()
    client.xadd(stream, {"body": "poison"})
    queue = open_queue(stream_uri(redis_server, stream), lease_s=60)
    assert isinstance(queue, RedisStreamQueue)
    [message] = queue.receive(1, wait_s=0.1)
    queue.dead_letter(message, "invalid v2 request")
    [(_, fields)] = client.xrange(f"{stream}:dead")
    assert fields[b"body"] == b"poison"
    assert fields[b"message_id"] == message.id.encode()
    assert fields[b"reason"] == b"invalid v2 request"
    assert client.xpending(stream, "inferstack")["pending"] == 0


def test_entry_without_body_carries_its_problem(redis_server: RedisServer) -> None:
    stream = unique("nobody")
    redis_server.client().xadd(stream, {"payload": "x"})
    [message] = open_queue(stream_uri(redis_server, stream)).receive(1, wait_s=0.1)
    assert message.problem is not None
    assert f"XADD {stream} * body" in message.problem


# `inferstack work` end to end ------------------------------------------------------------------


def work(
    queue_uri: str,
    results: Path,
    *extra: str,
    metadata_url: str | None = None,
    model: str = "builtin://mlp",
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "inferstack.cli", "work",
        "--queue", queue_uri,
        "--model", model,
        "--results", results.as_uri(),
        "--metrics-port", "0",
        "--torch-threads", "1",
        "--poll-wait-s", "0.2",
        "--max-batch-size", "16",
        "--log-level", "debug",
        *extra,
    ]  # fmt: skip
    if metadata_url is not None:
        command += ["--aws-metadata-url", metadata_url, "--metadata-poll-s", "0.05"]
    else:
        command += ["--interruption", "off"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
    )
    _STARTED.append(process)
    return process


def wait_for_a_batch(process: subprocess.Popen[bytes]) -> None:
    """Read the worker's log until it reports a processed batch (it logs them at debug)."""
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if b" processed, " in line:
            return
    pytest.fail(b"".join(seen).decode(errors="replace"))


def finish(process: subprocess.Popen[bytes]) -> str:
    output, _ = process.communicate(timeout=WORKER_TIMEOUT_S)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
    return text


def test_work_writes_every_result_and_dead_letters_poison(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    stream = unique("e2e")
    client = redis_server.client()
    ids = [client.xadd(stream, {"body": mlp_request(i)}).decode() for i in range(64)]
    poison = [
        client.xadd(stream, {"body": b'{"inputs": []}'}).decode(),
        client.xadd(stream, {"text": b"no body field"}).decode(),
    ]
    results = tmp_path / "results"
    finish(work(stream_uri(redis_server, stream), results, "--exit-when-idle-s", "1"))

    assert sorted(p.name for p in results.iterdir()) == sorted(f"{i}.json" for i in ids)
    model = load_model("builtin://mlp", device="cpu")
    store = open_result_store(results.as_uri())
    for index, entry_id in enumerate(ids):
        document = json.loads(store.get(entry_id) or b"{}")
        assert document["message_id"] == entry_id
        assert document["id"] == f"req-{index}"
        row = ((np.arange(512) * (index + 1)) % 17).astype(np.float32)[None] / 16
        expected = model.predict_batch({"input": row})["output"]
        got = document["outputs"][0]["data"]
        np.testing.assert_allclose(got, expected.ravel(), rtol=1e-4, atol=1e-5)
    dead = client.xrange(f"{stream}:dead")
    assert [fields[b"message_id"].decode() for _, fields in dead] == poison
    assert b"'inputs' must be a non-empty list" in dead[0][1][b"reason"]
    assert b"no 'body' field" in dead[1][1][b"reason"]
    assert client.xpending(stream, "inferstack")["pending"] == 0


def test_spot_notice_drains_releases_and_another_worker_finishes(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    stream = unique("notice")
    client = redis_server.client()
    ids = [client.xadd(stream, {"body": mlp_request(i)}).decode() for i in range(1000)]
    results = tmp_path / "results"
    with FakeMetadataServer() as metadata:
        state = metadata.state("w1")
        first = work(
            stream_uri(redis_server, stream, consumer="first"),
            results,
            metadata_url=metadata.url("w1"),
        )
        # Wait for real progress (a batch acked), then announce the stop: two minutes away.
        wait_for_a_batch(first)
        state.instance_action = {"action": "terminate", "time": "2099-01-01T00:00:00Z"}
        log = finish(first)
    assert "interruption (aws-spot" in log
    done_by_first = {p.stem for p in results.iterdir()}
    assert 0 < len(done_by_first) < len(ids)
    # Nothing is left leased to the first worker: finished work was acked, the rest released.
    pending = client.xpending_range(stream, "inferstack", "-", "+", 10_000, consumername="first")
    assert all(row["time_since_delivered"] >= 60_000 for row in pending)

    second = stream_uri(redis_server, stream, consumer="second")
    finish(work(second, results, "--exit-when-idle-s", "1"))
    assert sorted(p.stem for p in results.iterdir()) == sorted(ids)
    assert client.xpending(stream, "inferstack")["pending"] == 0


def test_sigterm_drains_and_exits_cleanly(redis_server: RedisServer, tmp_path: Path) -> None:
    stream = unique("sigterm")
    client = redis_server.client()
    for i in range(800):
        client.xadd(stream, {"body": mlp_request(i)})
    results = tmp_path / "results"
    process = work(stream_uri(redis_server, stream, consumer="term"), results)
    wait_for_a_batch(process)
    process.send_signal(signal.SIGTERM)
    log = finish(process)
    assert "interruption (sigterm" in log
    pending = client.xpending_range(stream, "inferstack", "-", "+", 10_000, consumername="term")
    assert all(row["time_since_delivered"] >= 60_000 for row in pending)
    group = client.xinfo_groups(stream)[0]
    assert 800 - group["lag"] - group["pending"] == len(list(results.iterdir()))  # Acked = done.


def test_a_killed_model_process_is_restarted_and_nothing_is_lost_or_dead_lettered(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    stream = unique("model-exit")
    client = redis_server.client()
    ids = [client.xadd(stream, {"body": mlp_request(i)}).decode() for i in range(1000)]
    results = tmp_path / "results"
    first = work(
        stream_uri(redis_server, stream, consumer="crashed"), results, "--exit-when-idle-s", "1"
    )
    wait_for_a_batch(first)
    (model,) = model_processes(first.pid)
    os.kill(model, signal.SIGKILL)
    log = finish(first)
    assert "the model process died during a batch" in log
    assert "restarted the model process" in log
    # A crashed model is not the messages' fault: each of its batch ran again alone and passed.
    assert client.xrange(f"{stream}:dead") == []
    assert sorted(p.stem for p in results.iterdir()) == sorted(ids)
    assert client.xpending(stream, "inferstack")["pending"] == 0


def crasher_request(first: float) -> bytes:
    return request_body([first, 1, 2, 3])


def test_a_message_that_kills_the_model_alone_is_dead_lettered_and_its_batch_finishes(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    stream = unique("crasher")
    client = redis_server.client()
    good = [client.xadd(stream, {"body": crasher_request(i)}).decode() for i in range(40)]
    culprit = client.xadd(stream, {"body": crasher_request(CRASH_VALUE)}).decode()
    good += [client.xadd(stream, {"body": crasher_request(i)}).decode() for i in range(100, 140)]
    results = tmp_path / "results"
    log = finish(
        work(
            stream_uri(redis_server, stream, consumer="c", max_attempts="2"),
            results,
            *("--exit-when-idle-s", "2", "--retry-base-s", "0.1", "--max-batch-size", "8"),
            model="tests.runtime.handlers:Crasher",
        )
    )
    assert "restarted the model process" in log
    assert sorted(p.stem for p in results.iterdir()) == sorted(good), log
    dead = client.xrange(f"{stream}:dead")
    assert [fields[b"message_id"].decode() for _, fields in dead] == [culprit], log
    assert b"died running this message alone" in dead[0][1][b"reason"]
    assert dead[0][1][b"attempts"] == b"2"  # Crashed alone on both deliveries, then no more.
    assert client.xpending(stream, "inferstack")["pending"] == 0


def test_a_model_that_cannot_be_restarted_releases_what_the_worker_holds_and_exits_1(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    stream = unique("lost-model")
    client = redis_server.client()
    for i in range(20):
        client.xadd(stream, {"body": crasher_request(i)})
    client.xadd(stream, {"body": crasher_request(CRASH_VALUE)})
    process = work(
        stream_uri(redis_server, stream, consumer="lost"),
        tmp_path / "results",
        "--exit-when-idle-s", "2",
        model="tests.runtime.handlers:Crasher",
        env={BREAK_RELOAD_ENV: str(tmp_path / "crashed")},
    )  # fmt: skip
    output, _ = process.communicate(timeout=WORKER_TIMEOUT_S)
    assert process.returncode == 1, output.decode(errors="replace")
    assert b"the model process could not be restarted" in output
    # A lost model is not the messages' fault: none is dead-lettered, what was held is released.
    assert client.xrange(f"{stream}:dead") == []
    pending = client.xpending_range(stream, "inferstack", "-", "+", 100, consumername="lost")
    assert pending
    assert all(row["time_since_delivered"] >= 60_000 for row in pending), (pending, output)


def test_the_metrics_port_answers_health_from_the_consume_loop(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    stream = unique("health")
    redis_server.client().xadd(stream, {"body": mlp_request(0)})
    port = free_port()
    process = work(
        stream_uri(redis_server, stream, consumer="probe"),
        tmp_path / "results",
        *("--metrics-port", str(port), "--log-level", "info"),
    )
    base = f"http://127.0.0.1:{port}"
    status, body = 0, b""
    deadline = time.monotonic() + WORKER_TIMEOUT_S
    while status != 200 and time.monotonic() < deadline and process.poll() is None:
        try:  # Connection refused while the model loads (the probe's startup phase), then 200.
            with urllib.request.urlopen(base + WORKER_HEALTH_PATH, timeout=10) as reply:
                status, body = reply.status, reply.read()
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    assert status == 200, finish(process)
    health = json.loads(body)
    assert health["live"] is True
    assert health["state"] == "consuming"
    assert health["bound_s"] == 0.2 + 60  # --poll-wait-s 0.2 plus the default lease.
    with urllib.request.urlopen(base + METRICS_PATH, timeout=10) as reply:
        assert b"inferstack_worker_messages_total" in reply.read()
    process.send_signal(signal.SIGTERM)
    assert f"health on :{port}{WORKER_HEALTH_PATH}" in finish(process)
