"""Passwords in every URI never reach the worker's output or its dead letters.

`inferstack work` runs against a redis-server that requires a password, with the queue and the
result store both named by URIs that carry one. The store's user may read but not write, so every
result write fails and each message is dead-lettered (max_attempts 1) with the store failure as
its reason: the reason that used to quote the store's URI, password and all. Everything the
worker printed (debug level, text and JSON lines) and every field of every dead letter is grepped
for the password; the start-up line must still name the queue and the store, redacted.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from inferstack.runtime.redaction import MASK
from tests.integration.conftest import free_port, stop, unique, wait_for_port
from tests.integration.test_worker_redis import WORKER_TIMEOUT_S, mlp_request
from tests.shared_data import require

pytestmark = pytest.mark.integration

SECRET = "Pw-7f3c9e1b-never-print"
READER = "reader"
"""A Redis user that may read results but not write them: the store fails on every write."""


@pytest.fixture(scope="module")
def locked_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A redis-server of its own whose default user needs SECRET; its port."""
    binary = shutil.which("redis-server")
    require(binary is not None, "redis-server is not installed (apt-get install redis-server)")
    assert binary is not None
    directory = tmp_path_factory.mktemp("locked-redis")
    port = free_port()
    log = directory / "redis.log"
    process = subprocess.Popen(
        [
            binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
            "--save", "", "--logfile", str(log), "--requirepass", SECRET,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        log.touch()
        wait_for_port(port, process, log)
        admin = client(port)
        admin.acl_setuser(
            READER, enabled=True, passwords=[f"+{SECRET}"], keys=["*"],
            commands=["+@read", "+@connection"],
        )  # fmt: skip
        yield port
    finally:
        stop(process)


def client(port: int) -> Any:
    import redis

    return redis.Redis(host="127.0.0.1", port=port, password=SECRET)


def work(*flags: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "inferstack.cli", "work", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=WORKER_TIMEOUT_S,
        check=False,
    )


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_password_in_the_output_or_the_dead_letters(locked_redis: int, log_format: str) -> None:
    port = locked_redis
    stream = unique("secrets")
    queue = f"redis://:{SECRET}@127.0.0.1:{port}/0?stream={stream}&consumer=c"
    results = f"redis://{READER}:{SECRET}@127.0.0.1:{port}/1"
    redis = client(port)
    ids = [redis.xadd(stream, {"body": mlp_request(i)}).decode() for i in range(4)]
    ids.append(redis.xadd(stream, {"body": b"{not json"}).decode())

    done = work(
        "--queue", queue, "--results", results, "--model", "builtin://mlp",
        "--max-attempts", "1", "--exit-when-idle-s", "1", "--poll-wait-s", "0.2",
        "--metrics-port", "0", "--torch-threads", "1", "--interruption", "off",
        "--log-level", "debug", "--log-format", log_format,
    )  # fmt: skip

    output = done.stdout.decode(errors="replace")
    assert done.returncode == 0, output
    assert SECRET not in output
    # Still useful: the start-up line names the queue and the store, without the password.
    assert f"redis://:{MASK}@127.0.0.1:{port}/0?stream={stream}" in output
    assert f"redis://{READER}:{MASK}@127.0.0.1:{port}/1" in output
    dead = redis.xrange(f"{stream}:dead")
    assert sorted(fields[b"message_id"].decode() for _, fields in dead) == sorted(ids)
    for _, fields in dead:
        for name, value in fields.items():
            if name != b"body":
                assert SECRET.encode() not in value, (name, value)
    reasons = [fields[b"reason"].decode() for _, fields in dead]
    stored = [reason for reason in reasons if reason.startswith("result store")]
    assert len(stored) == 4, reasons
    assert all(f"redis://{READER}:{MASK}@127.0.0.1:{port}/1 failed" in r for r in stored)


@pytest.mark.parametrize("refused", ["queue-without-stream", "unknown-results-scheme"])
def test_a_refused_uri_is_reported_without_its_password(locked_redis: int, refused: str) -> None:
    queue = f"redis://:{SECRET}@127.0.0.1:{locked_redis}/0"
    if refused == "queue-without-stream":
        flags = ("--queue", queue)
    else:
        flags = (
            "--queue",
            f"{queue}?stream={unique('refused')}",
            "--results",
            f"amqp://u:{SECRET}@h/",
        )
    done = work(*flags, "--model", "builtin://mlp", "--metrics-port", "0")
    output = done.stdout.decode(errors="replace")
    assert done.returncode == 2, output
    assert SECRET not in output
    assert f":{MASK}@" in output
