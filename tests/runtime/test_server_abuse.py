"""The real server process under a hostile client: SIGTERM under keep-alive load, slowloris with a
descriptor limit, a model process killed with requests queued behind its batch.

Each test counts what the issue counted (resets, failed valid requests, statuses), with timeouts
as hang guards only.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests.processes import model_processes
from tests.runtime.handlers import GATE_VALUE
from tests.runtime.serving import (
    REPO,
    Server,
    free_port,
    http_status,
    post_json,
    row_body,
    start_gated,
    start_server,
    stop_server,
    wait_until,
)

pytestmark = pytest.mark.integration

PICKY_BODY = json.dumps(
    {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1.0, 2.0]}]}
).encode()
RESETS = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, http.client.HTTPException)
"""What a client sees when a request it sent on an open connection gets no answer (RST or EOF;
http.client reports an EOF before the status line as RemoteDisconnected, an HTTPException)."""


class KeepAliveClient:
    """One keep-alive connection that posts the same request and records what came back."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.statuses: list[int] = []
        self.closes = 0
        self.resets: list[BaseException] = []

    def post(self) -> bool:
        """One request; False once the server said close or the request was lost."""
        try:
            self.connection.request("POST", "/v2/models/picky/infer", PICKY_BODY)
            response = self.connection.getresponse()
            response.read()
        except RESETS as error:
            self.resets.append(error)
            return False
        self.statuses.append(response.status)
        if (response.getheader("connection") or "").lower() == "close":
            self.closes += 1
            return False
        return True


def test_sigterm_with_keep_alive_clients_resets_no_request():
    server = start_server(
        "--model", "tests.runtime.handlers:Picky", "--max-queue-delay-ms", "0",
        "--drain-listen-s", "5",
    )  # fmt: skip
    busy = [KeepAliveClient(server.port) for _ in range(8)]
    idle = [KeepAliveClient(server.port) for _ in range(8)]
    warmed = threading.Barrier(len(busy) + 1)

    def keep_posting(client: KeepAliveClient) -> None:
        for _ in range(5):
            client.post()
        warmed.wait(60)
        while client.post():
            pass

    threads = [threading.Thread(target=keep_posting, args=(client,)) for client in busy]
    try:
        for client in idle:
            assert client.post()  # Then silent until the drain has begun.
        for thread in threads:
            thread.start()
        warmed.wait(60)
        server.process.send_signal(signal.SIGTERM)
        wait_until(
            lambda: http_status(f"{server.url}/v2/health/ready") == 503, "readiness to drop", 30
        )
        for client in idle:
            assert not client.post()
        for thread in threads:
            thread.join(60)
        assert server.process.wait(timeout=60) == 0
    finally:
        stop_server(server)
    clients = busy + idle
    assert [client.resets for client in clients] == [[] for _ in clients]
    assert [client.closes for client in clients] == [1 for _ in clients]
    # Inside the listen window every request is still served, the last one told to close.
    assert {status for client in clients for status in client.statuses} == {200}


def _start_limited(descriptors: int, *flags: str) -> Server:
    """A server whose descriptor limit is `descriptors`, as a small container would set it."""
    port = free_port()

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (descriptors, descriptors))

    process = subprocess.Popen(
        [sys.executable, "-m", "inferstack.cli", "serve", "--port", str(port), *flags],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "INFERSTACK_TORCH_THREADS": "1"},
        stderr=subprocess.DEVNULL,
        preexec_fn=limit,
    )
    server = Server(process, port)
    wait_until(
        lambda: http_status(f"{server.url}/v2/health/ready") == 200, "the server to be ready"
    )
    return server


class Slowloris:
    """`count` connections on a thread of their own, each trickling a request head a byte at a
    time and reconnecting when the server drops it: the attack holds its connections open."""

    def __init__(self, port: int, count: int) -> None:
        self.port = port
        self.count = count
        self.open = 0
        self.opened = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.stopping: asyncio.Event | None = None
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self.run(),))

    async def run(self) -> None:
        self.stopping = asyncio.Event()
        tasks = [asyncio.create_task(self.trickler()) for _ in range(self.count)]
        await self.stopping.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def trickler(self) -> None:
        head = b"POST /v2/models/picky/infer HTTP/1.1\r\nhost: x\r\n" + b"x-pad: y\r\n" * 1000
        while True:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.2)
                continue
            self.open += 1
            if self.open >= self.count:
                self.opened.set()
            try:
                for index in range(len(head)):
                    writer.write(head[index : index + 1])
                    await writer.drain()
                    if reader.at_eof():
                        break
                    await asyncio.sleep(0.5)
            except OSError:
                pass
            finally:
                self.open -= 1
                writer.close()
            await asyncio.sleep(0.2)

    def __enter__(self) -> Slowloris:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        assert self.stopping is not None
        self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(60)
        self.loop.close()


def test_300_trickling_connections_under_a_256_descriptor_limit_do_not_stop_valid_requests():
    server = _start_limited(256, "--model", "tests.runtime.handlers:Picky")
    statuses: list[int] = []
    try:
        with Slowloris(server.port, 300) as attack:
            assert attack.opened.wait(60), "the attack never held its 300 connections"
            for _ in range(20):
                request = urllib.request.Request(
                    f"{server.url}/v2/models/picky/infer", data=PICKY_BODY, method="POST"
                )
                with urllib.request.urlopen(request, timeout=30) as response:
                    statuses.append(response.status)
    finally:
        stop_server(server)
    assert statuses == [200] * 20


def test_after_a_model_process_crash_the_queued_requests_get_503_not_resets(tmp_path: Path):
    server, entered, _gate = start_gated(
        tmp_path, "--max-batch-size", "1", "--max-queue-delay-ms", "0", "--drain-listen-s", "1"
    )
    infer = f"{server.url}/v2/models/gated/infer"
    answers: dict[int, tuple[int, dict[str, str], bytes] | BaseException] = {}

    def send(key: int, values: np.ndarray) -> threading.Thread:
        def post() -> None:
            try:
                answers[key] = post_json(infer, row_body(values))
            except OSError as error:
                answers[key] = error

        thread = threading.Thread(target=post)
        thread.start()
        return thread

    def queue_depth() -> float:
        with urllib.request.urlopen(f"{server.url}/metrics") as response:
            for line in response.read().decode().splitlines():
                if line.startswith("inferstack_queue_depth{"):
                    return float(line.split()[-1])
        return -1.0

    try:
        threads = [send(0, np.full((1, 4), GATE_VALUE, np.float32))]
        with open(entered, "rb") as signal_in:  # The model process holds the first request.
            assert signal_in.read(1) == b"1"
        threads += [send(key, np.full((1, 4), key, np.float32)) for key in (1, 2, 3)]
        wait_until(lambda: queue_depth() == 3, "three requests queued behind the held one", 30)
        (child,) = model_processes(server.process.pid)
        os.kill(child, signal.SIGKILL)
        for thread in threads:
            thread.join(60)
        assert server.process.wait(timeout=60) == 1
    finally:
        stop_server(server)
    held = answers[0]
    assert isinstance(held, tuple)
    code, headers, payload = held
    # The batch in the dying process: not its input's fault, so retryable like the rest.
    assert code == 503, payload
    assert int(headers["retry-after"]) >= 1
    assert "exited" in json.loads(payload)["error"]
    assert b"Traceback" not in payload
    for key in (1, 2, 3):
        answer = answers[key]
        assert isinstance(answer, tuple), answer
        code, headers, payload = answer
        assert code == 503, payload
        assert int(headers["retry-after"]) >= 1
        assert "retry on another replica" in json.loads(payload)["error"]
