"""The KServe v2 (Open Inference Protocol) gRPC API of `inferstack serve`.

- `service`: `inference.GRPCInferenceService` (ServerLive/Ready/Metadata, ModelReady/Metadata,
  ModelInfer) and `grpc.health.v1.Health/Check`, answered through the HTTP path's own
  `InferenceApp` (same admission, decode, batcher, metrics and messages);
- `translate`: messages to and from the v2 binary-extension body;
- `server`: the `grpc.aio` server, its limits, start and close;
- `generated`: protoc's output from `proto/` (the official KServe and gRPC health protos,
  unchanged), checked in; `generate` rewrites it.
"""

from inferstack.runtime.grpc.server import GrpcLimits, GrpcServer
from inferstack.runtime.grpc.service import HEALTH_SERVICE, SERVICE, InferenceService, status_code

__all__ = [
    "HEALTH_SERVICE",
    "SERVICE",
    "GrpcLimits",
    "GrpcServer",
    "InferenceService",
    "status_code",
]
