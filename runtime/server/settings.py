"""Server settings: every knob by flag, environment variable or config file.

Precedence, highest first: command-line flag, environment variable, config file (YAML or
JSON, keys are the field names), default. The Kubernetes Deployment sets the environment
variables named by the `ENV_*` constants in `inferstack.contract.env`; the components import
those rather than spelling the strings. The model and batching settings are `BatchingSettings`,
shared with `inferstack work`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import Field, field_validator, model_validator
from typing_extensions import override

from inferstack.contract import sagemaker
from inferstack.contract.pods import DEFAULT_GRPC_PORT, DEFAULT_PORT
from inferstack.runtime.batcher import BatcherConfig
from inferstack.runtime.settings import (
    BatchingSettings,
    CpuShares,
    env_vars,
    resolve,
    split_cpus,
)

DEFAULT_BODY_BYTES_IN_FLIGHT: Final = 256 * 1024 * 1024
"""The in-flight body budget by default (when two of the largest bodies are not more): what a
1,000-body burst may hold before the server answers 503, instead of growing without bound."""


class ServerSettings(BatchingSettings):
    """Everything `inferstack serve` can be told."""

    host: str = "0.0.0.0"
    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535)
    grpc_port: int = Field(
        default=DEFAULT_GRPC_PORT,
        ge=0,
        le=65535,
        description="the KServe v2 gRPC API and gRPC health, opened once the model is ready "
        "(0: no gRPC)",
    )
    protocol: Literal["kserve", "sagemaker"] = Field(
        default="kserve",
        description="kserve: the v2 API; sagemaker: also SageMaker's GET /ping and POST "
        "/invocations (body a v2 request), on port 8080 where SageMaker sends them",
    )
    acceptors: int = Field(
        default=1,
        ge=0,
        description="processes that accept and parse HTTP and gRPC requests on the same ports "
        "(SO_REUSEPORT) for the one batcher and model (0: the CPU budget less torch_threads "
        "per model process, or less one per model process when torch_threads is automatic "
        "too, at least 1; 1: all in the server process)",
    )
    model_cpus: Literal["shared", "own"] = Field(
        default="shared",
        description="own: each model process is pinned to CPUs of its own (torch_threads each, "
        "from the end of the affinity mask) and the server process to the rest, when that "
        "leaves the server a CPU and no smaller cgroup quota makes the CPUs shared; shared: the "
        "kernel places every process",
    )
    max_queue_size: int = Field(default=1024, ge=1)
    request_timeout_ms: float = Field(default=0, ge=0, description="0: no timeout")
    drain_grace_s: float = Field(default=30.0, gt=0)
    drain_listen_s: float = Field(
        default=3.0,
        ge=0,
        description="after SIGTERM, seconds the port keeps serving while the endpoint is removed",
    )
    max_request_bytes: int = Field(
        default=0,
        ge=0,
        description="0: the JSON worst case of max_batch_size rows of the model's inputs",
    )
    header_timeout_s: float = Field(
        default=10.0, gt=0, description="seconds a request line and headers may take to arrive"
    )
    min_body_rate: float = Field(
        default=16 * 1024,
        ge=0,
        description="bytes/s a body must average after header_timeout_s (0: no floor)",
    )
    max_connections: int = Field(
        default=0, ge=0, description="open connections (0: the descriptor limit minus a reserve)"
    )
    max_body_bytes_in_flight: int = Field(
        default=0,
        ge=0,
        description="request body bytes held at once, all connections together; past it a "
        "body gets 503 (0: 256 MiB, or two of the largest bodies when that is more)",
    )

    @field_validator("max_request_bytes")
    @classmethod
    def _request_bytes(cls, value: int) -> int:
        if 0 < value < 1024:
            raise ValueError(f"expected 0 (automatic) or at least 1024 bytes, got {value}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _sagemaker_port(cls, data: Any) -> Any:
        # SageMaker sends every request to 8080: that is the port unless one is given.
        if isinstance(data, dict) and data.get("protocol") == sagemaker.PROTOCOL_VALUE:
            data.setdefault("port", sagemaker.PORT)
        return data

    @model_validator(mode="after")
    def _sagemaker_needs_its_port(self) -> ServerSettings:
        if self.protocol == sagemaker.PROTOCOL_VALUE and self.port != sagemaker.PORT:
            raise ValueError(
                f"protocol sagemaker: SageMaker sends requests to port {sagemaker.PORT}, not "
                f"{self.port}; set port {sagemaker.PORT} or leave it unset"
            )
        return self

    @model_validator(mode="after")
    def _own_cpus_in_one_process(self) -> ServerSettings:
        if self.model_cpus == "own" and (self.acceptors != 1 or not self.model_process):
            raise ValueError(
                "model_cpus own pins the model processes and the one server process: it needs "
                "acceptors 1 and model_process true; set those, or model_cpus shared"
            )
        return self

    @override
    def cpu_shares(self, cpus: int | None = None) -> CpuShares:
        """How the CPU budget (`cpu_budget_in_force(cpus)`; `cpus` the detected CPUs, for
        tests) is shared between the acceptors and the model's threads (`split_cpus`)."""
        return split_cpus(
            self.cpu_budget_in_force(cpus),
            acceptors=self.acceptors,
            torch_threads=self.torch_threads,
            model_processes=self.model_processes,
        )

    def resolved_acceptors(self, cpus: int | None = None) -> int:
        """The acceptor count in force: the setting, or what `cpu_shares` gives them."""
        return self.cpu_shares(cpus).acceptors

    def body_budget(self, max_request_bytes: int) -> int:
        """The in-flight body budget in force for a body limit of `max_request_bytes`."""
        return self.max_body_bytes_in_flight or max(
            DEFAULT_BODY_BYTES_IN_FLIGHT, 2 * max_request_bytes
        )

    def batcher_config(self) -> BatcherConfig:
        """The batcher knobs; ValueError when they contradict each other."""
        return self.batching(
            max_queue_size=self.max_queue_size,
            request_timeout_s=self.request_timeout_ms / 1000 if self.request_timeout_ms else None,
        )


ENV_VARS: Final[Mapping[str, str]] = env_vars(ServerSettings)
"""Environment variable of each setting: `max_batch_size` -> `INFERSTACK_MAX_BATCH_SIZE`."""


def resolve_settings(
    flags: Mapping[str, Any],
    *,
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> ServerSettings:
    """Merge flags, environment and config file (in that precedence) into settings.

    `flags` maps field names to values, None meaning "not given". Raises SettingsError naming
    the source of each bad value.
    """
    return resolve(
        ServerSettings,
        flags,
        config_file=config_file,
        environ=environ,
        check=ServerSettings.batcher_config,
    )


__all__ = ["ENV_VARS", "ServerSettings", "resolve_settings"]
