"""The knobs `inferstack tune` turns: spec fields that trade cost against latency.

Each knob is a field of the stack's `inferstack:service` spec, so a candidate is a stack file
with a few values changed: it is read by the one config reader (`from_values`) and rendered as
`pulumi up` would render it, and the winner can be written back to the file as it is.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from inferstack.components.planning.clouds import Target
from inferstack.components.planning.spec import CONFIG_KEY as SERVICE_KEY
from inferstack.components.planning.spec import InferenceServiceSpec
from inferstack.offline.simulate import SimulateError

Value = int | float | str
Candidate = tuple[tuple[str, Value], ...]
"""Knob name -> value, sorted by name: hashable, so results are cached per candidate."""

TARGET_FACTORS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.85, 1.0)
"""Multiples of the metric's auto target tried (below 1: scale out before the sized load)."""
QUEUE_DELAYS_MS = (1.0, 2.0, 5.0, 10.0)
BATCH_SIZES = (8, 16, 32, 64, 128)
MAX_REPLICAS_PATH = ("realtime", "scaling", "max_replicas")


@dataclass(frozen=True)
class Knob:
    """One spec field the search sets, with the values it tries, in order of cost."""

    name: str
    path: tuple[str, ...]
    """Where the field is under `inferstack:service`."""
    values: tuple[Value, ...]
    monotone: bool
    """Attainment and cost both rise along `values` (a floor, a lower target): a bisection finds
    the cheapest value that meets the SLO; otherwise every value is tried."""
    why: str
    """What moving it buys, for the reason line of a change."""

    @property
    def dotted(self) -> str:
        """The field as the spec reference and error messages name it."""
        return ".".join(self.path)


KNOB_NAMES = (
    "max_replicas",
    "min_replicas",
    "metric",
    "target_factor",
    "max_queue_delay_ms",
    "max_batch_size",
)
OPTIONAL_KNOBS = ("prewarm", "prewarm_lead_minutes", "scale_up_pods", "spot_share")

_KUBERNETES_ONLY = {
    "scale_up_pods": "its scaler is {platform}'s own, not the HPA: no HPA scale-up policy",
    "spot_share": "its queue pool runs on {platform}'s managed capacity, which has no spot share",
}
_UNSETTABLE: dict[Target, dict[str, str]] = {
    "kubernetes": {},
    "aws": {},
    "gcp": {},
    "sagemaker": {
        **{k: v.format(platform="SageMaker") for k, v in _KUBERNETES_ONLY.items()},
        # Its copies track one metric, with a target the component derives from the batcher
        # model (components.sagemaker.scaling.realtime_scaling): neither spec field is read.
        "metric": "its copies track SageMaker's concurrent requests per copy whatever "
        "realtime.scaling.metric says",
        "target_factor": "the concurrency target per copy comes from the batcher model at the "
        "sized rate, not realtime.scaling.target_per_replica; max_batch_size and "
        "max_queue_delay_ms move it",
    },
    "cloudrun": {k: v.format(platform="Cloud Run") for k, v in _KUBERNETES_ONLY.items()},
}
"""Per target, the knobs it cannot set and why (every other knob it can). One table, read by
the search space and by `--knobs`: a helper adding a target's knobs edits it here."""


def target_knobs(target: Target) -> frozenset[str]:
    """The knobs a stack of `target` can set (before what its spec allows: see `realtime_knobs`)."""
    return frozenset(
        name for name in (*KNOB_NAMES, *OPTIONAL_KNOBS) if name not in _UNSETTABLE[target]
    )


def unsettable_reason(target: Target, name: str) -> str | None:
    """Why a stack of `target` cannot set knob `name`, or None when it can."""
    return _UNSETTABLE[target].get(name)


SPOT_SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)
SCALE_UP_PATH = ("realtime", "scaling", "scale_up", "pods")
LEAD_PATH = ("realtime", "prewarm_lead_minutes")
SPOT_SHARE_PATH = ("batch", "capacity", "spot_share")


