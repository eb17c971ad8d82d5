"""The HTTP/1.1 layer (`inferstack.runtime.server.http`) observed on the wire.

Each test starts an `HttpServer` on port 0 in front of a real `InferenceApp`, whose model is a
real `DynamicBatcher` over `GatedModel` (y = 2x, optionally held on a gate), and talks to it
with raw bytes over loopback TCP. Every test runs on asyncio's own loop and on uvloop, the loop
the server runs on in production: their transports differ (write_eof, pause_reading, buffers).

Nothing here sleeps to synchronise: a gated model reports when a batch entered it, and a
condition of the server is awaited with zero-time yields. Timeouts are hang guards only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pytest
import uvloop

from inferstack.runtime.batcher import BatcherConfig, DynamicBatcher
from inferstack.runtime.metrics import RuntimeMetrics
from inferstack.runtime.models import LoadedModel
from inferstack.runtime.protocol import EncodedBody, RequestedOutput, encode_response
from inferstack.runtime.protocol.large_bodies import (
    LARGE_BODY_BYTES,
    LargeBodyDecoder,
    json_bytes,
)
from inferstack.runtime.server import routes
from inferstack.runtime.server.http import HttpLimits, HttpServer
from inferstack.runtime.server.routes import InferenceApp, ServedModel
from inferstack.runtime.tensors import TensorSpec
from tests.runtime.fakes import GatedModel, rows
from tests.v2_client import decode_response, encode_request

MODEL = "doubler"
HANG_GUARD_S = 10.0
"""Upper bound on one scenario: a broken server fails the test instead of hanging CI."""
LIVE_BODY = b'{"live":true}'
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


class DoublerModel(LoadedModel):
    """`GatedModel` behind the served-model interface: input x, output y = 2x, two columns."""

    def __init__(self, gated: GatedModel) -> None:
        self.name = MODEL
        self.uri = "tests.runtime.fakes:GatedModel"
        self.inputs = [TensorSpec("x", "FP32", [-1, 2])]
        self.outputs = [TensorSpec("y", "FP32", [-1, 2])]
        self._gated = gated

    def predict_batch(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._gated.predict_batch(inputs)


@dataclass
class Harness:
    """One server, its app and model, and the client connections a scenario opened."""

    server: HttpServer
    app: InferenceApp
    model: GatedModel
    batcher: DynamicBatcher
    metrics: RuntimeMetrics
    port: int
    """Read once at start: the server forgets it when it stops listening."""
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writers.append(writer)
        return reader, writer


Scenario = Callable[[Harness], Awaitable[None]]


async def _serve(scenario: Scenario, limits: HttpLimits, gate_open: bool, queue: int) -> None:
    model = GatedModel(open_gate=gate_open)
    metrics = RuntimeMetrics(MODEL)
    # No queue delay: each request is dispatched the moment the model is free.
    batcher = DynamicBatcher(
        model.predict_batch,
        BatcherConfig(max_batch_size=8, max_queue_delay_s=0.0, max_queue_size=queue),
        name=MODEL,
        metrics=metrics,
    )
    await batcher.start()
    app = InferenceApp(MODEL, metrics)
    app.served = ServedModel(DoublerModel(model), batcher, metrics)
    server = HttpServer(app, limits)
    await server.start("127.0.0.1", 0)
    harness = Harness(server, app, model, batcher, metrics, server.port)
    try:
        await scenario(harness)
    finally:
        model.gate.set()  # A failed scenario must not leave the model thread blocked.
        for writer in harness.writers:
            writer.close()
        await server.close(grace_s=0)
        await batcher.close()
        app.decoder.close()


Runner = Callable[..., None]


@pytest.fixture(params=sorted(LOOPS))
def run(request: pytest.FixtureRequest) -> Runner:
    """Run a scenario against a fresh server on the parametrised event loop."""
    factory = LOOPS[request.param]

    def runner(
        scenario: Scenario,
        *,
        limits: HttpLimits | None = None,
        gate_open: bool = True,
        queue: int = 1024,
    ) -> None:
        coroutine: Coroutine[Any, Any, None] = _serve(
            scenario, limits or HttpLimits(), gate_open, queue
        )
        with asyncio.Runner(loop_factory=factory) as loop:
            loop.run(asyncio.wait_for(coroutine, HANG_GUARD_S))

    return runner


# Wire helpers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """One HTTP response as read off the socket."""

    status: int
    head: bytes
    """The status line and headers, up to and including the blank line."""
    headers: dict[str, str]
    body: bytes

    @property
    def error(self) -> str:
        document = orjson.loads(self.body)
        assert set(document) == {"error"}, document
        return str(document["error"])


async def read_reply(reader: asyncio.StreamReader, *, head_only: bool = False) -> Reply:
    """Read exactly one response: the head, then `content-length` bytes (none after a HEAD)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
    version, status, _reason = status_line.split(" ", 2)
    assert version == "HTTP/1.1", status_line
    headers: dict[str, str] = {}
    for line in header_lines:
        name, value = line.split(": ", 1)
        assert name == name.lower(), head
        assert name not in headers, head
        headers[name] = value
    body = b"" if head_only else await reader.readexactly(int(headers["content-length"]))
    return Reply(int(status), head, headers, body)


async def read_to_eof(reader: asyncio.StreamReader) -> bytes:
    """What is left until the server closes its side; a reset raises instead."""
    return await reader.read()


