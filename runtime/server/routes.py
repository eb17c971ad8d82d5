"""The KServe v2 REST endpoints, independent of the HTTP layer that carries them.

`InferenceApp.admit(path, headers)` decides admission once a request's headers are in, and
`InferenceApp.handle(method, path, headers, body)` answers it with a `Response`; the HTTP layer
(`http.py`) calls both and writes the answer out. Keeping routing and protocol here lets the HTTP
layer be measured against others on the same endpoints: `benchmarks/http_stacks.py` serves this
app over uvicorn (raw ASGI) and aiohttp too, which is why `http.py` is the runtime's own.

Endpoints: `/v2/health/live`, `/v2/health/ready`, `/v2`, `/v2/models/{m}[/versions/{v}]`,
`.../ready`, `.../config` (Triton's model configuration, which perf_analyzer needs),
`.../infer`, and `/metrics`.

What `/infer` promises beyond the codec's checks:
- no request body can produce a 5xx: whatever the decoder raises on it is a 400 naming the
  problem (a 5xx means the server or the model failed);
- admission is decided before the body is decoded: a full queue answers 429 with Retry-After at
  the cost of a header parse, held for QUEUE_FULL_HOLD_S so that clients retrying at once cannot
  make refusals a storm;
- the body is judged by `protocol.decode_checked`, as the worker judges a queue message: FP16/FP32
  values outside the datatype's finite range are a 400 naming the tensor, NaN and Infinity
  written as such are accepted (as Triton accepts them), `"outputs": []` means every output;
- bodies from LARGE_BODY_BYTES on are decoded in a helper process, and responses with
  LARGE_RESPONSE_BYTES of JSON-written outputs or more encoded in another
  (`protocol/large_bodies.py`); bodies from OFF_LOOP_BYTES on are decoded on a thread: the event
  loop keeps answering (liveness, admission) meanwhile;
- a request the model fails on alone, while its batch-mates succeed (the batcher re-runs a
  failed batch in parts to tell), is 422 naming its input; the batch-mates get their results;
- a failure that is not the input's (out of memory, a model process that died or is gone) is
  503 with Retry-After: the batch that was in a dying process, and the requests behind it that
  never reached it (the replica is going away; another one can answer);
- no answer carries a traceback or a file path (`failures.summary`), and each model failure is
  logged once, on one line, with the request's id (the v2 `id`, else `x-request-id`, else one
  made up and sent back in `x-request-id`).

Outcomes (`inferstack_requests_total{outcome}`): `invalid` for a 4xx, `shed` for a refusal for
capacity (429, or 503 while draining), `failed` for a 5xx, beside success, timeout, cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol

from inferstack import __version__
from inferstack.runtime.batcher import (
    BatcherConfig,
    BatchTooLargeError,
    DrainingError,
    InputRejectedError,
    ModelError,
    QueueFullError,
    RequestTimeoutError,
    Tensors,
)
from inferstack.runtime.failures import TransientModelError, summary, transient
from inferstack.runtime.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from inferstack.runtime.metrics import RuntimeMetrics
from inferstack.runtime.protocol import (
    HEADER_LENGTH_HEADER,
    JSON_CONTENT_TYPE,
    EncodedBody,
    InferRequest,
    ProtocolError,
    decode_checked,
    encode_response,
    error_body,
)
from inferstack.runtime.protocol.large_bodies import (
    LARGE_BODY_BYTES,
    LARGE_RESPONSE_BYTES,
    DecoderUnavailableError,
    LargeBodyDecoder,
    json_bytes,
)
from inferstack.runtime.tensors import TensorSpec

# The name the logger had before the module moved into server/: log filters match on it.
log = logging.getLogger("inferstack.runtime.app")

SERVER_NAME: Final = "inferstack"
MODEL_VERSION: Final = "1"
EXTENSIONS: Final = ("binary_tensor_data", "model_configuration")
DRAIN_RETRY_AFTER_S: Final = 5
"""Retry-After while draining: long enough for the endpoint to leave the Service."""
QUEUE_FULL_HOLD_S: Final = 0.5
"""How long a 429 for a full queue is held before it is sent. A client that retries at once
(wrk does, and so do many retry loops) otherwise turns shedding into a storm of refusals whose
parsing takes the CPU that admitted requests need; held, each connection costs at most two
refusals a second. Retry-After still says when to come back."""
OFF_LOOP_BYTES: Final = 64 * 1024
"""Request bodies from this size on (below LARGE_BODY_BYTES) are decoded on a thread: a 64 KiB
JSON body parses in about 2 ms here, longer than the thread hop costs, and a burst of them
parsed back to back on the event loop delays every other answer, liveness included."""
REQUEST_ID_HEADER: Final = "x-request-id"
_REQUEST_ID: Final = re.compile(r"^[\w.:@/+=-]{1,128}$")
_TRITON_TYPES: Final = {
    "BOOL": "TYPE_BOOL",
    "UINT8": "TYPE_UINT8",
    "UINT16": "TYPE_UINT16",
    "UINT32": "TYPE_UINT32",
    "UINT64": "TYPE_UINT64",
    "INT8": "TYPE_INT8",
    "INT16": "TYPE_INT16",
    "INT32": "TYPE_INT32",
    "INT64": "TYPE_INT64",
    "FP16": "TYPE_FP16",
    "FP32": "TYPE_FP32",
    "FP64": "TYPE_FP64",
    "BYTES": "TYPE_STRING",
}


@dataclass(frozen=True)
class Response:
    """What an endpoint answers; the server adapter writes it out."""

    status: int
    body: bytes = b""
    content_type: str = JSON_CONTENT_TYPE
    headers: tuple[tuple[str, str], ...] = field(default=())
    hold_s: float = 0.0
    """How long the HTTP layer waits before sending it (paces clients that retry at once)."""


def _json(status: int, document: object) -> Response:
    import orjson

    return Response(status, orjson.dumps(document))


def _error(status: int, message: str, *headers: tuple[str, str]) -> Response:
    return Response(status, error_body(message), headers=headers)


class ModelUnavailableError(ModelError, TransientModelError):
    """The model process is gone and the request never reached it: 503, retry elsewhere."""


class ModelSignature(Protocol):
    """What the routes read of a model: a `LoadedModel`, or its description in an acceptor
    process of the front door (`runtime/frontdoor/`), where the model is elsewhere."""

    name: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    platform: str


class Batcher(Protocol):
    """What the server uses of a batcher: a `DynamicBatcher`, or the front door's link to the
    one batcher of the model side (`frontdoor.remote.RemoteBatcher`)."""

    @property
    def config(self) -> BatcherConfig:
        """The batching knobs."""

    @property
    def accepting(self) -> bool:
        """False once draining began."""

    @property
    def queue_depth(self) -> int:
        """Requests waiting for a batch."""

    @property
    def outstanding(self) -> int:
        """Requests admitted and not yet answered."""

    def retry_after_s(self) -> int:
        """Seconds a refused caller should wait."""

    async def submit(self, inputs: Tensors, *, timeout_s: float | None = None) -> Tensors:
        """The caller's outputs, or a `BatcherError`."""

    def stop_accepting(self) -> None:
        """Refuse new requests."""

    async def drain(self) -> None:
        """Stop admitting and wait until every admitted request is answered."""

    async def close(self) -> None:
        """Drain, then release what the batcher holds."""


