"""HTTP/1.1 for the v2 endpoints: httptools parses, an asyncio protocol answers.

Why not an ASGI server: the v2 routes (`routes.py`) need a method, a path, the headers and the
whole body, and they answer with one buffer. An ASGI server spends per-request Python on what
they do not use (the scope dict, receive/send messages, response header checks); measured with
the same `InferenceApp` and wrk (`benchmarks/http_stacks.py`, numbers in the documentation's
runtime performance page, `docs/runtime/performance.md`), this protocol answered more requests
per second than uvicorn with httptools and than aiohttp, and that CPU is what the model shares
the machine with.

What it does, per connection:
- requests are answered one at a time, in arrival order (pipelined requests stay in order);
  parsing pauses while too many are waiting;
- keep-alive as the client asks (`Connection`, HTTP/1.0 rules), closed after `keep_alive_s` idle;
- `Expect: 100-continue` is answered before the body is read;
- admission is decided when the headers are complete (`InferenceApp.admit`): a request the
  server would refuse (a full queue: 429, loading or draining: 503) is answered without its body
  being kept or decoded, and the connection stays usable;
- a body over `max_request_bytes` (declared or actual) gets 413 and the connection closes
  after a lingering half-close, so the client reads the answer instead of a reset;
- malformed HTTP (HTTP/0.9 included) gets 400 and the connection closes, and so does an
  Upgrade or CONNECT request that declares a body (its body is never parsed as a request);
  headers over `max_header_bytes` get 431; a client that closes its side in the middle of a
  request (a truncated body) gets 400 before the close;
- slow clients: the request line and headers must arrive within `header_timeout_s` of the
  request's first byte, and after that same allowance the body must average at least
  `min_body_rate` bytes/s; either miss gets 408 (bytes trickled in do not restart a clock);
- at most `max_connections` are open: a new one past the cap evicts the connection that has
  spent longest on an incomplete request head (else the longest idle one), and when every
  connection is busy it is refused with 503 and Retry-After;
- a client that goes away cancels its request (the batcher drops it if it has not run yet).

Shutdown, in two steps, so that no request sent on an open connection goes unanswered:
- `begin_drain`: every answer from now on carries `Connection: close` and its connection then
  closes (after a lingering half-close); idle connections are left to their idle timer, because
  closing an idle keep-alive connection races with a request the client may be sending on it;
- `close`: stop listening, after answering every connection still in the accept backlog with
  503 and `Connection: close` (closing the socket would reset them); connections finish their
  current answer; idle ones close on their idle timer; whatever is left is aborted after the
  grace.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import socket
from collections import deque
from dataclasses import dataclass
from http import HTTPStatus
from typing import Final, cast
from urllib.parse import unquote

import httptools
from typing_extensions import override

from inferstack.contract import metrics as names
from inferstack.runtime.protocol import error_body
from inferstack.runtime.server.routes import InferenceApp, Response

# The name the logger had before the module moved into server/: log filters match on it.
log = logging.getLogger("inferstack.runtime.http")

MAX_PIPELINED: Final = 32
"""Requests one connection may have waiting before its reads pause."""
LINGER_S: Final = 2.0
"""How long a connection closing after an error keeps discarding the client's unread body."""
REFUSAL_LINGER_S: Final = 0.5
"""How long a connection refused at the cap keeps discarding its request before it closes."""
MAX_REFUSING: Final = 32
"""Refused connections lingering at once; past this a refused connection is dropped at once, so
refusals cannot exhaust descriptors themselves."""
RESERVED_DESCRIPTORS: Final = 128
"""Descriptors kept free of connections (model pipes, log files, refusals) when the connection
cap is derived from RLIMIT_NOFILE."""
MAX_SWEEP_S: Final = 1.0
"""Longest interval between checks of the header and body deadlines."""
_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
_REASONS: Final = {status.value: status.phrase for status in HTTPStatus}