def request(
    method: str,
    path: str,
    body: bytes = b"",
    *,
    headers: tuple[tuple[str, str], ...] = (),
    version: str = "HTTP/1.1",
    length: bool = True,
) -> bytes:
    """A request as bytes; `content-length` from the body unless `length` is False."""
    lines = [f"{method} {path} {version}", "host: 127.0.0.1"]
    if length and (body or method == "POST"):
        lines.append(f"content-length: {len(body)}")
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def infer_body(*values: float) -> bytes:
    return encode_request(rows(*values)).body


def infer(*values: float, path: str = f"/v2/models/{MODEL}/infer") -> bytes:
    return request(
        "POST", path, infer_body(*values), headers=(("content-type", "application/json"),)
    )


def doubled(reply: Reply) -> list[list[float]]:
    """The `y` output of a successful inference reply."""
    assert reply.status == 200, reply
    assert reply.headers["content-type"] == "application/json"
    return [[float(v) for v in row] for row in decode_response(reply.body)["y"]]


def live_reply(*, close: bool = False) -> bytes:
    """The exact bytes of `GET /v2/health/live`'s answer."""
    connection = "connection: close\r\n" if close else ""
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        + f"content-length: {len(LIVE_BODY)}\r\n{connection}\r\n".encode()
        + LIVE_BODY
    )


async def until(condition: Callable[[], bool]) -> None:
    """Yield to the loop (zero-time) until the server reaches `condition`; the scenario's
    hang guard bounds the wait."""
    while not condition():
        await asyncio.sleep(0)


LIVE = request("GET", "/v2/health/live")


# 1. keep-alive -----------------------------------------------------------------------------


def test_keep_alive_answers_two_requests_on_one_connection(run: Runner) -> None:
    async def scenario(h: Harness) -> None:
        reader, writer = await h.connect()
        writer.write(infer(1.5))
        first = await read_reply(reader)
        # Sent only once the first answer was read by its content-length: a length too long
        # would hang here, one too short would leave bytes in front of the second status line.
        writer.write(infer(2.0, 3.0))
        second = await read_reply(reader)

        assert "connection" not in first.headers
        assert "connection" not in second.headers
        assert doubled(first) == [[3.0, 3.0]]
        assert doubled(second) == [[4.0, 4.0], [6.0, 6.0]]
        assert len(h.server.connections) == 1

    run(scenario)


# 2. pipelining -----------------------------------------------------------------------------


def test_pipelined_requests_are_answered_in_order(run: Runner) -> None:
    async def scenario(h: Harness) -> None:
        reader, writer = await h.connect()
        writer.write(infer(1.0) + LIVE + infer(5.0))

        first = await read_reply(reader)
        second = await read_reply(reader)
        third = await read_reply(reader)

        assert doubled(first) == [[2.0, 2.0]]
        assert second.head + second.body == live_reply()
        assert doubled(third) == [[10.0, 10.0]]
        assert [call.tolist() for call in h.model.calls] == [[[1.0, 1.0]], [[5.0, 5.0]]]

    run(scenario)


def test_pipelining_past_the_read_pause_answers_every_request(run: Runner) -> None:
    async def scenario(h: Harness) -> None:
        reader, writer = await h.connect()
        # About 300 KB of requests, more than one socket read and far more than MAX_PIPELINED:
        # the server pauses reading and resumes as it answers.
        count = 5000
        last = request("GET", "/v2/health/live", headers=(("connection", "close"),))
        writer.write(LIVE * (count - 1) + last)

        answers = await read_to_eof(reader)
        assert answers == live_reply() * (count - 1) + live_reply(close=True)

    run(scenario)


def test_answers_larger_than_the_socket_buffers_wait_for_the_client(run: Runner) -> None:
    async def scenario(h: Harness) -> None:
        reader, writer = await h.connect()
        await until(lambda: len(h.server.connections) == 1)
        (connection,) = h.server.connections
        # Loopback send buffers autotune to megabytes; pinned small (as on a slow link), the
        # answers overflow into the transport's buffer, so the server must pause its writes
        # (pause_writing) and resume them as this client reads.
        transport = connection._transport
        assert transport is not None
        server_socket = transport.get_extra_info("socket")
        server_socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        count = 32
        writer.write(request("GET", "/metrics") * count + LIVE)

        replies = [await read_reply(reader) for _ in range(count)]
        assert {reply.status for reply in replies} == {200}
        assert sum(len(reply.body) for reply in replies) > 128 * 1024
        assert all(b"inferstack_queue_depth" in reply.body for reply in replies)
        assert await reader.readexactly(len(live_reply())) == live_reply()

    run(scenario)


# 3. Expect: 100-continue -------------------------------------------------------------------


def test_expect_100_continue_is_answered_before_the_body_is_sent(run: Runner) -> None:
    async def scenario(h: Harness) -> None:
        reader, writer = await h.connect()
        body = infer_body(4.0)
        writer.write(
            request(
                "POST",
                f"/v2/models/{MODEL}/infer",
                headers=(("content-length", str(len(body))), ("expect", "100-continue")),
                length=False,
            )
        )
        # The body is not sent yet: a server waiting for it would trip the hang guard here.
        assert await reader.readexactly(len(CONTINUE)) == CONTINUE
        writer.write(body)
        assert doubled(await read_reply(reader)) == [[8.0, 8.0]]

    run(scenario)


