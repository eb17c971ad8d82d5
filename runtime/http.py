"""HTTP/1.1 for the v2 endpoints: httptools parses, an asyncio protocol answers.

Why not an ASGI server: the six v2 routes need a method, a path, the headers and the whole body,
and they answer with one buffer. An ASGI server spends per-request Python on what they do not
use (the scope dict, receive/send messages, response header checks); measured with the same
`InferenceApp` and wrk (`benchmarks/http_stacks.py`, numbers in the README), this protocol
answered more requests per second than uvicorn with httptools and than aiohttp, and that CPU is
what the model thread shares the machine with.

What it does, per connection:
- requests are answered one at a time, in arrival order (pipelined requests stay in order);
  parsing pauses while too many are waiting;
- keep-alive as the client asks (`Connection`, HTTP/1.0 rules), closed after `keep_alive_s` idle;
- `Expect: 100-continue` is answered before the body is read;
- a body over `max_request_bytes` (declared or actual) gets 413 and the connection closes
  after a lingering half-close, so the client reads the answer instead of a reset;
- malformed HTTP gets 400 and the connection closes; headers over `max_header_bytes` get 431;
- a client that goes away cancels its request (the batcher drops it if it has not run yet).

Shutdown (`close`): stop listening, close idle connections at once, let busy ones finish their
current response (sent with `Connection: close`), abort what is left after the grace.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from http import HTTPStatus
from typing import Final, cast
from urllib.parse import unquote

import httptools

from inferstack.runtime.app import InferenceApp, Response
from inferstack.runtime.protocol import error_body

log = logging.getLogger("inferstack.runtime.http")

MAX_PIPELINED: Final = 32
"""Requests one connection may have waiting before its reads pause."""
LINGER_S: Final = 2.0
"""How long a connection closing after an error keeps discarding the client's unread body."""
_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
_REASONS: Final = {status.value: status.phrase for status in HTTPStatus}


@dataclass(frozen=True)
class HttpLimits:
    """Per-connection limits."""

    max_request_bytes: int = 64 * 1024 * 1024
    max_header_bytes: int = 64 * 1024
    keep_alive_s: float = 5.0


@dataclass
class _Request:
    method: str
    path: str
    headers: dict[str, str]
    keep_alive: bool
    body: bytes = b""
    refusal: Response | None = None
    """Set when the request is answered without reaching the app (413, 431)."""


