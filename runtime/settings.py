"""Server settings: every knob by flag, environment variable or config file.

Precedence, highest first: command-line flag, environment variable, config file (YAML or
JSON, keys are the field names), default. The Kubernetes Deployment sets the environment
variables named by the `ENV_*` constants here; the components import those constants rather
than spelling the strings.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from inferstack.contract.pods import DEFAULT_PORT
from inferstack.runtime.batcher import BatcherConfig
from inferstack.runtime.layered_settings import BatchSizes, SettingsError, env_vars, resolve


class ServerSettings(BaseModel):
    """Everything `inferstack serve` can be told."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(description="model URI, e.g. builtin://mlp")
    model_name: str | None = Field(default=None, description="served name; derived from the URI")
    host: str = "0.0.0.0"
    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535)
    max_batch_size: int = Field(default=32, ge=1)
    preferred_batch_sizes: BatchSizes = ()
    max_queue_delay_ms: float = Field(default=5.0, ge=0)
    max_queue_size: int = Field(default=1024, ge=1)
    request_timeout_ms: float = Field(default=0, ge=0, description="0: no timeout")
    instances: int = Field(default=1, ge=1)
    model_process: bool = Field(
        default=True,
        description="run each model instance in its own process (false: on a server thread)",
    )
    torch_threads: int = Field(default=0, ge=0, description="0: CPU budget minus one")
    device: str = Field(default="auto", description="auto, cpu, cuda or cuda:N")
    gil_switch_interval_us: int = Field(
        default=200,
        ge=20,
        le=5000,
        description="max microseconds a thread keeps the GIL while the batch thread waits",
    )
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
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("max_request_bytes")
    @classmethod
    def _request_bytes(cls, value: int) -> int:
        if 0 < value < 1024:
            raise ValueError(f"expected 0 (automatic) or at least 1024 bytes, got {value}")
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if value not in ("auto", "cpu", "cuda") and not value.startswith("cuda:"):
            raise ValueError(f"expected auto, cpu, cuda or cuda:N, got {value!r}")
        return value

    def batcher_config(self) -> BatcherConfig:
        """The batcher knobs; ValueError when they contradict each other."""
        return BatcherConfig(
            max_batch_size=self.max_batch_size,
            preferred_batch_sizes=self.preferred_batch_sizes,
            max_queue_delay_s=self.max_queue_delay_ms / 1000,
            max_queue_size=self.max_queue_size,
            request_timeout_s=self.request_timeout_ms / 1000 if self.request_timeout_ms else None,
            instances=self.instances,
        )

    def resolved_torch_threads(self) -> int:
        """The intra-op thread count to use: the explicit setting, or CPU budget minus one."""
        return self.torch_threads or max(1, cpu_budget() - 1)


ENV_VARS: Final[Mapping[str, str]] = env_vars(ServerSettings)
"""Environment variable of each setting: `max_batch_size` -> `INFERSTACK_MAX_BATCH_SIZE`."""


def cpu_budget() -> int:
    """CPUs this process may use: the cgroup v2 quota if set, else the affinity mask."""
    available = len(os.sched_getaffinity(0))
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return available
    if quota == "max":
        return available
    return max(1, min(available, math.ceil(int(quota) / int(period))))


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


__all__ = ["ENV_VARS", "ServerSettings", "SettingsError", "cpu_budget", "resolve_settings"]