def test_100_continue_of_a_pipelined_request_waits_for_the_earlier_answers(run: Runner) -> None:
    async def scenario(h: Harness) -> None:
        reader, writer = await h.connect()
        body = infer_body(4.0)
        writer.write(
            LIVE
            + request(
                "POST",
                f"/v2/models/{MODEL}/infer",
                headers=(("content-length", str(len(body))), ("expect", "100-continue")),
                length=False,
            )
        )
        # Responses, interim ones included, go in request order: the GET's answer comes first.
        assert await reader.readexactly(len(live_reply())) == live_reply()
        assert await reader.readexactly(len(CONTINUE)) == CONTINUE
        writer.write(body)
        assert doubled(await read_reply(reader)) == [[8.0, 8.0]]

    run(scenario)


# 4. request body limit ---------------------------------------------------------------------

TOO_LARGE = "the request body exceeds 1024 bytes; send smaller batches or raise max_request_bytes"


def test_declared_body_over_the_limit_gets_413_and_a_clean_close(run: Runner) -> None:
    async def scenario(h: Harness) -> None:
        reader, writer = await h.connect()
        # Far more than the socket buffers hold, all sent before reading: a server that closed
        # with this unread would reset the connection and the client would lose the answer.
        body = b"0" * (4 * 1024 * 1024)
        writer.write(request("POST", f"/v2/models/{MODEL}/infer", body))

        reply = await read_reply(reader)
        assert reply.status == 413
        assert reply.headers["connection"] == "close"
        assert reply.error == TOO_LARGE
        assert await read_to_eof(reader) == b""
        await writer.drain()  # The rest of the body was accepted, not refused with a reset.
        assert h.model.calls == []

    run(scenario, limits=HttpLimits(max_request_bytes=1024))


def test_chunked_body_growing_over_the_limit_gets_413(run: Runner) -> None:
    async def scenario(h: Harness) -> None:
        reader, writer = await h.connect()
        chunk = b"200\r\n" + b"0" * 0x200 + b"\r\n"
        writer.write(
            request(
                "POST",
                f"/v2/models/{MODEL}/infer",
                headers=(("transfer-encoding", "chunked"),),
                length=False,
            )
            # The third chunk crosses 1024 bytes; the client keeps sending 4 MiB more before it
            # reads, as in the declared case.
            + chunk * 8192
            + b"0\r\n\r\n"
        )

        reply = await read_reply(reader)
        assert reply.status == 413
        assert reply.headers["connection"] == "close"
        assert reply.error == TOO_LARGE
        assert await read_to_eof(reader) == b""
        await writer.drain()
        assert h.model.calls == []

    run(scenario, limits=HttpLimits(max_request_bytes=1024))


# 5. header limit ---------------------------------------------------------------------------


def test_headers_over_the_limit_get_431(run: Runner) -> None:
    async def scenario(h: Harness) -> None:
        reader, writer = await h.connect()
        writer.write(
            request("GET", "/v2/health/live", headers=(("x-padding", "p" * 600), ("x-more", "m")))
        )

        reply = await read_reply(reader)
        assert reply.status == 431
        assert reply.head.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
        assert reply.headers["connection"] == "close"
        assert reply.error == (
            "request line and headers exceed 512 bytes; send fewer or shorter headers, "
            "or a shorter URL"
        )
        assert await read_to_eof(reader) == b""

    run(scenario, limits=HttpLimits(max_header_bytes=512))


def test_a_request_line_over_the_header_limit_is_refused(run: Runner) -> None:
    async def scenario(h: Harness) -> None:
        reader, writer = await h.connect()
        # No header follows the long target, so nothing but the request line carries it over.
        writer.write(b"GET /v2/health/live?" + b"q" * 4096 + b" HTTP/1.0\r\n\r\n")

        reply = await read_reply(reader)
        assert reply.status in (414, 431)
        assert reply.headers["connection"] == "close"
        assert await read_to_eof(reader) == b""

    run(scenario, limits=HttpLimits(max_header_bytes=512))


# 6. malformed input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(b"GET /v2/health/live HTTP/1.1 extra\r\n\r\n", id="bad-request-line"),
        pytest.param(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32), id="tls-hello"),
        pytest.param(b"hello there\r\n\r\n", id="not-http"),
    ],
)
def test_malformed_request_gets_400_and_the_connection_closes(run: Runner, garbage: bytes) -> None:
    async def scenario(h: Harness) -> None:
        reader, writer = await h.connect()
        writer.write(garbage)

        reply = await read_reply(reader)
        assert reply.status == 400
        assert reply.headers["connection"] == "close"
        assert reply.error.startswith("malformed HTTP request (")
        assert reply.error.endswith("); send HTTP/1.1")
        assert await read_to_eof(reader) == b""

    run(scenario)


def test_a_valid_request_before_malformed_bytes_is_answered_first(run: Runner) -> None:
    async def scenario(h: Harness) -> None:
        reader, writer = await h.connect()
        writer.write(LIVE + b"hello there\r\n\r\n")

        assert await reader.readexactly(len(live_reply())) == live_reply()
        reply = await read_reply(reader)
        assert reply.status == 400
        assert reply.headers["connection"] == "close"
        assert await read_to_eof(reader) == b""

    run(scenario)


