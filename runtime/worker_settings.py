"""Settings of `inferstack work`: queue, model, results, batching, leases, retries, interruption.

Each one comes from a flag, an `INFERSTACK_<SETTING>` environment variable or a config file, in
that precedence (see `layered_settings`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from inferstack.contract.pods import WORKER_METRICS_PORT
from inferstack.runtime.batcher import BatcherConfig
from inferstack.runtime.layered_settings import BatchSizes, resolve


class WorkerSettings(BaseModel):
    """Everything `inferstack work` can be told."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    queue: str = Field(
        description="queue URI: sqs://, pubsub://projects/P/subscriptions/S, redis://"
    )
    model: str = Field(description="model URI, e.g. builtin://mlp")
    results: str = Field(default="", description="result store URI (default file://$PWD/results)")
    model_name: str | None = None
    device: str = "auto"
    torch_threads: int = Field(default=0, ge=0, description="0: CPU budget minus one")
    gil_switch_interval_us: int = Field(
        default=200,
        ge=20,
        le=5000,
        description="max microseconds a thread keeps the GIL while the batch thread waits",
    )
    max_batch_size: int = Field(default=32, ge=1)
    preferred_batch_sizes: BatchSizes = ()
    max_queue_delay_ms: float = Field(default=5.0, ge=0)
    instances: int = Field(default=1, ge=1)
    model_process: bool = Field(
        default=True,
        description="run each model instance in its own process (false: on a worker thread)",
    )
    prefetch_batches: int = Field(default=2, ge=1, description="pulled batches worked at once")
    lease_s: float = Field(default=60.0, gt=0, description="visibility timeout / claim idle")
    poll_wait_s: float = Field(default=2.0, ge=0, description="long-poll wait of one receive")
    max_attempts: int | None = Field(
        default=None,
        ge=1,
        description="deliveries before dead-lettering (Redis; SQS and Pub/Sub read the queue)",
    )
    retry_base_s: float = Field(default=1.0, gt=0)
    retry_max_s: float = Field(default=300.0, gt=0)
    drain_margin_s: float = Field(default=5.0, ge=0, description="kept free before a deadline")
    sigterm_grace_s: float = Field(default=25.0, gt=0, description="time SIGTERM leaves us")
    interruption: Literal["auto", "on", "off"] = "auto"
    aws_metadata_url: str | None = None
    gcp_metadata_url: str | None = None
    metadata_poll_s: float = Field(default=1.0, gt=0)
    watch_rebalance: bool = True
    rebalance_drain_s: float = Field(default=120.0, gt=0)
    metrics_port: int = Field(
        default=WORKER_METRICS_PORT, ge=0, le=65535, description="0: no /metrics"
    )
    backlog_interval_s: float = Field(default=15.0, gt=0)
    exit_when_idle_s: float | None = Field(
        default=None, gt=0, description="exit once the queue gave nothing for this long"
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"

    def batcher_config(self) -> BatcherConfig:
        """The batcher knobs. The queue is bounded by prefetch, so the batcher's never fills."""
        return BatcherConfig(
            max_batch_size=self.max_batch_size,
            preferred_batch_sizes=self.preferred_batch_sizes,
            max_queue_delay_s=self.max_queue_delay_ms / 1000,
            max_queue_size=self.max_batch_size * self.prefetch_batches,
            instances=self.instances,
        )

    def results_uri(self) -> str:
        """The result store URI, defaulting to `results/` under the working directory."""
        return self.results or (Path.cwd() / "results").as_uri()


FIELDS: Final = tuple(WorkerSettings.model_fields)


def resolve_settings(
    flags: Mapping[str, Any],
    *,
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> WorkerSettings:
    """Merge flags, environment and config file (that precedence); errors name the source."""
    return resolve(
        WorkerSettings,
        flags,
        config_file=config_file,
        environ=environ,
        check=WorkerSettings.batcher_config,
    )
