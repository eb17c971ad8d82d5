"""The KServe v2 (Open Inference Protocol) wire format: two layers and the one checked decode.

- `envelopes`: the request and response documents (decode and validate a request against the
  model's signature, encode a response, the error document);
- `codecs`: one tensor to and from JSON `data` or binary-extension bytes;
- `checked`: the decode both the server and the worker call, on top of `envelopes`;
- `large_bodies`: `checked`'s decode in a helper process, for bodies large enough to stall the
  event loop (imported on its own: it starts processes).

Only the server side lives here; the client side (encode a request, decode a response) that
tests and benchmarks use is `tests/v2_client.py`.
"""

from inferstack.runtime.protocol.checked import decode_checked
from inferstack.runtime.protocol.codecs import ProtocolError
from inferstack.runtime.protocol.envelopes import (
    BINARY_CONTENT_TYPE,
    HEADER_LENGTH_HEADER,
    JSON_CONTENT_TYPE,
    EncodedBody,
    InferRequest,
    RequestedOutput,
    Signature,
    decode_request,
    encode_response,
    error_body,
)

__all__ = [
    "BINARY_CONTENT_TYPE",
    "HEADER_LENGTH_HEADER",
    "JSON_CONTENT_TYPE",
    "EncodedBody",
    "InferRequest",
    "ProtocolError",
    "RequestedOutput",
    "Signature",
    "decode_checked",
    "decode_request",
    "encode_response",
    "error_body",
]
