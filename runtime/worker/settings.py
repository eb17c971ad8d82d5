"""Settings of `inferstack work`: queue, model, results, batching, leases, retries, interruption.

Each one comes from a flag, an `INFERSTACK_<SETTING>` environment variable or a config file, in
that precedence (see `runtime/settings.py`). The model and batching settings are
`BatchingSettings`, shared with `inferstack serve`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import Field

from inferstack.contract.pods import WORKER_METRICS_PORT
from inferstack.runtime.batcher import BatcherConfig
from inferstack.runtime.settings import BatchingSettings, env_vars, resolve


class WorkerSettings(BatchingSettings):
    """Everything `inferstack work` can be told."""

    queue: str = Field(
        description="queue URI: sqs://, pubsub://projects/P/subscriptions/S, redis://"
    )
    results: str = Field(default="", description="result store URI (default file://$PWD/results)")
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
    log_format: Literal["text", "json"] = "text"
    max_message_bytes: int = Field(
        default=0,
        ge=0,
        description="larger messages are dead-lettered before decoding (0: the JSON worst case "
        "of max_batch_size rows of the model's inputs, 64 MiB when they bound nothing)",
    )

    def batcher_config(self) -> BatcherConfig:
        """The batcher knobs. The queue is bounded by prefetch, so the batcher's never fills."""
        return self.batching(
            max_queue_size=self.max_batch_size * self.prefetch_batches, request_timeout_s=None
        )

    def results_uri(self) -> str:
        """The result store URI, defaulting to `results/` under the working directory."""
        return self.results or (Path.cwd() / "results").as_uri()


FIELDS: Final = tuple(WorkerSettings.model_fields)

ENV_VARS: Final[Mapping[str, str]] = env_vars(WorkerSettings)
"""Environment variable of each worker setting: `lease_s` -> `INFERSTACK_LEASE_S`."""


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