def descriptor_connection_cap() -> int:
    """A connection cap that leaves RESERVED_DESCRIPTORS of the process's descriptor limit free."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1 << 20
    return max(16, soft - RESERVED_DESCRIPTORS)


@dataclass(frozen=True)
class HttpLimits:
    """Per-connection limits, and the cap on open connections (0: from RLIMIT_NOFILE)."""

    max_request_bytes: int = 64 * 1024 * 1024
    max_header_bytes: int = 64 * 1024
    keep_alive_s: float = 5.0
    header_timeout_s: float = 10.0
    min_body_rate: float = 16 * 1024
    """Bytes per second a body must average after `header_timeout_s`; 0 disables the floor."""
    max_connections: int = 0
    max_body_bytes_in_flight: int = 0
    """Request body bytes held at once, all connections together, from the head (the declared
    Content-Length is reserved then; a chunked body is charged as it arrives) until the answer
    is written; past it a body is refused with 503 and Retry-After. 0: no budget."""


@dataclass
class _Request:
    method: str
    path: str
    headers: dict[str, str]
    keep_alive: bool
    body: bytes = b""
    refusal: Response | None = None
    """Set when the request is answered without reaching the app's handler."""
    linger: bool = False
    """The rest of the connection's input is unread: close with a lingering half-close."""
    charged: int = 0
    """Bytes of the in-flight body budget this request holds until it is answered."""


def encode_response(response: Response, *, head_only: bool, keep_alive: bool) -> bytes:
    """The status line, headers and body of `response` as one buffer."""
    # One f-string and appends rather than a list joined: this runs for every answer.
    head = (
        f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Unknown')}\r\n"
        f"content-type: {response.content_type}\r\ncontent-length: {len(response.body)}\r\n"
    )
    for name, value in response.headers:
        head += f"{name}: {value}\r\n"
    if not keep_alive:
        head += "connection: close\r\n"
    encoded = (head + "\r\n").encode("latin-1")
    return encoded if head_only else encoded + response.body