@dataclass
class ServedModel:
    """A model being served: the loaded model, its batcher and its metrics."""

    model: ModelSignature
    batcher: Batcher
    metrics: RuntimeMetrics
    device_kind: str = "cpu"


class InferenceApp:
    """Routes v2 requests to one served model.

    Live as soon as it exists; ready once `served` is set (after warm-up) and until draining
    starts. The model's name is known before it loads, so model endpoints answer 503 ("still
    loading") rather than 404 during start-up.
    """

    def __init__(self, model_name: str, metrics: RuntimeMetrics) -> None:
        self.model_name = model_name
        self.metrics = metrics
        self.served: ServedModel | None = None
        self.draining = False
        self.decoder = LargeBodyDecoder()
        self._decoding = 0
        """Requests past admission whose bodies are being decoded (not yet in the queue)."""
        self._infer_paths = frozenset(
            f"/v2/models/{model_name}{version}/infer"
            for version in ("", f"/versions/{MODEL_VERSION}")
        )
        # The inference paths `handle` answers without splitting them. An empty name, or one
        # with a slash in it, splits into other parts: those paths go the long way, as before.
        fast = model_name and "/" not in model_name
        self._infer_fast = self._infer_paths if fast else frozenset[str]()

    @property
    def ready(self) -> bool:
        """Whether the server should receive traffic."""
        return self.served is not None and not self.draining and self.served.batcher.accepting

    def admit(self, path: str, headers: Mapping[str, str]) -> Response | None:
        """At header time: the answer to a POST that will be refused whatever its body says,
        or None to read the body and handle it. Cheap: no body, no decode."""
        if path not in self._infer_paths:
            return None
        served = self.served
        if served is None:
            return _error(503, f"model {self.model_name!r} is still loading", ("retry-after", "1"))
        batcher = served.batcher
        if not batcher.accepting:
            served.metrics.count("shed")
            return self._draining()
        limit = batcher.config.max_queue_size
        if batcher.queue_depth + self._decoding >= limit:
            served.metrics.count("shed")
            return self._queue_full(
                f"model {self.model_name!r} queue is full ({limit} requests); retry later",
                batcher.retry_after_s(),
            )
        return None

    @staticmethod
    def _queue_full(message: str, retry_after_s: int) -> Response:
        return Response(
            429,
            error_body(message),
            headers=(("retry-after", str(retry_after_s)),),
            hold_s=QUEUE_FULL_HOLD_S,
        )

    @staticmethod
    def _draining() -> Response:
        return _error(
            503,
            "the server is draining and accepts no new requests; retry on another replica",
            ("retry-after", str(DRAIN_RETRY_AFTER_S)),
        )

    async def handle(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> Response:
        """Answer one request. `headers` has lower-case names."""
        if method == "POST" and path in self._infer_fast:
            return await self._infer(headers, body)  # Where `_model` would take it, in one step.
        parts = [part for part in path.split("/") if part]
        if parts[:1] == ["v2"]:
            return await self._v2(method, parts[1:], headers, body)
        if parts == ["metrics"] and method == "GET":
            return Response(200, self.metrics.exposition(), METRICS_CONTENT_TYPE)
        return _error(404, f"no endpoint at {path}; the API is under /v2 and /metrics")

    async def _v2(
        self, method: str, parts: list[str], headers: Mapping[str, str], body: bytes
    ) -> Response:
        if not parts:
            return self._only_get(method) or _json(
                200, {"name": SERVER_NAME, "version": __version__, "extensions": list(EXTENSIONS)}
            )
        if parts[0] == "health" and len(parts) == 2 and parts[1] in ("live", "ready"):
            if (wrong := self._only_get(method)) is not None:
                return wrong
            if parts[1] == "live":
                return _json(200, {"live": True})
            return _json(200 if self.ready else 503, {"ready": self.ready})
        if parts[0] == "models" and len(parts) >= 2:
            return await self._model(method, parts[1], parts[2:], headers, body)
        return _error(404, f"no endpoint at /v2/{'/'.join(parts)}")

    @staticmethod
    def _only_get(method: str) -> Response | None:
        if method in ("GET", "HEAD"):
            return None
        return _error(405, f"{method} is not allowed here; use GET", ("allow", "GET"))

    async def _model(
        self, method: str, name: str, rest: list[str], headers: Mapping[str, str], body: bytes
    ) -> Response:
        if name != self.model_name:
            return _error(404, f"unknown model {name!r}; this server serves {self.model_name!r}")
        if rest[:1] == ["versions"]:
            if len(rest) < 2 or rest[1] != MODEL_VERSION:
                return _error(
                    404, f"model {name!r} has only version {MODEL_VERSION}; drop /versions/..."
                )
            rest = rest[2:]
        action = rest[0] if rest else ""
        if len(rest) > 1 or action not in ("", "ready", "config", "infer"):
            return _error(404, f"no endpoint {'/'.join(rest)!r} for model {name!r}")
        if action == "infer":
            if method != "POST":
                return _error(405, "use POST for /infer", ("allow", "POST"))
            return await self._infer(headers, body)
        if (wrong := self._only_get(method)) is not None:
            return wrong
        if action == "ready":
            return _json(200 if self.ready else 503, {"name": name, "ready": self.ready})
        served = self.served
        if served is None:
            return _error(503, f"model {name!r} is still loading", ("retry-after", "1"))
        if action == "config":
            return _json(200, self._triton_config(served))
        return _json(
            200,
            {
                "name": name,
                "versions": [MODEL_VERSION],
                "platform": served.model.platform,
                "inputs": [spec.to_json() for spec in served.model.inputs],
                "outputs": [spec.to_json() for spec in served.model.outputs],
            },
        )

    def _triton_config(self, served: ServedModel) -> dict[str, object]:
        """Triton's JSON model configuration: dims exclude the batch dimension."""
        config = served.batcher.config

        def tensors(specs: list[TensorSpec]) -> list[dict[str, object]]:
            return [
                {
                    "name": spec.name,
                    "data_type": _TRITON_TYPES[spec.datatype],
                    "dims": list(spec.shape[1:]),
                }
                for spec in specs
            ]

        return {
            "name": self.model_name,
            "platform": served.model.platform,
            "max_batch_size": config.max_batch_size,
            "input": tensors(served.model.inputs),
            "output": tensors(served.model.outputs),
            "dynamic_batching": {
                "preferred_batch_size": list(config.preferred_batch_sizes),
                "max_queue_delay_microseconds": round(config.max_queue_delay_s * 1e6),
            },
            "instance_group": [
                {
                    "count": config.instances,
                    "kind": "KIND_GPU" if served.device_kind == "gpu" else "KIND_CPU",
                }
            ],
        }

    async def _infer(self, headers: Mapping[str, str], body: bytes) -> Response:
        served = self.served
        if served is None:
            return _error(503, f"model {self.model_name!r} is still loading", ("retry-after", "1"))
        if not served.batcher.accepting:
            served.metrics.count("shed")
            return self._draining()
        request = await self._decode(served, headers, body)
        if isinstance(request, Response):
            return request
        outputs = await self._run(served, request, headers)
        if isinstance(outputs, Response):
            return outputs
        if json_bytes(outputs, request.outputs, request.binary_output) >= LARGE_RESPONSE_BYTES:
            return await self._encode_elsewhere(request, outputs)
        return self._encode(request, outputs)

    async def _decode(
        self, served: ServedModel, headers: Mapping[str, str], body: bytes
    ) -> InferRequest | Response:
        """The request in `body`, or the answer refusing it (400; 503 if the decoder died)."""
        raw_length = headers.get(HEADER_LENGTH_HEADER)
        try:
            header_length = None if raw_length is None else int(raw_length)
        except ValueError:
            served.metrics.count("invalid")
            return _error(
                400,
                f"Inference-Header-Content-Length must be an integer, got {raw_length!r}",
            )
        self._decoding += 1
        try:
            if len(body) >= LARGE_BODY_BYTES:
                return await self.decoder.decode(body, served.model, header_length)
            if len(body) >= OFF_LOOP_BYTES:
                return await asyncio.to_thread(decode_checked, body, served.model, header_length)
            return decode_checked(body, served.model, header_length)
        except ProtocolError as error:
            served.metrics.count("invalid")
            return _error(error.status, error.message)
        except DecoderUnavailableError as error:
            served.metrics.count("failed")
            return _error(503, str(error), ("retry-after", "1"))
        finally:
            self._decoding -= 1

    async def _run(
        self, served: ServedModel, request: InferRequest, headers: Mapping[str, str]
    ) -> Tensors | Response:
        """The model's outputs for `request`, or the answer for what the batcher raised."""
        try:
            return await served.batcher.submit(request.inputs)
        except QueueFullError as error:
            return self._queue_full(str(error), error.retry_after_s)
        except DrainingError:
            return self._draining()
        except RequestTimeoutError as error:
            return _error(503, str(error), ("retry-after", "1"))
        except BatchTooLargeError as error:
            return _error(400, str(error))
        except InputRejectedError as error:
            return self._model_failed(422, str(error), request, headers)
        except ModelError as error:
            # Written by the batcher or this server: one line, what the model raised summarised.
            message = str(error)
            if transient(error):
                retry = ("retry-after", str(DRAIN_RETRY_AFTER_S))
                return self._model_failed(503, message, request, headers, retry)
            return self._model_failed(500, message, request, headers)

    def _model_failed(
        self,
        status: int,
        message: str,
        request: InferRequest,
        headers: Mapping[str, str],
        *extra: tuple[str, str],
    ) -> Response:
        """The answer to a request the model failed on, logged once with the request's id."""
        request_id = _request_id(request, headers)
        log.warning(
            "inference failed: request_id=%s status=%d reason=%s",
            _quoted(request_id),
            status,
            _quoted(message),
            extra={"event": "inference_failed", "request_id": request_id, "status": status},
        )
        return _error(status, message, (REQUEST_ID_HEADER, request_id), *extra)

    def _encode(self, request: InferRequest, outputs: Tensors) -> Response:
        """The 200 answer with the requested outputs, or a 500 for outputs v2 cannot carry."""
        try:
            encoded = encode_response(
                self.model_name,
                outputs,
                request_id=request.id,
                requested=request.outputs,
                binary_output=request.binary_output,
                model_version=MODEL_VERSION,
            )
        except ValueError as error:  # An output numpy cannot express as a v2 datatype.
            return _error(500, f"cannot encode the model's outputs: {summary(error)}")
        return self._answer(encoded)

    async def _encode_elsewhere(self, request: InferRequest, outputs: Tensors) -> Response:
        """`_encode` in the encoder process (large JSON outputs): the loop answers meanwhile."""
        try:
            encoded = await self.decoder.encode(
                self.model_name,
                outputs,
                request_id=request.id,
                requested=request.outputs,
                binary_output=request.binary_output,
                model_version=MODEL_VERSION,
            )
        except ValueError as error:
            return _error(500, f"cannot encode the model's outputs: {summary(error)}")
        except DecoderUnavailableError as error:
            return _error(503, str(error), ("retry-after", "1"))
        return self._answer(encoded)

    @staticmethod
    def _answer(encoded: EncodedBody) -> Response:
        extra: tuple[tuple[str, str], ...] = ()
        if encoded.header_length is not None:
            extra = ((HEADER_LENGTH_HEADER, str(encoded.header_length)),)
        return Response(200, encoded.body, encoded.content_type, extra)


def _request_id(request: InferRequest, headers: Mapping[str, str]) -> str:
    """The request's id for logs and for the client to quote: its v2 `id`, else the
    `x-request-id` header, else a new one (ids that could forge a log line are replaced)."""
    for candidate in (request.id, headers.get(REQUEST_ID_HEADER)):
        if candidate is not None and _REQUEST_ID.match(candidate):
            return candidate
    return uuid.uuid4().hex


def _quoted(text: str) -> str:
    """`text` as a JSON string: one line whatever it holds, so log parsers can split on it."""
    import orjson

    return orjson.dumps(text).decode()
