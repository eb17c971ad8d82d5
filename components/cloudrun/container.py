"""The containers' environment on Cloud Run: `inferstack serve` and `inferstack work`.

Cloud Run passes settings through the container's environment; the runtime reads each as
`INFERSTACK_<SETTING>` (the contract's `env_name`), and each process's variables are checked
against the settings it reads (`SERVE_SETTINGS`, `WORK_SETTINGS`), as the Kubernetes pods do.
"""

from __future__ import annotations

from collections.abc import Mapping

from inferstack.components.planning.model_delivery import is_fetched
from inferstack.components.planning.spec import InferenceServiceSpec
from inferstack.contract import env as runtime_env
from inferstack.contract.model_uris import MODEL_CACHE_MOUNT


def _decimal(value: float) -> str:
    return f"{value:g}"


def _env(process: frozenset[str], values: Mapping[str, str | None]) -> dict[str, str]:
    unknown = sorted(set(values) - process)
    if unknown:
        raise ValueError(f"settings {unknown} are not read by this process")
    env = {runtime_env.env_name(key): value for key, value in values.items() if value is not None}
    # Cloud Run's filesystem is in memory and writable; HOME for libraries that cache there.
    return {**env, "HOME": "/tmp"}


def _common(spec: InferenceServiceSpec, batch_size: int) -> dict[str, str | None]:
    batching = spec.batching
    preferred = [size for size in batching.preferred_batch_sizes if size <= batch_size]
    return {
        "model_sha256": spec.model.sha256,
        "model_cache": MODEL_CACHE_MOUNT if is_fetched(spec.model.uri) else None,
        "max_batch_size": str(batch_size),
        "preferred_batch_sizes": ",".join(str(size) for size in preferred) or None,
        "max_queue_delay_ms": _decimal(batching.max_queue_delay_ms),
        "instances": str(batching.instances_per_gpu),
        "device": "cuda",
    }


def serve_environment(
    spec: InferenceServiceSpec, batch_size: int, port: int, drain_s: int
) -> dict[str, str]:
    """The server's variables: the model, the batcher, the port Cloud Run sends requests to."""
    timeout = spec.batching.request_timeout_ms
    return _env(
        runtime_env.SERVE_SETTINGS,
        {
            "model": spec.model.uri,
            **_common(spec, batch_size),
            "max_queue_size": str(spec.batching.queue_limit),
            "request_timeout_ms": None if timeout is None else _decimal(timeout),
            "port": str(port),
            "drain_grace_s": str(drain_s),
        },
    )


def work_environment(spec: InferenceServiceSpec, batch_size: int, grace_s: int) -> dict[str, str]:
    """The queue worker's variables (its queue, model and results are arguments)."""
    return _env(
        runtime_env.WORK_SETTINGS,
        {**_common(spec, batch_size), "sigterm_grace_s": str(grace_s)},
    )


__all__ = ["serve_environment", "work_environment"]