def test_an_h2c_upgrade_offer_is_ignored_and_the_request_answered(run: Runner) -> None:
    async def scenario(h: Harness) -> None:
        reader, writer = await h.connect()
        # The exact headers `curl --http2 http://...` sends on a cleartext connection.
        writer.write(
            request(
                "GET",
                "/v2/health/live",
                headers=(
                    ("connection", "Upgrade, HTTP2-Settings"),
                    ("upgrade", "h2c"),
                    ("http2-settings", "AAMAAABkAAQCAAAAAAIAAAAA"),
                ),
            )
        )

        assert await reader.readexactly(len(live_reply())) == live_reply()

    run(scenario)


SMUGGLED = request("GET", "/v2/health/live")
"""A request hidden in the body of an Upgrade request: a proxy in front forwards it as body."""


@pytest.mark.parametrize(
    ("method", "framing", "body"),
    [
        pytest.param("POST", (), SMUGGLED, id="content-length"),
        pytest.param(
            "POST",
            (("transfer-encoding", "chunked"),),
            f"{len(SMUGGLED):x}\r\n".encode() + SMUGGLED + b"\r\n0\r\n\r\n",
            id="chunked",
        ),
        pytest.param("CONNECT", (), SMUGGLED, id="connect"),
    ],
)
def test_an_upgrade_request_with_a_body_gets_400_and_its_body_is_never_parsed(
    run: Runner, method: str, framing: tuple[tuple[str, str], ...], body: bytes
) -> None:
    async def scenario(h: Harness) -> None:
        reader, writer = await h.connect()
        upgrade = (("connection", "Upgrade"), ("upgrade", "websocket"))
        writer.write(
            request(
                method,
                f"/v2/models/{MODEL}/infer",
                body,
                headers=upgrade + framing,
                length=not framing,
            )
            + LIVE  # Pipelined after the smuggled one: not answered either.
        )

        reply = await read_reply(reader)
        assert reply.status == 400
        assert reply.headers["connection"] == "close"
        assert "Upgrade" in reply.error
        # Nothing after the refusal: neither the smuggled request nor the one behind it.
        assert await read_to_eof(reader) == b""
        assert h.metrics.refusals("malformed") == 1
        assert h.model.calls == []

    run(scenario)


# 7. connection: close ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"GET /v2/health/live HTTP/1.0\r\n\r\n", id="http-1.0"),
        pytest.param(
            b"GET /v2/health/live HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
            id="http-1.1-close",
        ),
    ],
)
def test_a_request_without_keep_alive_is_answered_then_closed(run: Runner, raw: bytes) -> None:
    async def scenario(h: Harness) -> None:
        reader, writer = await h.connect()
        writer.write(raw)
        assert await read_to_eof(reader) == live_reply(close=True)
        await until(lambda: not h.server.connections)

    run(scenario)


# 8. HEAD -----------------------------------------------------------------------------------


def test_head_sends_the_get_headers_without_the_body(run: Runner) -> None:
    async def scenario(h: Harness) -> None:
        reader, writer = await h.connect()
        writer.write(request("HEAD", "/v2/health/live") + LIVE)

        head = await read_reply(reader, head_only=True)
        # The next bytes are the GET's status line: the HEAD answer carried no body.
        get = await read_reply(reader)
        assert head.head == get.head
        assert head.headers["content-length"] == str(len(LIVE_BODY))
        assert get.body == LIVE_BODY

    run(scenario)


# 9. idle keep-alive timeout ----------------------------------------------------------------


def test_idle_keep_alive_connections_are_closed_by_the_server(run: Runner) -> None:
    async def scenario(h: Harness) -> None:
        served_reader, served_writer = await h.connect()
        silent_reader, _ = await h.connect()
        served_writer.write(LIVE)
        assert (await read_reply(served_reader)).body == LIVE_BODY

        # Both EOFs come from the server's idle timer; the hang guard fails a server without one.
        assert await read_to_eof(served_reader) == b""
        assert await read_to_eof(silent_reader) == b""
        await until(lambda: not h.server.connections)

    # Long enough that a starved loop cannot expire the first connection before its request.
    run(scenario, limits=HttpLimits(keep_alive_s=0.5))


async def send_empty_lines(writer: asyncio.StreamWriter) -> None:
    """CRLF over and over, each well inside the idle timeout, until the server closes."""
    with contextlib.suppress(ConnectionError):
        while not writer.is_closing():
            writer.write(b"\r\n")
            await writer.drain()
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("after_a_request", [False, True], ids=["fresh", "after-a-request"])
def test_empty_lines_do_not_keep_a_connection_open_past_the_idle_timeout(
    run: Runner, after_a_request: bool
) -> None:
    async def scenario(h: Harness) -> None:
        reader, writer = await h.connect()
        if after_a_request:
            writer.write(LIVE)
            assert (await read_reply(reader)).body == LIVE_BODY
        # The parser skips empty lines before a request line: no request begins, so neither
        # the header timeout nor a reset of the idle timer may follow from them.
        sender = asyncio.create_task(send_empty_lines(writer))
        assert await read_to_eof(reader) == b""  # The hang guard fails a server that waits.
        sender.cancel()
        await until(lambda: not h.server.connections)

    run(scenario, limits=HttpLimits(keep_alive_s=0.5, header_timeout_s=0.5))


# 10. a client that goes away ---------------------------------------------------------------


