"""What a pod spec and the runtime inside it agree on."""

from typing import Final

GPU_RESOURCE: Final = "nvidia.com/gpu"
"""The extended resource a GPU pod requests, and the taint key GPU node pools carry."""
DEFAULT_PORT: Final = 8000
"""The server's HTTP port (KServe v2 API and /metrics)."""
DEFAULT_GRPC_PORT: Final = 8001
"""The server's gRPC port (KServe v2 `inference.GRPCInferenceService` and `grpc.health.v1`):
Triton's pairing with the HTTP port 8000, so a client or probe moved from Triton keeps both."""
GRPC_HEALTH_SERVICE: Final = "inference.GRPCInferenceService"
"""The service name a gRPC health check asks about (`grpc.health.v1`): the KServe v2 service."""
WORKER_METRICS_PORT: Final = 9091
"""The queue worker's /metrics port, which also answers WORKER_HEALTH_PATH."""
WORKER_HEALTH_PATH: Final = "/healthz"
"""The queue worker's health: 200 while its consume loop runs and has beaten within poll wait plus
lease, else 503 (model still loading, loop stopped or stuck); the body is JSON saying which."""
READY_PATH: Final = "/v2/health/ready"
LIVE_PATH: Final = "/v2/health/live"
METRICS_PATH: Final = "/metrics"
RUN_AS_USER: Final = 65532
"""The image's unprivileged UID (distroless `nonroot`); numeric so the kubelet can verify it."""
PRESTOP_SECONDS: Final = 5
"""How long a stopping pod keeps serving while its endpoint removal reaches every proxy."""