def _header_dict(pairs: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Headers by lower-case name; repeated ones joined with commas (RFC 9110 5.3)."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in pairs:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def _upgrade_with_body(method: bytes, headers: dict[str, str]) -> bool:
    """A protocol switch (CONNECT, or `Connection: upgrade` with `Upgrade`) that declares a body."""
    if method != b"CONNECT" and "upgrade" not in headers:
        return False  # Neither kind of switch: every request but a few comes this way.
    tokens = {token.strip().lower() for token in headers.get("connection", "").split(",")}
    switching = method == b"CONNECT" or ("upgrade" in tokens and "upgrade" in headers)
    declared = headers.get("content-length", "0").strip()
    return switching and ("transfer-encoding" in headers or declared != "0")


def _refusal(status: int, message: str, *headers: tuple[str, str]) -> Response:
    return Response(status, error_body(message), headers=headers)


class HttpConnection(asyncio.Protocol):
    """One client connection (see the module docstring for what it guarantees)."""

    def __init__(self, server: HttpServer) -> None:
        self._server = server
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
        self._peer_eof = False
        self._idle_timer: asyncio.TimerHandle | None = None
        self.last_active = self._loop.time()
        """When the connection last became idle (or opened): the eviction order of idle ones."""
        # The request being parsed.
        self.in_message = False
        self.head_done = False
        self.message_started = 0.0
        self._url = b""
        self._path = ""
        self._header_pairs: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0
        self._headers: dict[str, str] = {}
        self._early: Response | None = None
        self._body: list[bytes] = []
        self._body_bytes = 0
        self._body_started = 0.0
        self._charged = 0
        """Bytes of the in-flight body budget the request being parsed holds."""

    @property
    def _limits(self) -> HttpLimits:
        return self._server.limits

    # asyncio.Protocol ----------------------------------------------------------------------

    @override
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        if self._server.closing:  # Taken from the accept backlog as the server stopped listening.
            self._refuse_connection(
                "the server is shutting down; retry shortly or on another replica", capped=False
            )
            return
        if not self._server.admit_connection(self):
            self._server.app.metrics.refuse(names.REFUSED_CONNECTION_CAP)
            self._refuse_connection(
                f"the server holds its limit of {self._server.max_connections} open "
                "connections; retry shortly or on another replica"
            )
            return
        self._arm_idle_timer()

    @override
    def connection_lost(self, exc: Exception | None) -> None:
        self._server.forget(self)
        self._uncharge()
        for request in self._requests:
            self._server.release_body(request.charged)
            request.charged = 0
        self._closing = True
        self._cancel_idle_timer()
        self._writable.set()
        if self._responder is not None:
            self._responder.cancel()  # Nobody is left to answer; the batcher drops the request.

    @override
    def eof_received(self) -> bool:
        """The client closed its side. Mid-request, it gets a 400 (it may still be reading);
        otherwise the connection closes, which cancels what it was waiting for: a half-close
        and a client that went away look the same here, and the second is the common one."""
        self._peer_eof = True
        if self._closing or self._discarding or not self.in_message:
            return False
        received = f"after {self._body_bytes} body bytes" if self.head_done else "inside its head"
        self._refuse_now(400, f"the connection was closed {received}; send the whole request")
        return True

    @override
    def data_received(self, data: bytes) -> None:
        if self._discarding:
            return
        # The idle timer is stopped by a request beginning (`on_message_begin`), not by bytes:
        # the parser skips empty lines before a request line, and CRLF every few seconds must
        # not keep a connection open past the idle timeout.
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
                self._server.app.metrics.refuse(names.REFUSED_MALFORMED)
                self._refuse_now(400, f"malformed HTTP request ({error}); send HTTP/1.1")
            break
        if (
            self.in_message
            and not self.head_done
            and not self._discarding
            and data.endswith(b"\n")
            and self._url
            and self._parser.get_http_version() == "0.0"
        ):
            # A request line ended without a version: HTTP/0.9, which would wait for headers
            # that never come.
            self._server.app.metrics.refuse(names.REFUSED_MALFORMED)
            self._refuse_now(400, "HTTP/0.9 requests are not supported; send HTTP/1.1")
        if self.idle and not self.in_message and not self._closing and self._idle_timer is None:
            self._arm_idle_timer()

    @override
    def pause_writing(self) -> None:
        self._writable.clear()

    @override
    def resume_writing(self) -> None:
        self._writable.set()

    # httptools callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        """A new request starts: forget what the previous one left; the idle timer stops."""
        self._cancel_idle_timer()
        self.in_message = True
        self.head_done = False
        self.message_started = self._loop.time()
        self._url = b""
        self._header_pairs = []
        self._header_bytes = 0
        self._headers = {}
        self._early = None
        self._body = []
        self._body_bytes = 0
        self._uncharge()

    def on_url(self, url: bytes) -> None:
        """A piece of the request target, counted against `max_header_bytes`."""
        self._header_bytes += len(url)
        if self._header_bytes > self._limits.max_header_bytes:
            self._refuse_header_size()
            return
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        """One header, counted against `max_header_bytes`."""
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > self._limits.max_header_bytes:
            self._refuse_header_size()
            return
        self._header_pairs.append((name, value))

    def on_headers_complete(self) -> None:
        """The head is in: refuse what is too large or not HTTP/1.x, decide admission
        (`InferenceApp.admit`), answer `Expect: 100-continue`."""
        if self._discarding:
            return
        self.head_done = True
        self._body_started = self._loop.time()
        if self._parser.get_http_version() == "0.9":
            self._server.app.metrics.refuse(names.REFUSED_MALFORMED)
            self._refuse_now(400, "HTTP/0.9 requests are not supported; send HTTP/1.1")
            return
        try:
            raw_path = httptools.parse_url(self._url).path.decode("latin-1")
        except httptools.HttpParserInvalidURLError:
            self._refuse_now(400, "the request target is not a valid URL path; send /v2/...")
            return
        self._path = unquote(raw_path) if "%" in raw_path else raw_path
        headers = _header_dict(self._header_pairs)
        if _upgrade_with_body(self._parser.get_method(), headers):
            # The parser stops at the end of an upgrade request's head and would read its body
            # as the next request: a request a proxy in front forwarded as body (smuggling).
            self._server.app.metrics.refuse(names.REFUSED_MALFORMED)
            self._refuse_now(
                400, "an Upgrade or CONNECT request may not carry a body; send it without Upgrade"
            )
            return
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._limits.max_request_bytes:
            self._refuse_now(413, self._too_large_message())
            return
        expects_continue = headers.get("expect", "").lower() == "100-continue"
        if self._parser.get_method() == b"POST":
            early = self._server.app.admit(self._path, headers)
            if early is None and not self._reserve(declared):
                early = self._over_budget()
            if early is not None:
                if expects_continue:
                    # The client waits for a 100 before it sends the body: answer now, close.
                    self._refuse(early)
                    return
                self._early = early  # Answered when the (discarded) body has arrived.
        if expects_continue and self._early is None:
            # Interim answers keep request order too: owed until earlier answers are written.
            if self.idle:
                self._write(_CONTINUE)
            else:
                self._continue_owed = True
        self._headers = headers

    def on_body(self, chunk: bytes) -> None:
        """A piece of the body: refused past `max_request_bytes`, dropped when already answered."""
        self._continue_owed = False  # The client did not wait for it.
        if self._discarding:
            return
        self._body_bytes += len(chunk)
        if self._body_bytes > self._limits.max_request_bytes:
            self._refuse_now(413, self._too_large_message())
            return
        if self._early is None:
            if "content-length" not in self._headers and not self._reserve(str(len(chunk))):
                # A chunked body past the budget: drop what was kept, discard the rest.
                self._body = []
                self._uncharge()
                self._early = self._over_budget()
                return
            self._body.append(chunk)

    def on_message_complete(self) -> None:
        """The request is whole: queue it to be answered in arrival order."""
        self.in_message = False
        self._continue_owed = False
        if self._discarding:
            return
        method = self._parser.get_method().decode("latin-1")
        keep_alive = self._parser.should_keep_alive()
        if self._early is not None:
            self._uncharge()
            self._enqueue(_Request(method, self._path, self._headers, keep_alive, b"", self._early))
            return
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self._body = []
        request = _Request(method, self._path, self._headers, keep_alive, body)
        request.charged, self._charged = self._charged, 0
        self._enqueue(request)

    # Deadlines and eviction ----------------------------------------------------------------

    def check_deadlines(self, now: float) -> None:
        """Refuse a request whose head or body is arriving too slowly (the server's sweep)."""
        if not self.in_message or self._discarding or self._closing:
            return
        limits = self._limits
        if not self.head_done:
            if now - self.message_started > limits.header_timeout_s:
                self._server.app.metrics.refuse(names.REFUSED_HEADER_TIMEOUT)
                self._refuse_now(
                    408,
                    f"the request line and headers did not arrive within "
                    f"{limits.header_timeout_s:g} s; send them at once",
                )
            return
        if limits.min_body_rate <= 0 or not self._reading or self._continue_owed:
            return  # Not the client's fault while this side holds the body back.
        elapsed = now - self._body_started - limits.header_timeout_s
        if elapsed > 0 and self._body_bytes < limits.min_body_rate * elapsed:
            self._server.app.metrics.refuse(names.REFUSED_BODY_RATE)
            self._refuse_now(
                408,
                f"the request body arrived slower than {limits.min_body_rate:g} bytes/s "
                f"({self._body_bytes} bytes so far); send it at once",
            )

    @property
    def evictable_head(self) -> bool:
        """Waiting on an incomplete request head: the first to go when the cap is reached."""
        return self.in_message and not self.head_done and not self._discarding

    @property
    def evictable_idle(self) -> bool:
        """Idle between requests."""
        return self.idle and not self.in_message and not self._closing

    def evict(self) -> None:
        """Make room for a new connection: answer 408 if mid-head, then close at once."""
        self._server.app.metrics.refuse(names.REFUSED_EVICTED)
        self._server.forget(self)
        if self.in_message and self._transport is not None:
            self._transport.write(
                encode_response(
                    _refusal(
                        408,
                        "the server is at its connection limit and this request head was "
                        "the slowest; send the request line and headers at once",
                    ),
                    head_only=False,
                    keep_alive=False,
                )
            )
        self._close()

    def _refuse_connection(self, message: str, *, capped: bool = True) -> None:
        """Past the cap with nobody to evict, or closing: 503, a short linger, close.

        `capped`: at most MAX_REFUSING linger at once, the rest are dropped. The accept backlog
        taken at close is bounded by the listen backlog instead, and each of those clients has
        sent a request: dropping it would reset the connection under it.
        """
        self._closing = True
        self._discarding = True
        transport = self._transport
        assert transport is not None
        too_many = capped and self._server.refusing >= MAX_REFUSING
        if too_many or not transport.can_write_eof():
            transport.abort()
            return
        self._server.refusing += 1
        transport.write(
            encode_response(
                _refusal(503, message, ("retry-after", "1")), head_only=False, keep_alive=False
            )
        )
        transport.write_eof()
        self._loop.call_later(REFUSAL_LINGER_S, self._end_refusal, transport)

    def _end_refusal(self, transport: asyncio.Transport) -> None:
        self._server.refusing -= 1
        transport.close()

    # The in-flight body budget ---------------------------------------------------------------

    def _reserve(self, declared: str) -> bool:
        """Charge `declared` body bytes to this request; False when the budget has no room."""
        size = int(declared) if declared.isdigit() else 0
        if not self._server.reserve_body(size):
            return False
        self._charged += size
        return True

    def _uncharge(self) -> None:
        self._server.release_body(self._charged)
        self._charged = 0

    def _over_budget(self) -> Response:
        self._server.app.metrics.count("shed")
        return _refusal(
            503,
            f"the server holds its limit of {self._limits.max_body_bytes_in_flight} bytes of "
            "request bodies in flight; retry shortly or on another replica",
            ("retry-after", "1"),
        )

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
        self._refuse(_refusal(status, message))

    def _refuse(self, response: Response) -> None:
        self._discarding = True
        self.in_message = False
        self._uncharge()
        self._enqueue(_Request("", "", {}, False, refusal=response, linger=True))

    def _enqueue(self, request: _Request) -> None:
        self._requests.append(request)
        if len(self._requests) > MAX_PIPELINED and self._reading and self._transport is not None:
            self._transport.pause_reading()
            self._reading = False
        if self._responder is None:
            self._responder = self._loop.create_task(self._answer_in_order())

    async def _answer_in_order(self) -> None:
        while self._requests and not self._closing:
            request = self._requests.popleft()
            if not self._reading and len(self._requests) <= MAX_PIPELINED // 2:
                assert self._transport is not None
                self._transport.resume_reading()
                self._reading = True
            try:
                response = await self._response_to(request)
            finally:
                self._server.release_body(request.charged)
                request.charged = 0
            if self._closing:
                break
            # While draining, requests already waiting on this connection are still answered
            # over keep-alive; the last one says close.
            keep_alive = request.keep_alive and (not self._server.draining or bool(self._requests))
            self._write(
                encode_response(response, head_only=request.method == "HEAD", keep_alive=keep_alive)
            )
            if not keep_alive:
                self._close_after(request)
                break
            if self._continue_owed and not self._requests:
                self._continue_owed = False
                self._write(_CONTINUE)
            if not self._writable.is_set():
                await self._writable.wait()
        self._responder = None
        if self._closing:
            return
        self.last_active = self._loop.time()
        if not self.in_message:
            self._arm_idle_timer()

    async def _response_to(self, request: _Request) -> Response:
        """The refusal decided earlier, or the app's answer; after its hold, if it has one."""
        response = request.refusal
        if response is None:
            try:
                response = await self._server.app.handle(
                    request.method, request.path, request.headers, request.body
                )
            except Exception:
                log.exception("unhandled error answering %s %s", request.method, request.path)
                response = _refusal(500, "internal server error; see the server log")
        if response.hold_s:
            await asyncio.sleep(response.hold_s)
        return response

    def _close_after(self, request: _Request) -> None:
        """The answer said `Connection: close`: close, lingering if the client may still send."""
        if request.linger or (self._server.draining and request.keep_alive):
            self._linger_and_close()
        else:
            self._close()

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
        if self._peer_eof:
            transport.close()  # The client sends nothing more.
            return
        if not self._reading:
            transport.resume_reading()
            self._reading = True
        if transport.can_write_eof():
            transport.write_eof()
            self._loop.call_later(LINGER_S, transport.close)
        else:
            transport.close()

    def abort(self) -> None:
        """Drop the connection at once."""
        self._closing = True
        if self._transport is not None:
            self._transport.abort()

    def _arm_idle_timer(self) -> None:
        self._cancel_idle_timer()
        if self._server.closing and self._server.close_idle_at_once:
            self._close()
            return
        self._idle_timer = self._loop.call_later(self._limits.keep_alive_s, self._close)

    def _cancel_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None


class HttpServer:
    """Listens on a port and serves an `InferenceApp` over HTTP/1.1.

    `limits` may be replaced while serving (the server sizes the body limit once the model's
    signature is known); connections read it on every check.
    """

    def __init__(self, app: InferenceApp, limits: HttpLimits | None = None) -> None:
        self.app = app
        self.limits = limits or HttpLimits()
        self.connections: set[HttpConnection] = set()
        self.draining = False
        self.closing = False
        self.close_idle_at_once = False
        self.refusing = 0
        """Refused connections still lingering."""
        self.body_bytes = 0
        """Request body bytes in flight: reserved at the head, released once answered."""
        self._server: asyncio.Server | None = None
        self._all_closed = asyncio.Event()
        self._sweeper: asyncio.TimerHandle | None = None

    @property
    def max_connections(self) -> int:
        """The cap on open connections in force."""
        return self.limits.max_connections or descriptor_connection_cap()

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> None:
        """Open the listening socket; `reuse_port`: SO_REUSEPORT, for several acceptor processes
        on one port (the kernel spreads new connections over them)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: HttpConnection(self),
            host,
            port,
            reuse_address=True,
            reuse_port=reuse_port,
            backlog=2048,
        )
        self._sweep()

    @property
    def port(self) -> int:
        """The bound port (useful when started on port 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the server is not listening; call start() first")
        return int(self._server.sockets[0].getsockname()[1])

    def reserve_body(self, size: int) -> bool:
        """Take `size` bytes of the in-flight body budget; False (nothing taken) when full."""
        budget = self.limits.max_body_bytes_in_flight
        if size and budget and self.body_bytes + size > budget:
            return False
        self.body_bytes += size
        return True

    def release_body(self, size: int) -> None:
        """Give back bytes taken with `reserve_body`."""
        self.body_bytes -= size

    def admit_connection(self, connection: HttpConnection) -> bool:
        """Count a new connection in, evicting one past the cap; False: refuse it."""
        if len(self.connections) >= self.max_connections:
            victim = self._victim()
            if victim is None:
                return False
            victim.evict()
        self.connections.add(connection)
        self.app.metrics.open_connections.set(len(self.connections))
        return True

    def _victim(self) -> HttpConnection | None:
        heads = [c for c in self.connections if c.evictable_head]
        if heads:
            return min(heads, key=lambda c: c.message_started)
        idle = [c for c in self.connections if c.evictable_idle]
        return min(idle, key=lambda c: c.last_active) if idle else None

    def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        for connection in list(self.connections):
            connection.check_deadlines(now)
        interval = min(MAX_SWEEP_S, self.limits.header_timeout_s / 4)
        self._sweeper = loop.call_later(interval, self._sweep)

    def forget(self, connection: HttpConnection) -> None:
        """A connection ended (or was evicted)."""
        self.connections.discard(connection)
        self.app.metrics.open_connections.set(len(self.connections))
        if self.closing and not self.connections:
            self._all_closed.set()

    def begin_drain(self) -> None:
        """From now on every answer closes its connection (see the module docstring)."""
        self.draining = True

    async def close(self, grace_s: float) -> None:
        """Stop listening; let connections finish their answers and idle ones time out; abort
        what is left after the grace (at once with a grace of 0)."""
        self.draining = True
        self.closing = True
        self.close_idle_at_once = grace_s <= 0
        if self._server is not None:
            # Closing a listening socket resets the connections still in its accept backlog,
            # whose clients have sent their requests: take them first and answer each with 503
            # and `Connection: close` (a copy of the socket keeps the backlog while the server
            # stops accepting on its own).
            listeners = [_duplicate(sock) for sock in self._server.sockets]
            self._server.close()
            await self._answer_backlog(listeners)
        if not self.connections:
            self._all_closed.set()
        try:
            await asyncio.wait_for(self._all_closed.wait(), grace_s)
        except TimeoutError:
            for connection in list(self.connections):
                connection.abort()
        await self._refusals_ended(REFUSAL_LINGER_S * 2)
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            await self._server.wait_closed()

    async def _answer_backlog(self, listeners: list[socket.socket]) -> None:
        """Accept what waits in the listeners' backlogs (refused with 503 as closing), then
        close them."""
        loop = asyncio.get_running_loop()
        for listener in listeners:
            with listener:
                listener.setblocking(False)
                while True:
                    try:
                        connection, _ = listener.accept()
                    except OSError:  # BlockingIOError: the backlog is empty.
                        break
                    connection.setblocking(False)
                    try:
                        await loop.connect_accepted_socket(lambda: HttpConnection(self), connection)
                    except OSError:
                        connection.close()

    async def _refusals_ended(self, bound_s: float) -> None:
        """Let refused connections finish their linger (at most `bound_s`): closed early, a
        client's unread request would turn our 503 into a reset."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + bound_s
        while self.refusing and loop.time() < deadline:
            await asyncio.sleep(REFUSAL_LINGER_S / 10)


def _duplicate(listener: object) -> socket.socket:
    """A socket object of our own on a copy of a listening socket's descriptor."""
    sock = cast(socket.socket, listener)
    return socket.socket(sock.family, sock.type, fileno=os.dup(sock.fileno()))
