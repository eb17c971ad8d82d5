"""Limits the spec enforces and the policy pack judges with, so a user hears each once, early.

The spec refuses a value past one of these (naming the field and the fix) unless the user sets
the matching explicit spec field, which a team that relaxes the pack's setting sets too.
"""

from typing import Final

MAX_QUEUE_DELAY_SHARE: Final = 0.2
"""Largest share of the p99 latency budget that the batcher's max queue delay may take
(pack rule `queue-delay-within-budget`, setting `maxQueueDelayShare`)."""
MAX_GPU_REPLICAS: Final = 64
"""Largest max replica count of one GPU autoscaler (pack rule `bounded-gpu-capacity`, setting
`maxGpuReplicas`)."""
MAX_GPU_NODES: Final = 64
"""Largest max size of one GPU node group or pool (`bounded-gpu-capacity`, `maxGpuNodes`)."""


def queue_delay_excess(delay_ms: float, budget_ms: float, share: float) -> str | None:
    """The words both the spec and the pack use when a batching wait takes too much budget."""
    allowed = budget_ms * share
    if delay_ms <= allowed:
        return None
    return (
        f"a {delay_ms:g} ms batching wait, more than {share * 100:g}% of the {budget_ms:g} ms "
        f"p99 budget ({allowed:g} ms)"
    )


def gpu_replicas_excess(maximum: float, ceiling: float) -> str | None:
    """The words both the spec and the pack use when a GPU autoscaler's max is above the ceiling."""
    if maximum <= ceiling:
        return None
    return f"above the ceiling of {ceiling:g}"