def test_a_client_that_disconnects_while_queued_is_cancelled_and_never_computed(
    run: Runner,
) -> None:
    async def scenario(h: Harness) -> None:
        stays_reader, stays = await h.connect()
        _, leaves = await h.connect()
        stays.write(infer(1.0))
        assert await h.model.entered.get() == 1  # Its batch holds the model.
        leaves.write(infer(7.0))
        await until(lambda: h.batcher.queue_depth == 1)
        assert h.batcher.outstanding == 2

        leaves.close()
        await until(lambda: h.metrics.requests("cancelled") == 1)
        assert h.batcher.outstanding == 1
        assert h.batcher.queue_depth == 0

        h.model.gate.set()
        assert doubled(await read_reply(stays_reader)) == [[2.0, 2.0]]
        assert [call.tolist() for call in h.model.calls] == [[[1.0, 1.0]]]
        assert h.batcher.outstanding == 0
        assert h.metrics.requests("success") == 1
        assert h.metrics.requests("cancelled") == 1

    run(scenario, gate_open=False)


# 11. graceful close ------------------------------------------------------------------------


def test_close_finishes_busy_connections_answers_idle_ones_and_refuses_new_ones(
    run: Runner,
) -> None:
    async def scenario(h: Harness) -> None:
        idle_reader, idle = await h.connect()
        busy_reader, busy = await h.connect()
        idle.write(LIVE)
        assert (await read_reply(idle_reader)).body == LIVE_BODY
        busy.write(infer(3.0))
        assert await h.model.entered.get() == 1

        closing = asyncio.create_task(h.server.close(grace_s=HANG_GUARD_S))
        await until(lambda: h.server.closing)
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", h.port)
        # The idle connection was not closed under a client that may be sending on it: a
        # request on it now is answered, with close.
        idle.write(LIVE)
        assert await read_to_eof(idle_reader) == live_reply(close=True)
        assert not closing.done()

        h.model.gate.set()
        reply = await read_reply(busy_reader)
        assert doubled(reply) == [[6.0, 6.0]]
        assert reply.headers["connection"] == "close"
        assert await read_to_eof(busy_reader) == b""
        await closing
        assert not h.server.connections

    run(scenario, gate_open=False)


def test_draining_answers_every_request_with_close_and_idle_connections_time_out(
    run: Runner,
) -> None:
    async def scenario(h: Harness) -> None:
        used_reader, used = await h.connect()
        silent_reader, _ = await h.connect()
        used.write(LIVE)
        assert (await read_reply(used_reader)).body == LIVE_BODY

        h.server.begin_drain()
        # Still listening: a new connection is served too, and told to close.
        fresh_reader, fresh = await h.connect()
        fresh.write(infer(1.0))
        reply = await read_reply(fresh_reader)
        assert doubled(reply) == [[2.0, 2.0]]
        assert reply.headers["connection"] == "close"
        assert await read_to_eof(fresh_reader) == b""
        used.write(infer(2.0))
        reply = await read_reply(used_reader)
        assert reply.headers["connection"] == "close"
        assert await read_to_eof(used_reader) == b""
        # A connection that never sends again is closed by its idle timer, not reset.
        assert await read_to_eof(silent_reader) == b""

    run(scenario, limits=HttpLimits(keep_alive_s=0.5))


BACKLOG = 20
"""Connections the kernel completed that the server had not accepted yet when it closed."""


def test_close_answers_the_accept_backlog_with_503_instead_of_resetting_it(run: Runner) -> None:
    async def scenario(h: Harness) -> None:
        loop = asyncio.get_running_loop()
        # Connected and sent while this coroutine holds the loop, so the server cannot accept
        # them: they wait in the kernel's accept queue, as clients that reopened after a
        # `Connection: close` do at the moment a draining server stops listening.
        waiting = []
        for _ in range(BACKLOG):
            client = socket.create_connection(("127.0.0.1", h.port))
            client.sendall(LIVE)
            client.setblocking(False)
            waiting.append(client)
        closing = asyncio.create_task(h.server.close(grace_s=HANG_GUARD_S))
        try:
            answers = [await _read_all(loop, client) for client in waiting]
        finally:
            for client in waiting:
                client.close()
        await closing
        for answer in answers:
            assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), answer
            assert b"\r\nconnection: close\r\n" in answer
            assert b"retry-after: 1" in answer

    run(scenario)


async def _read_all(loop: asyncio.AbstractEventLoop, client: socket.socket) -> bytes:
    """Everything until the server's EOF; a reset raises ConnectionResetError."""
    received = b""
    while chunk := await loop.sock_recv(client, 65536):
        received += chunk
    return received


# 12. percent-encoded paths -----------------------------------------------------------------


def test_percent_encoded_paths_route_like_plain_ones(run: Runner) -> None:
    async def scenario(h: Harness) -> None:
        reader, writer = await h.connect()
        writer.write(
            request("GET", f"/v2/models/{MODEL}/ready")
            + request("GET", "/v2/models/doubl%65r/ready")
            + infer(2.5, path="/v2/models/%64oubler/%69nfer")
        )

        plain = await read_reply(reader)
        encoded = await read_reply(reader)
        assert plain.status == 200
        assert orjson.loads(plain.body) == {"name": MODEL, "ready": True}
        assert encoded.head + encoded.body == plain.head + plain.body
        assert doubled(await read_reply(reader)) == [[5.0, 5.0]]

    run(scenario)