def realtime_knobs(
    spec: InferenceServiceSpec,
    max_replicas: int,
    profile_sizes: tuple[int, ...],
    *,
    target: Target = "kubernetes",
    cold_start_seconds: float = 0.0,
) -> dict[str, Knob]:
    """The knobs a stack can set, by name (empty without a realtime pool): what its spec allows,
    less what its target cannot set (`target_knobs`).

    The pre-warm lead ranges over 0 to twice the cold start, in whole minutes (the floor is up
    at the spike's start from one cold start on; more buys margin against a slow node).
    """
    if spec.realtime is None:
        return {}
    knobs = _spec_knobs(spec, max_replicas, profile_sizes, cold_start_seconds)
    if target != "aws" and "spot_share" in knobs:
        # Only Karpenter's two NodePools render a split (the plan refuses one elsewhere).
        knobs["spot_share"] = dataclasses.replace(knobs["spot_share"], values=(1.0, 0.0))
    settable = target_knobs(target)
    # The coordinate search visits knobs in this order, and its answer depends on it: the floor
    # right after the ceiling, before the metric and target, found 99.9% at $3,939 a month on
    # dev (diurnal, bursts, 4 seeds) and $4,133 on aws-prod, against $4,531 and $4,385 with the
    # floor after the batching knobs.
    order = (*KNOB_NAMES, *OPTIONAL_KNOBS)
    return {name: knobs[name] for name in order if name in knobs and name in settable}


