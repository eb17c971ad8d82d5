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

Two RPCs that Triton adds to the service (`grpc_service.proto`, read from Triton's own proto
for them only, so `tritonclient.grpc`'s stream and config calls work unchanged):
- `ModelConfig`: the model configuration `GET /v2/models/{m}/config` answers, as Triton's
  `ModelConfig` message;
- `ModelStreamInfer`: each message on the stream is one inference through the same admission,
  decode and batcher as `ModelInfer`; the requests of one stream run concurrently (so they batch
  together) and each answer is written as it completes, carrying the request's `id` (clients
  match answers by it, as with Triton). A request that fails is answered on the stream with
  `error_message` (what Triton does; the stream stays open), never by ending the stream. At
  most MAX_STREAM_IN_FLIGHT requests of one stream are in progress: past that the server stops
  reading the stream, and HTTP/2 flow control holds the client. A full queue is answered on the
  stream after QUEUE_FULL_HOLD_S, during which the stream is not read either.

Health (`grpc.health.v1.Health/Check`, what Kubernetes' gRPC probes call): SERVING while the
model is ready and not draining, for the service "" and `inference.GRPCInferenceService`;
NOT_FOUND for any other service name, as the health protocol says. Watch and List are not
served (UNIMPLEMENTED): probes only call Check.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final, NoReturn, TypeAlias, TypeVar

import grpc
import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from inferstack import __version__
from inferstack.contract import metrics as names
from inferstack.contract.pods import GRPC_HEALTH_SERVICE
from inferstack.runtime.grpc.generated import grpc_service_pb2 as triton
from inferstack.runtime.grpc.generated import health_pb2, model_config_pb2
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
MAX_STREAM_IN_FLIGHT: Final = 1024
"""Requests of one ModelStreamInfer stream in progress at once; past it the stream is not read."""
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
Context: TypeAlias = "grpc.aio.ServicerContext[bytes, bytes]"
Handler = Callable[[bytes], Awaitable[bytes]]


class Refused(Exception):
    """A call answered with an error: its gRPC code, message and trailing metadata."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        trailing: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.trailing = trailing


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
            async def call(data: bytes, context: Context) -> bytes:
                try:
                    return await handler(data)
                except Refused as refused:
                    await context.abort(refused.code, refused.message, refused.trailing)
                    raise AssertionError("grpc's abort returned") from None  # It raises.

            return grpc.unary_unary_rpc_method_handler(call)

        v2 = {
            "ServerLive": unary(self.server_live),
            "ServerReady": unary(self.server_ready),
            "ServerMetadata": unary(self.server_metadata),
            "ModelReady": unary(self.model_ready),
            "ModelMetadata": unary(self.model_metadata),
            "ModelConfig": unary(self.model_config),
            "ModelInfer": unary(self.model_infer),
            "ModelStreamInfer": grpc.stream_stream_rpc_method_handler(self.model_stream_infer),
        }
        health = {"Check": unary(self.health_check)}
        return [
            grpc.method_handlers_generic_handler(SERVICE, v2),
            grpc.method_handlers_generic_handler(HEALTH_SERVICE, health),
        ]

    async def server_live(self, data: bytes) -> bytes:
        """Live while the process answers."""
        await self._parse(pb.ServerLiveRequest, data)
        return _serialized(pb.ServerLiveResponse(live=True))

    async def server_ready(self, data: bytes) -> bytes:
        """Ready once the model is warm, until draining starts."""
        await self._parse(pb.ServerReadyRequest, data)
        return _serialized(pb.ServerReadyResponse(ready=self.app.ready))

    async def server_metadata(self, data: bytes) -> bytes:
        """The server's name, version and protocol extensions (as `GET /v2`)."""
        await self._parse(pb.ServerMetadataRequest, data)
        return _serialized(
            pb.ServerMetadataResponse(
                name=SERVER_NAME, version=__version__, extensions=list(EXTENSIONS)
            )
        )

    async def model_ready(self, data: bytes) -> bytes:
        """Whether the named model is ready (NOT_FOUND for another model or version)."""
        request = await self._parse(pb.ModelReadyRequest, data)
        await self._check_model(request.name, request.version)
        return _serialized(pb.ModelReadyResponse(ready=self.app.ready))

    async def model_metadata(self, data: bytes) -> bytes:
        """The model's inputs and outputs (as `GET /v2/models/{m}`)."""
        request = await self._parse(pb.ModelMetadataRequest, data)
        await self._check_model(request.name, request.version)
        served = self.app.served
        if served is None:
            _refuse(503, f"model {self.app.model_name!r} is still loading", "1")
        return _serialized(
            metadata_message(
                self.app.model_name,
                MODEL_VERSION,
                served.model.platform,
                served.model.inputs,
                served.model.outputs,
            )
        )

    async def model_config(self, data: bytes) -> bytes:
        """Triton's model configuration (what `GET /v2/models/{m}/config` answers)."""
        request = await self._parse(triton.ModelConfigRequest, data)
        await self._check_model(request.name, request.version)
        answer = await self.app.handle("GET", f"/v2/models/{self.app.model_name}/config", {}, b"")
        if answer.status != 200:
            await _answer_error(answer)
        config = json_format.Parse(answer.body, model_config_pb2.ModelConfig())
        return _serialized(triton.ModelConfigResponse(config=config))

    async def model_infer(self, data: bytes) -> bytes:
        """One inference: admitted, decoded, batched and answered as the HTTP path does."""
        refusal = self.app.admit(self._infer_path, {})
        if refusal is not None:
            await _answer_error(refusal)
        return await self._infer(data)

    async def _infer(self, data: bytes) -> bytes:
        """An admitted inference: the serialized `ModelInferResponse`, or Refused."""
        request = await self._parse(pb.ModelInferRequest, data)
        await self._check_model(request.model_name, request.model_version)
        try:
            body, header_length = request_body(request)
        except ProtocolError as error:
            _refuse(error.status, error.message)
        answer = await self.app.handle(
            "POST", self._infer_path, {HEADER_LENGTH_HEADER: str(header_length)}, body
        )
        if answer.status != 200:
            await _answer_error(answer)
        header = dict(answer.headers).get(HEADER_LENGTH_HEADER)
        return _serialized(response_message(answer.body, None if header is None else int(header)))

    async def model_stream_infer(self, requests: AsyncIterator[bytes], context: Context) -> None:
        """Triton's bidirectional stream: each message one inference, answered as it completes
        (see the module docstring for the order, the errors and the bounds)."""
        writing = asyncio.Lock()
        room = asyncio.Semaphore(MAX_STREAM_IN_FLIGHT)
        running: set[asyncio.Task[None]] = set()

        async def write(response: triton.ModelStreamInferResponse) -> None:
            async with writing:
                await context.write(_serialized(response))

        async def answer(data: bytes) -> None:
            try:
                response = triton.ModelStreamInferResponse()
                try:
                    response.infer_response.MergeFromString(await self._infer(data))
                except Refused as refused:
                    response = _stream_error(refused, data)
                await write(response)
            finally:
                room.release()

        try:
            async for data in requests:
                refusal = self.app.admit(self._infer_path, {})
                if refusal is not None:
                    try:
                        await _answer_error(refusal)  # Holds a queue-full refusal first.
                    except Refused as refused:
                        await write(_stream_error(refused, data))
                    continue
                await room.acquire()
                task = asyncio.create_task(answer(data))
                running.add(task)
                task.add_done_callback(running.discard)
            if running:
                await asyncio.gather(*running)
        finally:
            for task in running:  # The client went away: the batcher drops what has not run.
                task.cancel()

    async def health_check(self, data: bytes) -> bytes:
        """SERVING while ready; NOT_FOUND for a service this server does not have."""
        request = await self._parse(health_pb2.HealthCheckRequest, data)
        if request.service not in ("", SERVICE):
            raise Refused(
                grpc.StatusCode.NOT_FOUND,
                f"unknown service {request.service!r}; ask for '' or {SERVICE!r}",
            )
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if self.app.ready
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        return _serialized(health_pb2.HealthCheckResponse(status=status))

    async def _parse(self, kind: type[_M], data: bytes) -> _M:
        try:
            message: _M = kind.FromString(data)
        except (DecodeError, ValueError, RuntimeError) as error:
            self.app.metrics.refuse(names.REFUSED_MALFORMED)
            raise Refused(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the message is not a valid {kind.DESCRIPTOR.full_name} ({error}); "
                "generate the client from the KServe v2 proto",
            ) from None
        return message

    async def _check_model(self, name: str, version: str) -> None:
        if name != self.app.model_name:
            raise Refused(
                grpc.StatusCode.NOT_FOUND,
                f"unknown model {name!r}; this server serves {self.app.model_name!r}",
            )
        if version not in ("", MODEL_VERSION):
            raise Refused(
                grpc.StatusCode.NOT_FOUND,
                f"model {name!r} has only version {MODEL_VERSION}; send an empty model_version",
            )


async def _answer_error(answer: Response) -> NoReturn:
    """Raise the gRPC form of a refusal the routes answered (held as HTTP holds it)."""
    if answer.hold_s:
        await asyncio.sleep(answer.hold_s)
    try:
        message = str(orjson.loads(answer.body)["error"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        message = answer.body.decode(errors="replace")
    _refuse(answer.status, message, dict(answer.headers).get("retry-after"))


def _refuse(http_status: int, message: str, retry_after: str | None = None) -> NoReturn:
    trailing: tuple[tuple[str, str], ...] = ()
    if retry_after is not None:
        # Seconds for people and scripts; milliseconds for grpc's own retry policy (gRFC A6).
        pushback = str(int(float(retry_after) * 1000))
        trailing = (("retry-after", retry_after), ("grpc-retry-pushback-ms", pushback))
    raise Refused(status_code(http_status), message, trailing)


def _stream_error(refused: Refused, data: bytes) -> triton.ModelStreamInferResponse:
    """A refusal as a stream answer: Triton's `error_message`, and the request's id when the
    message parses, so that the client can tell which request failed."""
    response = triton.ModelStreamInferResponse(error_message=refused.message)
    try:
        request_id = pb.ModelInferRequest.FromString(data).id
    except (DecodeError, ValueError, RuntimeError):
        return response
    if request_id:
        response.infer_response.id = request_id
    return response


def _serialized(message: Message) -> bytes:
    data: bytes = message.SerializeToString()
    return data