# 13. an exception inside the app -----------------------------------------------------------


class BrokenCollector:
    """A Prometheus collector that fails on scrape, so `/metrics` raises inside app.handle."""

    def describe(self) -> list[Any]:
        return []  # Registered without a collect() call.

    def collect(self) -> Iterator[Any]:
        raise RuntimeError("collector exploded")


def test_an_exception_in_the_app_gets_500_and_the_connection_serves_on(
    run: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(h: Harness) -> None:
        h.metrics.registry.register(BrokenCollector())
        reader, writer = await h.connect()
        writer.write(request("GET", "/metrics"))

        reply = await read_reply(reader)
        assert reply.status == 500
        assert reply.head.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
        assert "connection" not in reply.headers
        assert reply.error == "internal server error; see the server log"

        writer.write(LIVE)
        assert await reader.readexactly(len(live_reply())) == live_reply()

    with caplog.at_level(logging.ERROR, logger="inferstack.runtime.http"):
        run(scenario)
    [record] = [r for r in caplog.records if r.name == "inferstack.runtime.http"]
    assert record.getMessage() == "unhandled error answering GET /metrics"
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "collector exploded"


# 14. admission at header time --------------------------------------------------------------


def test_a_full_queue_is_refused_with_429_before_the_body_is_decoded(run: Runner) -> None:
    async def scenario(h: Harness) -> None:
        held_reader, held = await h.connect()
        held.write(infer(1.0))
        assert await h.model.entered.get() == 1
        _, queued = await h.connect()
        queued.write(infer(2.0))
        await until(lambda: h.batcher.queue_depth == 1)

        reader, writer = await h.connect()
        # Not even JSON: a 429 rather than a 400 shows that nothing decoded the body.
        writer.write(request("POST", f"/v2/models/{MODEL}/infer", b"{" * 2000))
        reply = await read_reply(reader)
        assert reply.status == 429
        assert int(reply.headers["retry-after"]) >= 1
        assert "queue is full (1 requests)" in reply.error
        assert "connection" not in reply.headers  # The connection stays usable.
        writer.write(LIVE)
        assert await reader.readexactly(len(live_reply())) == live_reply()
        assert h.metrics.requests("shed") == 1

        h.model.gate.set()
        assert doubled(await read_reply(held_reader)) == [[2.0, 2.0]]

    run(scenario, gate_open=False, queue=1)


def chunked(path: str, body: bytes, piece: int = 16) -> bytes:
    """A POST whose body is sent in chunks of `piece` bytes."""
    head = request("POST", path, headers=(("transfer-encoding", "chunked"),), length=False)
    chunks = b"".join(
        f"{len(body[i : i + piece]):x}\r\n".encode() + body[i : i + piece] + b"\r\n"
        for i in range(0, len(body), piece)
    )
    return head + chunks + b"0\r\n\r\n"


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_bodies_past_the_in_flight_budget_get_503_and_the_connection_stays_usable(
    run: Runner, framing: str
) -> None:
    body = infer_body(1.0)

    async def scenario(h: Harness) -> None:
        held_reader, held = await h.connect()
        held.write(infer(1.0))
        assert await h.model.entered.get() == 1
        assert h.server.body_bytes == len(body)  # Held until its answer is written.

        reader, writer = await h.connect()
        path = f"/v2/models/{MODEL}/infer"
        writer.write(
            chunked(path, infer_body(2.0)) if framing == "chunked" else infer(2.0, path=path)
        )
        reply = await read_reply(reader)
        assert reply.status == 503
        assert reply.headers["retry-after"] == "1"
        assert "request bodies in flight" in reply.error
        assert "connection" not in reply.headers  # The connection stays usable.
        assert h.server.body_bytes == len(body)  # The refused body was never kept.
        assert h.metrics.requests("shed") == 1

        h.model.gate.set()
        assert doubled(await read_reply(held_reader)) == [[2.0, 2.0]]
        await until(lambda: h.server.body_bytes == 0)
        writer.write(infer(3.0))  # The budget is free again.
        assert doubled(await read_reply(reader)) == [[6.0, 6.0]]
        await until(lambda: h.server.body_bytes == 0)

    # Room for one body, not two.
    run(scenario, gate_open=False, limits=HttpLimits(max_body_bytes_in_flight=len(body) + 8))


def test_a_refused_request_that_expects_100_continue_is_answered_at_once_and_closed(
    run: Runner,
) -> None:
    async def scenario(h: Harness) -> None:
        h.batcher.stop_accepting()
        reader, writer = await h.connect()
        writer.write(
            request(
                "POST",
                f"/v2/models/{MODEL}/infer",
                headers=(("content-length", "100000"), ("expect", "100-continue")),
                length=False,
            )
        )
        reply = await read_reply(reader)  # No 100 first, and no body was sent.
        assert reply.status == 503
        assert reply.headers["connection"] == "close"
        assert "retry-after" in reply.headers

    run(scenario)


# 15. slow clients and the connection cap ---------------------------------------------------

SLOW_LIMITS = HttpLimits(header_timeout_s=0.2, min_body_rate=1000.0)


async def trickle(writer: asyncio.StreamWriter, data: bytes) -> None:
    """Send `data` a byte at a time, as a slowloris client does, until it is sent or refused."""
    for index in range(len(data)):
        if writer.is_closing():
            return
        writer.write(data[index : index + 1])
        await asyncio.sleep(0.02)


def test_a_trickled_request_head_gets_408_however_often_bytes_arrive(run: Runner) -> None:
    async def scenario(h: Harness) -> None:
        reader, writer = await h.connect()
        sender = asyncio.create_task(trickle(writer, LIVE * 50))
        reply = await read_reply(reader)
        assert reply.status == 408
        assert reply.headers["connection"] == "close"
        assert "did not arrive within 0.2 s" in reply.error
        sender.cancel()
        assert h.metrics.refusals("header_timeout") == 1

    run(scenario, limits=SLOW_LIMITS)


def test_a_body_slower_than_the_floor_gets_408(run: Runner) -> None:
    async def scenario(h: Harness) -> None:
        reader, writer = await h.connect()
        writer.write(
            request(
                "POST",
                f"/v2/models/{MODEL}/infer",
                headers=(("content-length", "100000"),),
                length=False,
            )
        )
        sender = asyncio.create_task(trickle(writer, b" " * 100000))
        reply = await read_reply(reader)
        assert reply.status == 408
        assert "slower than 1000 bytes/s" in reply.error
        sender.cancel()
        assert h.metrics.refusals("body_rate") == 1
        assert h.model.calls == []

    run(scenario, limits=SLOW_LIMITS)


def test_past_the_connection_cap_the_slowest_head_makes_room_for_a_new_client(
    run: Runner,
) -> None:
    async def scenario(h: Harness) -> None:
        slow = [await h.connect() for _ in range(3)]
        for _, writer in slow:
            writer.write(b"GET /v2/hea")  # A head that never completes.
        await until(lambda: all(c.evictable_head for c in h.server.connections))

        reader, writer = await h.connect()
        writer.write(LIVE)
        assert await reader.readexactly(len(live_reply())) == live_reply()
        # The oldest head goes; the three began within one tick of the loop's clock, so which
        # one that is, is the clock's call.
        reads = [asyncio.create_task(read_reply(reader)) for reader, _ in slow]
        done, pending = await asyncio.wait(reads, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        (evicted,) = [task.result() for task in done]
        assert evicted.status == 408
        assert "connection limit" in evicted.error
        assert len(h.server.connections) == 3
        assert h.metrics.refusals("evicted") == 1
        assert b'inferstack_http_open_connections{model="doubler"} 3.0' in h.metrics.exposition()

    run(scenario, limits=HttpLimits(max_connections=3))


def test_past_the_connection_cap_with_every_connection_busy_a_new_one_gets_503(
    run: Runner,
) -> None:
    async def scenario(h: Harness) -> None:
        busy = [await h.connect() for _ in range(2)]
        for value, (_, writer) in enumerate(busy, start=1):
            writer.write(infer(float(value)))
        await h.model.entered.get()
        await until(lambda: h.batcher.outstanding == 2)

        reader, _ = await h.connect()
        reply = await read_reply(reader)
        assert reply.status == 503
        assert reply.headers["retry-after"] == "1"
        assert "limit of 2 open connections" in reply.error
        assert await read_to_eof(reader) == b""
        assert h.metrics.refusals("connection_cap") == 1

        h.model.gate.set()
        assert doubled(await read_reply(busy[0][0])) == [[2.0, 2.0]]

    run(scenario, gate_open=False, limits=HttpLimits(max_connections=2))


# 16. small ones ----------------------------------------------------------------------------


def test_a_body_cut_short_by_the_client_gets_400(run: Runner) -> None:
    async def scenario(h: Harness) -> None:
        reader, writer = await h.connect()
        body = infer_body(1.0)
        writer.write(request("POST", f"/v2/models/{MODEL}/infer", body)[: -len(body) // 2])
        writer.write_eof()
        reply = await read_reply(reader)
        assert reply.status == 400
        assert "closed after" in reply.error
        assert await read_to_eof(reader) == b""

    run(scenario)


def test_an_http_0_9_request_gets_400(run: Runner) -> None:
    async def scenario(h: Harness) -> None:
        reader, writer = await h.connect()
        writer.write(b"GET /v2/health/live\r\n")
        reply = await read_reply(reader)
        assert reply.status == 400
        assert "HTTP/0.9" in reply.error
        assert await read_to_eof(reader) == b""
        assert h.metrics.refusals("malformed") == 1

    run(scenario)


def _post_json(document: object) -> bytes:
    return request("POST", f"/v2/models/{MODEL}/infer", orjson.dumps(document))


@pytest.mark.parametrize("number", [b"1e39", b"1e400", b"-1e400", b"1" + b"0" * 400 + b".0"])
def test_fp32_data_beyond_the_fp32_range_gets_400_naming_the_tensor(
    run: Runner, number: bytes
) -> None:
    async def scenario(h: Harness) -> None:
        reader, writer = await h.connect()
        # Past a double's range (1e400) the fast parser gives up and the permissive one used to
        # read an infinity, which the range check takes for a literal Infinity: 200, NaN out.
        body = b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1, %s]}]}'
        writer.write(request("POST", f"/v2/models/{MODEL}/infer", body % number))
        reply = await read_reply(reader)
        assert reply.status == 400
        assert reply.error.startswith("input 'x': values outside the finite FP32 range")
        assert h.model.calls == []

    run(scenario)