def _spec_knobs(
    spec: InferenceServiceSpec,
    max_replicas: int,
    profile_sizes: tuple[int, ...],
    cold_start_seconds: float,
) -> dict[str, Knob]:
    assert spec.realtime is not None
    allowed_delay = spec.latency_budget_ms * spec.guardrails.max_queue_delay_share
    delays = tuple(d for d in QUEUE_DELAYS_MS if d <= allowed_delay) or (
        spec.batching.max_queue_delay_ms,
    )
    sizes = tuple(
        s for s in BATCH_SIZES if s <= max(profile_sizes) and s <= spec.batching.queue_limit
    )
    # Up to twice the stack's ceiling, within the policy pack's bound on GPU replicas.
    ceiling = min(2 * max_replicas, spec.guardrails.max_gpu_replicas // spec.realtime.gpu.count)
    knobs = {
        "max_replicas": Knob(
            "max_replicas",
            MAX_REPLICAS_PATH,
            tuple(range(max_replicas, max(max_replicas, ceiling) + 1)),
            True,
            "a higher ceiling lets the pool follow traffic above the sized peak",
        ),
        "metric": Knob(
            "metric",
            ("realtime", "scaling", "metric"),
            ("rps", "in_flight", "queue_depth"),
            False,
            "the demand signal the pool scales on",
        ),
        "target_factor": Knob(
            "target_factor",
            ("realtime", "scaling", "target_per_replica"),
            tuple(reversed(TARGET_FACTORS)),
            True,
            "a lower target scales out earlier, before queues build",
        ),
        "max_queue_delay_ms": Knob(
            "max_queue_delay_ms",
            ("batching", "max_queue_delay_ms"),
            delays,
            False,
            "how long a request waits for its batch to fill",
        ),
        "max_batch_size": Knob(
            "max_batch_size",
            ("batching", "max_batch_size"),
            sizes or (spec.batching.max_batch_size,),
            False,
            "the largest batch a replica forms (throughput against compute time)",
        ),
    }
    if not spec.realtime.scale_to_zero:
        # Up to the same ceiling as max_replicas (a floor above the stack's max raises the max
        # with it, see `field_values`): traffic whose bursts rise faster than a cold start from
        # near zero is only met by a floor near its peak (the shared Azure trace: 24 of 12).
        knobs["min_replicas"] = Knob(
            "min_replicas",
            ("realtime", "scaling", "min_replicas"),
            tuple(range(1, max(max_replicas, ceiling) + 1)),
            True,
            "a higher floor keeps warm replicas for bursts that rise faster than a cold start",
        )
    if spec.traffic.spikes:
        knobs["prewarm"] = Knob(
            "prewarm",
            ("realtime", "prewarm"),
            ("off", "auto"),
            False,
            "a replica floor raised before each declared spike by the measured cold start",
        )
        if spec.realtime.prewarm == "auto":
            cold_minutes = max(1, math.ceil(cold_start_seconds / 60))
            knobs["prewarm_lead_minutes"] = Knob(
                "prewarm_lead_minutes",
                LEAD_PATH,
                tuple(range(2 * cold_minutes + 1)),
                True,
                f"minutes the spike's floor rises early (cold start {cold_start_seconds:.0f} s): "
                "shorter costs less, shorter than the cold start misses the spike's first minutes",
            )
    # Pods one 15 s period may add, doubling up to the ceiling: fewer trails a fast rise,
    # more overshoots on a short burst.
    pods = tuple(sorted({*(2**k for k in range(12) if 2**k < max_replicas), max(1, max_replicas)}))
    knobs["scale_up_pods"] = Knob(
        "scale_up_pods",
        SCALE_UP_PATH,
        pods,
        True,
        "replicas the HPA may add per 15 s period: more follows a burst sooner",
    )
    if spec.batch is not None and spec.batch.capacity.spot:
        knobs["spot_share"] = Knob(
            "spot_share",
            SPOT_SHARE_PATH,
            tuple(reversed(SPOT_SHARES)),
            False,
            "share of the queue pool on spot: cheaper, but interrupted and short at times",
        )
    return knobs


def check_selection(
    selected: list[str] | None,
    available: Mapping[str, Knob],
    stack: str,
    target: Target = "kubernetes",
) -> None:
    """Refuse a `--knobs` entry that is unknown or that this stack cannot set, with the fix."""
    known = (*KNOB_NAMES, *OPTIONAL_KNOBS)
    if not available:
        raise SimulateError(
            "--stack",
            f"stack {stack} has no realtime pool, so there is no latency to tune; add a "
            "`realtime` section to its spec",
        )
    for name in selected or []:
        if name not in known:
            raise SimulateError(
                "--knobs", f"{name!r} is not a knob; choose from {', '.join(known)}"
            )
        if name not in available:
            raise SimulateError(
                "--knobs",
                f"stack {stack} cannot set {name!r} ({_why_not(name, target)})"
                f"; drop it, or choose from {', '.join(available)}",
            )


def _why_not(name: str, target: Target) -> str:
    reason = unsettable_reason(target, name)
    if reason is not None:
        return f"a {target} stack: {reason}"
    return {
        "min_replicas": "its realtime pool scales to zero, so its floor is 0",
        "spot_share": "it has no batch pool on spot (batch.capacity.spot)",
        "prewarm_lead_minutes": "it declares no traffic.spikes, or sets realtime.prewarm: off",
    }.get(name, "it declares no traffic.spikes to pre-warm for")


def service_values(values: Mapping[str, object]) -> dict[str, Any]:
    """The spec mapping inside the stack's config values."""
    service = values.get(SERVICE_KEY)
    if not isinstance(service, Mapping):
        raise SimulateError("--stack", "the stack has no inferstack:service mapping")
    return dict(service)


def apply(
    values: Mapping[str, object],
    candidate: Candidate,
    knobs: Mapping[str, Knob],
    auto_targets: Mapping[str, float],
) -> dict[str, object]:
    """The stack's config values with a candidate's knobs set (`field_values` says which)."""
    updated = dict(values)
    service = copy.deepcopy(service_values(values))
    for path, value in field_values(candidate, knobs, auto_targets, service).items():
        node = service
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    updated[SERVICE_KEY] = service
    return updated


def field_values(
    candidate: Candidate,
    knobs: Mapping[str, Knob],
    auto_targets: Mapping[str, float],
    service: Mapping[str, Any],
) -> dict[tuple[str, ...], Value | list[int]]:
    """Spec path -> value for a candidate; the target is the metric's auto target times a factor.

    A new max batch size keeps the preferred sizes that still fit (a preferred size above it
    is refused by the spec).
    """
    chosen = dict(candidate)
    fields: dict[tuple[str, ...], Value | list[int]] = {}
    for name, value in chosen.items():
        if name == "target_factor":
            metric = str(chosen.get("metric", _current_metric(service)))
            fields[knobs[name].path] = _target(auto_targets[metric], float(value))
        else:
            fields[knobs[name].path] = value
    for path, number in fields.items():
        if isinstance(number, float) and number.is_integer():
            fields[path] = int(number)  # 1 ms, not 1.0 ms, as a person writes it
    floor = chosen.get("min_replicas")
    if floor is not None and int(floor) > int(chosen.get("max_replicas", _current_max(service))):
        fields[MAX_REPLICAS_PATH] = int(floor)  # the spec refuses min > max: the max rises too
    if "max_batch_size" in chosen:
        preferred = service.get("batching", {}).get("preferred_batch_sizes") or []
        kept = [int(p) for p in preferred if int(p) <= int(chosen["max_batch_size"])]
        if kept != list(preferred):
            fields[("batching", "preferred_batch_sizes")] = kept
    return fields


def _current_max(service: Mapping[str, Any]) -> int:
    scaling = (service.get("realtime") or {}).get("scaling") or {}
    value = scaling.get("max_replicas")
    return int(value) if isinstance(value, int) else 0


def _current_metric(service: Mapping[str, Any]) -> str:
    scaling = (service.get("realtime") or {}).get("scaling") or {}
    return str(scaling.get("metric", "queue_depth"))


def _target(auto: float, factor: float) -> float:
    """A readable target: two significant figures, at least 1 for counts."""
    if auto <= 0:
        return 1.0
    raw = auto * factor
    digits = max(0, 1 - math.floor(math.log10(raw)))
    return max(1.0, round(raw, digits))