def encode_response(response: Response, *, head_only: bool, keep_alive: bool) -> bytes:
    """The status line, headers and body of `response` as one buffer."""
    lines = [
        f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Unknown')}",
        f"content-type: {response.content_type}",
        f"content-length: {len(response.body)}",
    ]
    lines.extend(f"{name}: {value}" for name, value in response.headers)
    if not keep_alive:
        lines.append("connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + response.body


def _refusal(status: int, message: str) -> Response:
    return Response(status, error_body(message))


class HttpConnection(asyncio.Protocol):
    """One client connection (see the module docstring for what it guarantees)."""

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._limits = server.limits
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._requests: deque[_Request] = deque()
        self._responder: asyncio.Task[None] | None = None
        self._writable = asyncio.Event()
        self._writable.set()
        self._reading = True
        self._discarding = False
        self._continue_owed = False
        self._closing = False
        self._idle_timer: asyncio.TimerHandle | None = None
        # The request being parsed.
        self._url = b""
        self._header_pairs: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._body_bytes = 0

    # asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._server.connections.add(self)
        self._arm_idle_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.forget(self)
        self._closing = True
        self._cancel_idle_timer()
        self._writable.set()
        if self._responder is not None:
            self._responder.cancel()  # Nobody is left to answer; the batcher drops the request.

    def data_received(self, data: bytes) -> None:
        if self._discarding:
            return
        self._cancel_idle_timer()
        while data and not self._discarding:
            try:
                self._parser.feed_data(data)
            except httptools.HttpParserUpgrade as upgrade:
                # RFC 9110 7.8: a server may ignore Upgrade and answer over HTTP/1.1 (curl's
                # h2c offer, for one); the client sends nothing new before a 101, so parsing
                # simply continues after the request.
                consumed = int(upgrade.args[0]) if upgrade.args else len(data)
                data = data[max(consumed, 1) :]
                continue
            except httptools.HttpParserError as error:
                self._refuse_now(400, f"malformed HTTP request ({error}); send HTTP/1.1")
            break
        if self.idle and not self._closing:  # A partial request: the idle clock keeps running.
            self._arm_idle_timer()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # httptools callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._header_pairs = []
        self._header_bytes = 0
        self._headers = {}
        self._body = []
        self._body_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._header_bytes += len(url)
        if self._header_bytes > self._limits.max_header_bytes:
            self._refuse_header_size()
            return
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > self._limits.max_header_bytes:
            self._refuse_header_size()
            return
        self._header_pairs.append((name, value))

    def on_headers_complete(self) -> None:
        if self._discarding:
            return
        headers: dict[str, str] = {}
        for raw_name, raw_value in self._header_pairs:
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._limits.max_request_bytes:
            self._refuse_now(413, self._too_large_message())
            return
        if headers.get("expect", "").lower() == "100-continue":
            # Interim answers keep request order too: owed until earlier answers are written.
            if self.idle:
                self._write(_CONTINUE)
            else:
                self._continue_owed = True
        self._headers = headers

    def on_body(self, chunk: bytes) -> None:
        self._continue_owed = False  # The client did not wait for it.
        if self._discarding:
            return
        self._body_bytes += len(chunk)
        if self._body_bytes > self._limits.max_request_bytes:
            self._refuse_now(413, self._too_large_message())
            return
        self._body.append(chunk)

    def on_message_complete(self) -> None:
        self._continue_owed = False
        if self._discarding:
            return
        try:
            raw_path = httptools.parse_url(self._url).path.decode("latin-1")
        except httptools.HttpParserInvalidURLError:
            self._refuse_now(400, "the request target is not a valid URL path; send /v2/...")
            return
        path = unquote(raw_path) if "%" in raw_path else raw_path
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        request = _Request(
            self._parser.get_method().decode("latin-1"),
            path,
            self._headers,
            self._parser.should_keep_alive(),
            body,
        )
        self._enqueue(request)

    # Answering -----------------------------------------------------------------------------

    def _too_large_message(self) -> str:
        return (
            f"the request body exceeds {self._limits.max_request_bytes} bytes; send smaller "
            "batches or raise max_request_bytes"
        )

    def _refuse_header_size(self) -> None:
        if not self._discarding:
            self._refuse_now(
                431,
                f"request line and headers exceed {self._limits.max_header_bytes} bytes; send "
                "fewer or shorter headers, or a shorter URL",
            )

    def _refuse_now(self, status: int, message: str) -> None:
        """Answer after what is queued, then close: the rest of this request is not read."""
        self._discarding = True
        self._enqueue(_Request("", "", {}, False, refusal=_refusal(status, message)))

    def _enqueue(self, request: _Request) -> None:
        self._requests.append(request)
        if len(self._requests) > MAX_PIPELINED and self._reading and self._transport is not None:
            self._transport.pause_reading()
            self._reading = False
        if self._responder is None:
            self._responder = self._loop.create_task(self._answer_in_order())

    async def _answer_in_order(self) -> None:
        app = self._server.app
        while self._requests and not self._closing:
            request = self._requests.popleft()
            if not self._reading and len(self._requests) <= MAX_PIPELINED // 2:
                assert self._transport is not None
                self._transport.resume_reading()
                self._reading = True
            response = request.refusal
            if response is None:
                try:
                    response = await app.handle(
                        request.method, request.path, request.headers, request.body
                    )
                except Exception:
                    log.exception("unhandled error answering %s %s", request.method, request.path)
                    response = _refusal(500, "internal server error; see the server log")
            if self._closing:
                break
            keep_alive = request.keep_alive and not self._server.closing
            self._write(
                encode_response(response, head_only=request.method == "HEAD", keep_alive=keep_alive)
            )
            if not keep_alive:
                if request.refusal is not None:
                    self._linger_and_close()  # The client may still be sending that body.
                else:
                    self._close()
                break
            if self._continue_owed and not self._requests:
                self._continue_owed = False
                self._write(_CONTINUE)
            if not self._writable.is_set():
                await self._writable.wait()
        self._responder = None
        if not self._closing:
            self._arm_idle_timer()

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    @property
    def idle(self) -> bool:
        """No request is being answered or waiting."""
        return self._responder is None and not self._requests

    def _close(self) -> None:
        self._closing = True
        self._cancel_idle_timer()
        if self._transport is not None:
            self._transport.close()

    def _linger_and_close(self) -> None:
        """Half-close and keep discarding input briefly, so the client reads our answer."""
        self._closing = True
        self._discarding = True
        self._cancel_idle_timer()
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if not self._reading:
            transport.resume_reading()
            self._reading = True
        if transport.can_write_eof():
            transport.write_eof()
            self._loop.call_later(LINGER_S, transport.close)
        else:
            transport.close()

    def close_when_idle(self) -> None:
        """Shutdown: close now if idle, else after the current response (sent as the last)."""
        if self.idle:
            self._close()

    def abort(self) -> None:
        """Drop the connection at once."""
        self._closing = True
        if self._transport is not None:
            self._transport.abort()

    def _arm_idle_timer(self) -> None:
        self._cancel_idle_timer()
        if self._server.closing:
            self._close()
            return
        self._idle_timer = self._loop.call_later(self._limits.keep_alive_s, self._close)

    def _cancel_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None


class HttpServer:
    """Listens on a port and serves an `InferenceApp` over HTTP/1.1."""

    def __init__(self, app: InferenceApp, limits: HttpLimits | None = None) -> None:
        self.app = app
        self.limits = limits or HttpLimits()
        self.connections: set[HttpConnection] = set()
        self.closing = False
        self._server: asyncio.Server | None = None
        self._all_closed = asyncio.Event()

    async def start(self, host: str, port: int) -> None:
        """Open the listening socket."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: HttpConnection(self), host, port, reuse_address=True, backlog=2048
        )

    @property
    def port(self) -> int:
        """The bound port (useful when started on port 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the server is not listening; call start() first")
        return int(self._server.sockets[0].getsockname()[1])

    def forget(self, connection: HttpConnection) -> None:
        """A connection ended."""
        self.connections.discard(connection)
        if self.closing and not self.connections:
            self._all_closed.set()

    async def close(self, grace_s: float) -> None:
        """Stop listening; let busy connections finish their response; abort after the grace."""
        self.closing = True
        if self._server is not None:
            self._server.close()
        if not self.connections:
            self._all_closed.set()
        for connection in list(self.connections):
            connection.close_when_idle()
        try:
            await asyncio.wait_for(self._all_closed.wait(), grace_s)
        except TimeoutError:
            for connection in list(self.connections):
                connection.abort()
        if self._server is not None:
            await self._server.wait_closed()
