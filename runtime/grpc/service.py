"""The KServe v2 `inference.GRPCInferenceService` and `grpc.health.v1.Health`, over `InferenceApp`.

Every inference goes through the HTTP path's own `InferenceApp`: the same admission (`admit`, a
full queue held QUEUE_FULL_HOLD_S and refused, draining refused), the same decode
(`protocol.decode_checked`, bodies from LARGE_BODY_BYTES on in the helper process), the same
batcher, metrics and error messages. `translate.py` turns the message into the binary-extension
body that path takes, and its answer back into a message. HTTP statuses map to gRPC codes as
Triton's do: 400 INVALID_ARGUMENT, 404 NOT_FOUND, 429 RESOURCE_EXHAUSTED, 503 UNAVAILABLE,
500 INTERNAL (the model or the server failed, never the request). A Retry-After becomes the
trailing metadata `retry-after` (seconds) and `grpc-retry-pushback-ms` (gRFC A6: a client with a
retry policy waits that long).

Messages are parsed here, not by grpc: grpc answers a message that does not parse with INTERNAL
("Exception deserializing request!"), and bad input must never look like a server fault.

Health (`grpc.health.v1.Health/Check`, what Kubernetes' gRPC probes call): SERVING while the
model is ready and not draining, for the service "" and `inference.GRPCInferenceService`;
NOT_FOUND for any other service name, as the health protocol says. Watch and List are not
served (UNIMPLEMENTED): probes only call Check.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Final, NoReturn, TypeVar

import grpc
import orjson
from google.protobuf.message import DecodeError, Message

from inferstack import __version__
from inferstack.contract import metrics as names
from inferstack.contract.pods import GRPC_HEALTH_SERVICE
from inferstack.runtime.grpc.generated import health_pb2
from inferstack.runtime.grpc.generated import open_inference_grpc_pb2 as pb
from inferstack.runtime.grpc.translate import metadata_message, request_body, response_message
from inferstack.runtime.protocol import HEADER_LENGTH_HEADER, ProtocolError
from inferstack.runtime.server.routes import (
    EXTENSIONS,
    MODEL_VERSION,
    SERVER_NAME,
    InferenceApp,
    Response,
)

log = logging.getLogger("inferstack.runtime.grpc")

SERVICE: Final = GRPC_HEALTH_SERVICE
"""The v2 service's full name (the proto's package and service), what health checks name."""
HEALTH_SERVICE: Final = "grpc.health.v1.Health"
_STATUS_CODES: Final = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    500: grpc.StatusCode.INTERNAL,
    503: grpc.StatusCode.UNAVAILABLE,
}
_M = TypeVar("_M", bound=Message)
Handler = Callable[[bytes, grpc.aio.ServicerContext[bytes, bytes]], Awaitable[bytes]]


def status_code(http_status: int) -> grpc.StatusCode:
    """The gRPC code of an HTTP status the routes answer (UNKNOWN for one not listed)."""
    return _STATUS_CODES.get(http_status, grpc.StatusCode.UNKNOWN)


class InferenceService:
    """The RPC handlers of both services, for one `InferenceApp`."""

    def __init__(self, app: InferenceApp) -> None:
        self.app = app
        self._infer_path = f"/v2/models/{app.model_name}/infer"

    def handlers(self) -> list[grpc.GenericRpcHandler]:
        """The generic handlers to register: bytes in, bytes out, parsing done here."""

        def unary(handler: Handler) -> grpc.RpcMethodHandler[bytes, bytes]:
            return grpc.unary_unary_rpc_method_handler(handler)

        v2 = {
            "ServerLive": unary(self.server_live),
            "ServerReady": unary(self.server_ready),
            "ServerMetadata": unary(self.server_metadata),
            "ModelReady": unary(self.model_ready),
            "ModelMetadata": unary(self.model_metadata),
            "ModelInfer": unary(self.model_infer),
        }
        health = {"Check": unary(self.health_check)}
        return [
            grpc.method_handlers_generic_handler(SERVICE, v2),
            grpc.method_handlers_generic_handler(HEALTH_SERVICE, health),
        ]

    async def server_live(
        self, data: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> bytes:
        """Live while the process answers."""
        await self._parse(pb.ServerLiveRequest, data, context)
        return _serialized(pb.ServerLiveResponse(live=True))

    async def server_ready(
        self, data: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> bytes:
        """Ready once the model is warm, until draining starts."""
        await self._parse(pb.ServerReadyRequest, data, context)
        return _serialized(pb.ServerReadyResponse(ready=self.app.ready))

    async def server_metadata(
        self, data: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> bytes:
        """The server's name, version and protocol extensions (as `GET /v2`)."""
        await self._parse(pb.ServerMetadataRequest, data, context)
        return _serialized(
            pb.ServerMetadataResponse(
                name=SERVER_NAME, version=__version__, extensions=list(EXTENSIONS)
            )
        )

    async def model_ready(
        self, data: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> bytes:
        """Whether the named model is ready (NOT_FOUND for another model or version)."""
        request = await self._parse(pb.ModelReadyRequest, data, context)
        await self._check_model(request.name, request.version, context)
        return _serialized(pb.ModelReadyResponse(ready=self.app.ready))

    async def model_metadata(
        self, data: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> bytes:
        """The model's inputs and outputs (as `GET /v2/models/{m}`)."""
        request = await self._parse(pb.ModelMetadataRequest, data, context)
        await self._check_model(request.name, request.version, context)
        served = self.app.served
        if served is None:
            await _abort(context, 503, f"model {self.app.model_name!r} is still loading", "1")
        return _serialized(
            metadata_message(
                self.app.model_name,
                MODEL_VERSION,
                served.model.platform,
                served.model.inputs,
                served.model.outputs,
            )
        )

    async def model_infer(
        self, data: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> bytes:
        """One inference: admitted, decoded, batched and answered as the HTTP path does."""
        refusal = self.app.admit(self._infer_path, {})
        if refusal is not None:
            await _answer_error(context, refusal)
        request = await self._parse(pb.ModelInferRequest, data, context)
        await self._check_model(request.model_name, request.model_version, context)
        try:
            body, header_length = request_body(request)
        except ProtocolError as error:
            await _abort(context, error.status, error.message)
        answer = await self.app.handle(
            "POST", self._infer_path, {HEADER_LENGTH_HEADER: str(header_length)}, body
        )
        if answer.status != 200:
            await _answer_error(context, answer)
        header = dict(answer.headers).get(HEADER_LENGTH_HEADER)
        return _serialized(response_message(answer.body, None if header is None else int(header)))

    async def health_check(
        self, data: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> bytes:
        """SERVING while ready; NOT_FOUND for a service this server does not have."""
        request = await self._parse(health_pb2.HealthCheckRequest, data, context)
        if request.service not in ("", SERVICE):
            await _fail(
                context,
                grpc.StatusCode.NOT_FOUND,
                f"unknown service {request.service!r}; ask for '' or {SERVICE!r}",
            )
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if self.app.ready
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        return _serialized(health_pb2.HealthCheckResponse(status=status))

    async def _parse(
        self, kind: type[_M], data: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> _M:
        try:
            message: _M = kind.FromString(data)
        except (DecodeError, ValueError, RuntimeError) as error:
            self.app.metrics.refuse(names.REFUSED_MALFORMED)
            await _fail(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the message is not a valid {kind.DESCRIPTOR.full_name} ({error}); "
                "generate the client from the KServe v2 proto",
            )
        return message

    async def _check_model(
        self, name: str, version: str, context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> None:
        if name != self.app.model_name:
            await _fail(
                context,
                grpc.StatusCode.NOT_FOUND,
                f"unknown model {name!r}; this server serves {self.app.model_name!r}",
            )
        if version not in ("", MODEL_VERSION):
            await _fail(
                context,
                grpc.StatusCode.NOT_FOUND,
                f"model {name!r} has only version {MODEL_VERSION}; send an empty model_version",
            )


async def _answer_error(
    context: grpc.aio.ServicerContext[bytes, bytes], answer: Response
) -> NoReturn:
    """Abort with the gRPC form of a refusal the routes answered (held as HTTP holds it)."""
    if answer.hold_s:
        await asyncio.sleep(answer.hold_s)
    try:
        message = str(orjson.loads(answer.body)["error"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        message = answer.body.decode(errors="replace")
    await _abort(context, answer.status, message, dict(answer.headers).get("retry-after"))


async def _abort(
    context: grpc.aio.ServicerContext[bytes, bytes],
    http_status: int,
    message: str,
    retry_after: str | None = None,
) -> NoReturn:
    trailing: tuple[tuple[str, str], ...] = ()
    if retry_after is not None:
        # Seconds for people and scripts; milliseconds for grpc's own retry policy (gRFC A6).
        pushback = str(int(float(retry_after) * 1000))
        trailing = (("retry-after", retry_after), ("grpc-retry-pushback-ms", pushback))
    await _fail(context, status_code(http_status), message, trailing)


async def _fail(
    context: grpc.aio.ServicerContext[bytes, bytes],
    code: grpc.StatusCode,
    message: str,
    trailing: tuple[tuple[str, str], ...] = (),
) -> NoReturn:
    await context.abort(code, message, trailing)
    raise AssertionError("grpc's abort returned")  # It raises AbortError: never reached.


def _serialized(message: Message) -> bytes:
    data: bytes = message.SerializeToString()
    return data
