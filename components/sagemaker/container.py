"""The model container's environment: `inferstack serve` on SageMaker's contract, from the spec.

SageMaker runs the image as `docker run <image> serve` and passes settings only through the
model's container environment; the runtime reads each as `INFERSTACK_<SETTING>` (the contract's
`env_name`) and, with `protocol: sagemaker`, answers `/ping` and `/invocations` on 8080. Both
pools run the server: the asynchronous endpoint's queue is SageMaker's, which posts each queued
request to `/invocations` like a realtime one.
"""

from __future__ import annotations

from inferstack.components.planning.spec import InferenceServiceSpec
from inferstack.contract import sagemaker as contract
from inferstack.contract.env import env_name


def _decimal(value: float) -> str:
    return f"{value:g}"


def environment(spec: InferenceServiceSpec, batch_size: int) -> dict[str, str]:
    """The variables of one pool's container, batching at most `batch_size`."""
    batching = spec.batching
    preferred = [size for size in batching.preferred_batch_sizes if size <= batch_size]
    values = {
        contract.PROTOCOL_SETTING: contract.PROTOCOL_VALUE,
        "model": spec.model.uri,
        "port": str(contract.PORT),
        "max_batch_size": str(batch_size),
        "preferred_batch_sizes": ",".join(str(size) for size in preferred) or None,
        "max_queue_delay_ms": _decimal(batching.max_queue_delay_ms),
        "max_queue_size": str(batching.queue_limit),
        "request_timeout_ms": (
            None if batching.request_timeout_ms is None else _decimal(batching.request_timeout_ms)
        ),
        "instances": str(batching.instances_per_gpu),
        "device": "cuda",
    }
    return {env_name(key): value for key, value in values.items() if value is not None}


__all__ = ["environment"]
