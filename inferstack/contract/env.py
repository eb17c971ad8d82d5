"""Environment variables the runtime processes read (`inferstack serve` and `inferstack work`).

Every setting of either process is also an `INFERSTACK_<SETTING>` variable (see the runtime's
`layered_settings`); the names here are the ones the components write into pod specs. A test
resolves every variable a rendered container carries through the settings model of the process
that reads it, so a name here that its process does not know fails there. Nothing else may spell
these strings.
"""

from typing import Final

ENV_PREFIX: Final = "INFERSTACK_"

ENV_MODEL: Final = "INFERSTACK_MODEL"
ENV_MODEL_NAME: Final = "INFERSTACK_MODEL_NAME"
ENV_MODEL_SHA256: Final = "INFERSTACK_MODEL_SHA256"
"""The model file's sha256: a fetched (or baked) file with another digest is refused."""
ENV_MODEL_CACHE: Final = "INFERSTACK_MODEL_CACHE"
"""Folder a fetched model is written to (the pod's model cache volume)."""
ENV_HOST: Final = "INFERSTACK_HOST"
ENV_PORT: Final = "INFERSTACK_PORT"
ENV_PROTOCOL: Final = "INFERSTACK_PROTOCOL"
"""`kserve` (default) or `sagemaker`: SageMaker's `/ping` and `/invocations` on 8080 too."""
ENV_GRPC_PORT: Final = "INFERSTACK_GRPC_PORT"
"""The KServe v2 gRPC port (0: no gRPC); the Deployment sets it with the container port."""
ENV_MAX_BATCH_SIZE: Final = "INFERSTACK_MAX_BATCH_SIZE"
ENV_PREFERRED_BATCH_SIZES: Final = "INFERSTACK_PREFERRED_BATCH_SIZES"
"""Comma-separated, e.g. `16,32`."""
ENV_MAX_QUEUE_DELAY_MS: Final = "INFERSTACK_MAX_QUEUE_DELAY_MS"
ENV_ACCEPTORS: Final = "INFERSTACK_ACCEPTORS"
"""Processes that parse HTTP and gRPC on the same ports for the one model (1: the server
process alone; 0: the CPU budget less the model processes' torch threads, or less one per model
process when those are automatic too; `runtime.settings.split_cpus`)."""
ENV_MAX_QUEUE_SIZE: Final = "INFERSTACK_MAX_QUEUE_SIZE"
ENV_REQUEST_TIMEOUT_MS: Final = "INFERSTACK_REQUEST_TIMEOUT_MS"
"""0 means no timeout."""
ENV_INSTANCES: Final = "INFERSTACK_INSTANCES"
ENV_MODEL_PROCESS: Final = "INFERSTACK_MODEL_PROCESS"
"""`true` (default): each model instance runs in its own process; `false`: on a server thread."""
ENV_MODEL_CPUS: Final = "INFERSTACK_MODEL_CPUS"
"""`shared` (default): the kernel places every process; `own`: each model process is pinned to
CPUs of its own and the server process to the rest (`inferstack serve`, one acceptor)."""
ENV_OPTIMIZE: Final = "INFERSTACK_OPTIMIZE"
"""`auto` (default): a TorchScript model on the CPU serves its frozen graph after
`torch.jit.optimize_for_inference` when that answers the same and is not slower at the warm-up
batch sizes (`runtime.optimize`); `off`: the graph as loaded."""
ENV_TORCH_THREADS: Final = "INFERSTACK_TORCH_THREADS"
"""0 means automatic: the CPU budget (`INFERSTACK_CPUS` capped by the cgroup quota or affinity,
else those alone) less one per event loop that parses requests (serve's acceptors, else one),
shared equally by the model processes (`INFERSTACK_INSTANCES`), at least 1 each
(`runtime.settings.split_cpus`)."""
ENV_CPUS: Final = "INFERSTACK_CPUS"
"""The CPU budget the runtime shares between parsing and the model's torch threads (0: the cgroup
quota, else the affinity mask; set, the smaller of the two counts). The Kubernetes pods fill it
from the container's CPU request through the Downward API, since a request sets no quota."""
ENV_GIL_SWITCH_INTERVAL_US: Final = "INFERSTACK_GIL_SWITCH_INTERVAL_US"
"""How long the event loop may keep the GIL while the batch thread (and, with the model on a
thread, the model) waits for it."""
ENV_DEVICE: Final = "INFERSTACK_DEVICE"
ENV_DRAIN_GRACE_S: Final = "INFERSTACK_DRAIN_GRACE_S"
ENV_DRAIN_LISTEN_S: Final = "INFERSTACK_DRAIN_LISTEN_S"
"""After SIGTERM, seconds the port keeps accepting and serving (the endpoint-removal window)."""
ENV_MAX_REQUEST_BYTES: Final = "INFERSTACK_MAX_REQUEST_BYTES"
"""0 means automatic: the JSON worst case of a max-size batch of the model's inputs."""
ENV_HEADER_TIMEOUT_S: Final = "INFERSTACK_HEADER_TIMEOUT_S"
ENV_MIN_BODY_RATE: Final = "INFERSTACK_MIN_BODY_RATE"
"""Bytes per second a request body must average once the header timeout has passed; 0: none."""
ENV_MAX_CONNECTIONS: Final = "INFERSTACK_MAX_CONNECTIONS"
"""0 means automatic: the descriptor limit (RLIMIT_NOFILE) minus a reserve."""
ENV_MAX_BODY_BYTES_IN_FLIGHT: Final = "INFERSTACK_MAX_BODY_BYTES_IN_FLIGHT"
"""Request body bytes the server holds at once; 0 means 256 MiB or two of the largest bodies."""
ENV_SIGTERM_GRACE_S: Final = "INFERSTACK_SIGTERM_GRACE_S"
"""The worker: seconds between SIGTERM and the kill (the pod's termination grace period)."""
ENV_LOG_LEVEL: Final = "INFERSTACK_LOG_LEVEL"
ENV_CONFIG: Final = "INFERSTACK_CONFIG"
"""Path of a config file, when `--config` is not given."""


def env_name(setting: str) -> str:
    """The variable of a setting, by the runtime's one rule: `max_batch_size` ->
    `INFERSTACK_MAX_BATCH_SIZE`."""
    return ENV_PREFIX + setting.upper()


SERVE_SETTINGS: Final = frozenset(
    {
        "model",
        "model_sha256",
        "model_cache",
        "port",
        "grpc_port",
        "acceptors",
        "cpus",
        "max_batch_size",
        "preferred_batch_sizes",
        "max_queue_delay_ms",
        "max_queue_size",
        "request_timeout_ms",
        "instances",
        "device",
        "drain_grace_s",
    }
)
"""Settings of `inferstack serve` that the components write into the realtime pod."""
WORK_SETTINGS: Final = frozenset(
    {
        "model_sha256",
        "model_cache",
        "cpus",
        "max_batch_size",
        "preferred_batch_sizes",
        "max_queue_delay_ms",
        "instances",
        "device",
        "sigterm_grace_s",
    }
)
"""Settings of `inferstack work` that the components write into the batch pod. The worker has
no admission queue or request timeout: its queue is bounded by what it prefetches, and a job's
time limit is the queue's lease."""