def test_an_empty_outputs_list_asks_for_every_output(run: Runner) -> None:
    async def scenario(h: Harness) -> None:
        reader, writer = await h.connect()
        writer.write(
            _post_json(
                {
                    "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}],
                    "outputs": [],
                }
            )
        )
        assert doubled(await read_reply(reader)) == [[2.0, 4.0]]

    run(scenario)


def test_a_large_body_is_decoded_off_the_event_loop(run: Runner) -> None:
    async def scenario(h: Harness) -> None:
        reader, writer = await h.connect()
        body = infer_body(3.0)
        padded = body[:-1] + b" " * LARGE_BODY_BYTES + body[-1:]  # Valid JSON, just large.
        writer.write(request("POST", f"/v2/models/{MODEL}/infer", padded))
        assert doubled(await read_reply(reader)) == [[6.0, 6.0]]
        assert h.app.decoder._pool is not None
        writer.write(request("POST", f"/v2/models/{MODEL}/infer", b"[" * LARGE_BODY_BYTES))
        reply = await read_reply(reader)
        assert reply.status == 400

    run(scenario)


def test_model_failures_answer_by_whose_fault_without_a_traceback(
    run: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(h: Harness) -> None:
        reader, writer = await h.connect()
        h.model.fail_on = 7.0  # Raises a multi-line, TorchScript-like error naming a file.
        writer.write(infer(7.0))
        reply = await read_reply(reader)
        assert reply.status == 422
        assert reply.error.startswith(
            f"model '{MODEL}' rejected this request's input 'x' (its row): "
            "RuntimeError: index 7.0 out of range in self"
        )
        assert "Traceback" not in reply.error
        assert "/srv/models" not in reply.error
        request_id = reply.headers["x-request-id"]
        assert len(request_id) == 32  # Made up: the request sent no id.

        h.model.fail_on = None
        h.model.fail_with = RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        writer.write(infer(1.0))
        reply = await read_reply(reader)
        assert reply.status == 503
        assert int(reply.headers["retry-after"]) >= 1
        assert "RuntimeError: CUDA out of memory" in reply.error

        h.model.fail_with = None
        writer.write(infer(2.0))
        assert doubled(await read_reply(reader)) == [[4.0, 4.0]]
        assert h.metrics.requests("invalid") == 1
        assert h.metrics.requests("failed") == 1
        assert h.metrics.requests("success") == 1

    with caplog.at_level(logging.WARNING, logger="inferstack.runtime.app"):
        run(scenario)
    lines = [r.getMessage() for r in caplog.records if "inference failed" in r.getMessage()]
    assert len(lines) == 2, lines
    assert lines[0].startswith('inference failed: request_id="')
    assert "status=422" in lines[0]
    assert "status=503" in lines[1]
    assert all("\n" not in line for line in lines)


def test_a_large_json_response_is_encoded_off_the_event_loop(
    run: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Any JSON output counts as large here: the harness's model and max batch keep outputs small.
    monkeypatch.setattr(routes, "LARGE_RESPONSE_BYTES", 1)

    async def scenario(h: Harness) -> None:
        reader, writer = await h.connect()
        writer.write(infer(3.0, 4.0))
        assert doubled(await read_reply(reader)) == [[6.0, 6.0], [8.0, 8.0]]
        assert h.app.decoder._encoder is not None
        assert h.app.decoder._pool is None  # Small bodies are not sent to the decoder.
        # Binary outputs are a memory copy: encoded where they are.
        h.app.decoder.close()
        binary = encode_request(rows(5.0), binary_output=True)
        writer.write(request("POST", f"/v2/models/{MODEL}/infer", binary.body))
        reply = await read_reply(reader)
        assert reply.status == 200
        assert h.app.decoder._encoder is None

    run(scenario)


def test_the_encoder_process_answers_as_the_event_loop_would() -> None:
    outputs = {"y": np.arange(12, dtype=np.float32).reshape(3, 4), "n": np.array([1, 2, 3])}
    requested = [RequestedOutput("y", False), RequestedOutput("n", True)]
    expected = encode_response("m", outputs, request_id="r1", requested=requested)

    async def encode() -> EncodedBody:
        decoder = LargeBodyDecoder()
        try:
            return await decoder.encode(
                "m",
                outputs,
                request_id="r1",
                requested=requested,
                binary_output=False,
                model_version=None,
            )
        finally:
            decoder.close()

    assert asyncio.run(encode()) == expected
    assert json_bytes(outputs, requested, False) == outputs["y"].nbytes
    assert json_bytes(outputs, None, True) == 0


def test_a_dead_decoder_process_answers_503_and_the_next_large_body_gets_a_new_one(
    run: Runner,
) -> None:
    async def scenario(h: Harness) -> None:
        reader, writer = await h.connect()
        body = infer_body(3.0)
        padded = request(
            "POST", f"/v2/models/{MODEL}/infer", body[:-1] + b" " * LARGE_BODY_BYTES + body[-1:]
        )
        writer.write(padded)
        assert doubled(await read_reply(reader)) == [[6.0, 6.0]]
        pool = h.app.decoder._pool
        assert pool is not None
        for process in list(pool._processes.values()):
            process.kill()

        writer.write(padded)
        reply = await read_reply(reader)
        assert reply.status == 503
        assert reply.headers["retry-after"] == "1"
        assert "decodes large request bodies exited" in reply.error
        writer.write(padded)
        assert doubled(await read_reply(reader)) == [[6.0, 6.0]]

    run(scenario)
