"""The spec: the one declaration a user writes for an inference service.

Everything else (sizing, resources, policies) is derived from it. Loading validates the whole
document at once and raises a `SpecError` whose problems each name the field path and the fix,
before any resource exists. Checks that need the measured profile (cold start against the
budget, batch compute against the budget) live in `inferstack.components.planning.sizing`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from croniter import croniter
from pydantic import (
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from inferstack.components.planning.gpus import GPU_TYPES
from inferstack.components.planning.model_delivery import ModelCache, digest_problem, uri_problem
from inferstack.components.planning.validation import StrictModel, problems_from
from inferstack.contract.images import GPU_FLAVOUR, parse_image, runtime_image
from inferstack.contract.queues import QueueKind
from inferstack.contract.thresholds import (
    MAX_GPU_REPLICAS,
    MAX_QUEUE_DELAY_SHARE,
    gpu_replicas_excess,
    queue_delay_excess,
)
from inferstack.errors import Problem, SpecError

Auto = Literal["auto"]
DEFAULT_IMAGE = runtime_image(GPU_FLAVOUR)
"""The published image every pool runs unless the spec names one: the CUDA flavour (pools run on
GPUs, which a CPU build of torch cannot use)."""
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$")


def gpu_replicas_message(field: str, maximum: int, excess: str) -> str:
    """Why a pool's max replicas is refused (explicit here, or derived in sizing), and the fix."""
    return (
        f"{field} allows {maximum} GPU replicas, {excess}, which the policy pack's "
        f"bounded-gpu-capacity rule blocks; lower it (or the traffic it is derived from), or raise "
        "guardrails.max_gpu_replicas together with the pack's maxGpuReplicas"
    )


class _Strict(StrictModel):
    """Base for every spec section: unknown keys are errors, so typos never pass silently."""


class ModelSource(_Strict):
    """Where the model comes from and how to load it."""

    uri: str = Field(
        description="builtin://mlp, s3://BUCKET/KEY, gs://BUCKET/OBJECT, "
        "hf://ORG/REPO@COMMIT/PATH, "
        "https://... (with sha256), file:///opt/inferstack/model/FILE (baked), or module:Class"
    )
    sha256: str | None = Field(
        default=None,
        validate_default=True,  # an https URI without one is refused here
        description="the model file's sha256 (sha256sum FILE); required for https",
    )
    cache: ModelCache = Field(
        default_factory=ModelCache, description="the volume a fetched model is written to"
    )
    download_mb_per_s: float | None = Field(
        default=None, gt=0, description="MB/s a pod downloads the model at (default 100)"
    )
    format: Literal["builtin", "torchscript", "torch_export", "handler"] | None = Field(
        default=None, description="loader to use; inferred from the URI when omitted"
    )
    profile: str | None = Field(
        default=None,
        description="path to the measured profile JSON; the built-in model ships its own",
    )
    accept_profile_of: str | None = Field(
        default=None,
        description="the other model URI whose profile `profile` is, to size from it knowingly "
        "(sizing refuses a profile of another model otherwise; the preview warns)",
    )

    @field_validator("uri")
    @classmethod
    def _reachable_from_pods(cls, value: str) -> str:
        problem = uri_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("sha256")
    @classmethod
    def _digest(cls, value: str | None, info: ValidationInfo) -> str | None:
        problem = digest_problem(info.data.get("uri"), value)
        if problem is not None:
            raise ValueError(problem)
        return value


class Spike(_Strict):
    """A known, recurring traffic spike: when it starts (cron in a timezone), how long, how high."""

    cron: str = Field(description="five-field cron of the spike's start, in `timezone`")
    timezone: str = Field(description="IANA timezone, e.g. America/New_York")
    duration_minutes: int = Field(gt=0, le=1440, description="how long the spike lasts")
    rps: float = Field(gt=0, description="requests per second during the spike, at most peak_rps")

    @field_validator("cron")
    @classmethod
    def _cron_is_valid(cls, value: str) -> str:
        return _fixed_time_cron(
            value,
            "pre-warm needs one fixed start time per spike; use a single minute and hour (e.g. "
            "'30 8 * * 1-5') and declare one spike per start time",
        )

    @field_validator("timezone")
    @classmethod
    def _timezone_is_known(cls, value: str) -> str:
        return _known_timezone(value)


def _fixed_time_cron(value: str, why_fixed: str) -> str:
    """`value` if it is a five-field cron with one fixed minute and hour; `why_fixed` if not."""
    if len(value.split()) != 5 or not croniter.is_valid(value):
        raise ValueError(
            f"{value!r} is not a five-field cron expression; write e.g. '0 9 * * 1-5' "
            "(minute hour day-of-month month day-of-week)"
        )
    minute, hour = value.split()[:2]
    if not (minute.isdigit() and hour.isdigit()):
        raise ValueError(f"{value!r}: {why_fixed}")
    return value


def _known_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{value!r} is not an IANA timezone; use a name such as 'America/New_York' or 'UTC'"
        ) from None
    return value


class Traffic(_Strict):
    """Declared synchronous traffic: what the realtime pool must carry."""

    baseline_rps: float = Field(ge=0, description="steady demand outside spikes")
    peak_rps: float = Field(gt=0, description="the highest demand to serve within the budget")
    spikes: list[Spike] = Field(
        default_factory=list,
        description="known recurring spikes; each gets a pre-warm window (`realtime.prewarm`)",
    )
    ramp_minutes: float | None = Field(
        default=None,
        gt=0,
        description="the shortest time in which undeclared demand can climb from baseline_rps "
        "to peak_rps; sizes the scale-up policy and says whether the cold start can follow it. "
        "Unset: a step (every peak replica may be needed in one HPA sync)",
    )

    # Cross-field checks as field validators of the later field (`info.data` holds the earlier
    # ones that passed), so that each problem is reported at the field to change.
    @field_validator("peak_rps")
    @classmethod
    def _peak_not_below_baseline(cls, value: float, info: ValidationInfo) -> float:
        baseline = info.data.get("baseline_rps")
        if baseline is not None and value < baseline:
            raise ValueError(
                f"peak_rps ({value:g}) is below baseline_rps ({baseline:g}); "
                "set peak_rps to at least the baseline"
            )
        return value

    @field_validator("spikes")
    @classmethod
    def _spikes_within_peak(cls, value: list[Spike], info: ValidationInfo) -> list[Spike]:
        peak = info.data.get("peak_rps")
        for index, spike in enumerate(value):
            if peak is not None and spike.rps > peak:
                raise ValueError(
                    f"spikes[{index}].rps ({spike.rps:g}) exceeds peak_rps ({peak:g}); "
                    f"raise peak_rps to at least {spike.rps:g}"
                )
        return value


class Batching(_Strict):
    """Dynamic batching knobs of the runtime (Triton semantics)."""

    max_batch_size: int = Field(
        default=32, ge=1, le=4096, description="the largest batch the runtime forms"
    )
    preferred_batch_sizes: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=list,
        description="batch sizes dispatched as soon as they form, without waiting out the delay",
    )
    max_queue_delay_ms: float = Field(
        default=5.0,
        ge=0,
        description="the longest a request waits for its batch to fill (a few ms is typical)",
    )
    instances_per_gpu: int = Field(
        default=1, ge=1, le=16, description="model instances per GPU, each in its own process"
    )
    queue_limit: int = Field(
        default=1024, ge=1, validate_default=True, description="requests admitted before 429"
    )
    request_timeout_ms: float | None = Field(
        default=None, gt=0, description="reject requests older than this before compute"
    )

    @field_validator("preferred_batch_sizes")
    @classmethod
    def _preferred_within_max(cls, value: list[int], info: ValidationInfo) -> list[int]:
        largest = info.data.get("max_batch_size")
        too_big = [size for size in value if largest is not None and size > largest]
        if too_big:
            raise ValueError(
                f"preferred_batch_sizes {too_big} exceed max_batch_size {largest}; "
                "remove them or raise max_batch_size"
            )
        return value

    @field_validator("queue_limit")
    @classmethod
    def _room_for_a_full_batch(cls, value: int, info: ValidationInfo) -> int:
        largest = info.data.get("max_batch_size")
        if largest is not None and value < largest:
            raise ValueError(
                f"queue_limit ({value}) is below max_batch_size ({largest}), so a full batch "
                "can never form; raise queue_limit"
            )
        return value


class Gpu(_Strict):
    """The accelerator of one replica."""

    type: str = Field(description=f"one of {', '.join(GPU_TYPES)}")
    count: int = Field(default=1, ge=1, le=8, description="GPUs per replica")

    @field_validator("type")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in GPU_TYPES:
            raise ValueError(f"unknown GPU type {value!r}; use one of: {', '.join(GPU_TYPES)}")
        return value


class ScaleUpPolicy(_Strict):
    """The realtime pool's HPA scale-up behaviour, set instead of derived: each field unset keeps
    what sizing derives from the cold start and `traffic.ramp_minutes`.

    Rendered as the ScaledObject's `advanced.horizontalPodAutoscalerConfig.behavior.scaleUp`:
    a `Pods` and a `Percent` policy over one period under `selectPolicy: Max`. The bounds are the
    HPA API's (`periodSeconds` 1-1800, `stabilizationWindowSeconds` 0-3600).
    """

    pods: int | None = Field(
        default=None, ge=1, le=1000, description="replicas one period may add (a Pods policy)"
    )
    percent: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="percent of the current replicas one period may add (a Percent policy)",
    )
    period_seconds: int | None = Field(
        default=None, ge=1, le=1800, description="the period both policies count over"
    )
    stabilization_seconds: int | None = Field(
        default=None,
        ge=0,
        le=3600,
        description="how long a higher recommendation must hold before the pool grows "
        "(0: act on a rise at its first sync)",
    )


class RealtimeScaling(_Strict):
    """Demand autoscaling of the synchronous pool."""

    metric: Literal["queue_depth", "in_flight", "rps"] = Field(
        default="rps",
        description="the demand signal KEDA scales on: requests queued, in flight, or per second. "
        "Default rps: on a simulated day of bursty diurnal traffic it holds the budget as well as "
        "queue depth with an eighth of the replica moves and less cost (docs: concepts)",
    )
    target_per_replica: float | Auto = Field(
        default="auto",
        description="the metric's value per replica above which the pool scales out; auto: what "
        "the gauge reads at the sized rate, from the batcher model (mean queue depth or in-flight "
        "count), or the sized rate itself (rps)",
    )
    min_replicas: int | Auto = Field(
        default="auto", description="auto: the replicas the baseline needs within the budget"
    )
    max_replicas: int | Auto = Field(
        default="auto", description="auto: the replicas the peak needs within the budget"
    )
    scale_up: ScaleUpPolicy | None = Field(
        default=None,
        description="the HPA's scale-up policy, e.g. {pods: 4, period_seconds: 15}; unset: "
        "derived from the cold start and traffic.ramp_minutes (`inferstack tune` searches it)",
    )

    @field_validator("target_per_replica")
    @classmethod
    def _positive_target(cls, value: float | str) -> float | str:
        if value != "auto" and float(value) <= 0:
            raise ValueError("must be > 0 or 'auto'")
        return value

    @field_validator("min_replicas", "max_replicas")
    @classmethod
    def _non_negative(cls, value: int | str) -> int | str:
        if value != "auto" and int(value) < 0:
            raise ValueError("must be >= 0 or 'auto'")
        return value

    @field_validator("max_replicas")
    @classmethod
    def _max_serves_and_holds_min(cls, value: int | str, info: ValidationInfo) -> int | str:
        minimum = info.data.get("min_replicas")
        if isinstance(minimum, int) and isinstance(value, int) and minimum > value:
            raise ValueError(
                f"min_replicas ({minimum}) exceeds max_replicas ({value}); "
                "lower min_replicas or raise max_replicas"
            )
        if value == 0:
            raise ValueError("max_replicas is 0, so nothing can ever serve; set it to 1 or more")
        return value


class Realtime(_Strict):
    """The synchronous pool: on-demand capacity only, scaled on demand."""

    gpu: Gpu = Field(description="the accelerator of one replica")
    scaling: RealtimeScaling = Field(
        default_factory=RealtimeScaling, description="demand autoscaling"
    )
    scale_to_zero: bool = Field(
        default=False,
        validate_default=True,
        description="no replicas while idle; requests are held while one starts (refused when "
        "the cold start exceeds the budget, unless allow_cold_start_over_budget)",
    )
    allow_cold_start_over_budget: bool = Field(
        default=False,
        description="accept that the first request after scale-to-zero waits a full cold start",
    )
    request_hold_timeout_s: float | Auto = Field(
        default="auto", description="how long the HTTP add-on holds a request while waking"
    )
    prewarm: Literal["auto", "off"] = Field(
        default="auto",
        description="auto: a replica floor for each spike, raised early by the measured cold "
        "start; off: none",
    )
    prewarm_lead_minutes: int | None = Field(
        default=None,
        ge=0,
        le=720,
        validate_default=True,
        description="how many minutes before each declared spike its replica floor rises; "
        "unset: the measured cold start, rounded up (`inferstack tune` searches it)",
    )

    @field_validator("scale_to_zero")
    @classmethod
    def _zero_is_consistent(cls, value: bool, info: ValidationInfo) -> bool:
        scaling = info.data.get("scaling")
        minimum = scaling.min_replicas if isinstance(scaling, RealtimeScaling) else None
        if not value and minimum == 0:
            raise ValueError(
                "scaling.min_replicas is 0 but scale_to_zero is false; set scale_to_zero: true "
                "(requests are then held while a replica starts) or min_replicas >= 1"
            )
        if value and isinstance(minimum, int) and minimum > 0:
            raise ValueError(
                f"scale_to_zero is true but scaling.min_replicas is {minimum}; "
                "set min_replicas to 0 or 'auto', or scale_to_zero to false"
            )
        return value

    @field_validator("prewarm_lead_minutes")
    @classmethod
    def _lead_needs_prewarm(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and info.data.get("prewarm") == "off":
            raise ValueError(
                f"{value} minutes of lead, but prewarm is off, so no floor is raised; remove "
                "prewarm_lead_minutes or set prewarm: auto"
            )
        return value


class Queue(_Strict):
    """The queue the asynchronous pool consumes."""

    kind: QueueKind = Field(description="the queue service the worker consumes")
    name: str | None = Field(
        default=None,
        description="queue, subscription or stream name; `<service>-jobs` when omitted",
    )
    redis_address: str | None = Field(
        default=None,
        validate_default=True,
        description="host:port of Redis, for kind redis-streams",
    )

    @field_validator("redis_address")
    @classmethod
    def _redis_has_address(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("kind") == "redis-streams" and not value:
            raise ValueError("kind redis-streams needs redis_address (host:port)")
        return value


class Capacity(_Strict):
    """Where the asynchronous pool runs: spot first, on-demand when spot is gone."""

    spot: bool = Field(default=True, description="run the pool on spot capacity")
    fallback: Literal["on_demand", "none"] = Field(
        default="on_demand",
        description="on_demand: on-demand nodes while spot is unavailable; none: spot only",
    )
    spot_share: float | None = Field(
        default=None,
        ge=0,
        le=1,
        validate_default=True,
        description="share of the pool's replicas on spot (0..1), the rest always on-demand; "
        "unset: 1 with spot, 0 without (`inferstack tune` searches it)",
    )

    @field_validator("spot_share")
    @classmethod
    def _share_needs_spot(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is not None and value > 0 and info.data.get("spot") is False:
            raise ValueError(
                f"{value:g} of the replicas on spot, but spot is false; remove spot_share or "
                "set spot: true"
            )
        return value


class BatchScaling(_Strict):
    """Queue-driven scaling of the asynchronous pool."""

    metric: Literal["backlog"] = Field(
        default="backlog", description="messages waiting in the queue"
    )
    target_per_replica: int | Auto = Field(
        default="auto",
        description="messages waiting per replica above which the pool scales out; auto: what "
        "a replica clears within a fixed drain time at its sized throughput",
    )
    min_replicas: int = Field(
        default=0, ge=0, description="replicas kept while the queue is empty (0: from zero)"
    )
    max_replicas: int = Field(ge=1, description="a hard ceiling: GPU pools are never unbounded")

    @field_validator("target_per_replica")
    @classmethod
    def _positive_target(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError("target_per_replica must be >= 1 or 'auto'")
        return value

    @field_validator("max_replicas")
    @classmethod
    def _holds_min(cls, value: int, info: ValidationInfo) -> int:
        minimum = info.data.get("min_replicas")
        if minimum is not None and minimum > value:
            raise ValueError(
                f"min_replicas ({minimum}) exceeds max_replicas ({value}); "
                "lower min_replicas or raise max_replicas"
            )
        return value


class BatchSchedule(_Strict):
    """When the queue work arrives: runs that start on a cron and bring a day's items each.

    The cost estimate and `inferstack simulate` both read it, so they assume the same arrivals
    (without it, both spread `expected_items_per_day` evenly over the day).
    """

    cron: str = Field(
        description="five-field cron of each run's start, in `timezone`, one fixed minute and "
        "hour (e.g. '0 1 * * *': nightly at 01:00)"
    )
    timezone: str = Field(default="UTC", description="IANA timezone of the cron")
    duration_minutes: int = Field(
        gt=0,
        le=1440,
        description="how long a run's items keep arriving; `expected_items_per_day` arrive "
        "evenly over it, once per run",
    )

    @field_validator("cron")
    @classmethod
    def _cron_is_valid(cls, value: str) -> str:
        return _fixed_time_cron(
            value,
            "a run needs one fixed start time; use a single minute and hour (e.g. '0 1 * * *')",
        )

    @field_validator("timezone")
    @classmethod
    def _timezone_is_known(cls, value: str) -> str:
        return _known_timezone(value)


class BatchPool(_Strict):
    """The asynchronous pool: queue work on spot capacity with on-demand fallback."""

    gpu: Gpu = Field(description="the accelerator of one replica")
    queue: Queue = Field(description="the queue the pool consumes")
    capacity: Capacity = Field(default_factory=Capacity, description="spot and its fallback")
    scaling: BatchScaling = Field(description="queue-driven scaling")
    max_job_seconds: int = Field(
        default=600,
        ge=1,
        le=43200,
        description="the longest one message may take; sets the queue's visibility timeout "
        "or ack deadline",
    )
    expected_items_per_day: float | None = Field(
        default=None,
        ge=0,
        description="queue volume, for the cost estimate and the simulation; with `schedule`, "
        "what each run brings",
    )
    schedule: BatchSchedule | None = Field(
        default=None,
        description="when the items arrive, e.g. {cron: '0 1 * * *', duration_minutes: 240} "
        "for a nightly run; unset: evenly around the clock",
    )


class Guardrails(_Strict):
    """The policy pack's limits, as this spec is judged by them: the spec refuses what the pack
    would block, with the pack's words, so `preview` says it before `check` does.

    The defaults are the pack's. A team that relaxes a pack setting raises the matching field here
    too; that is the one explicit step that lets a spec past a default limit.
    """

    max_queue_delay_share: float = Field(
        default=MAX_QUEUE_DELAY_SHARE,
        gt=0,
        le=1,
        description="queue-delay-within-budget's maxQueueDelayShare: the share of "
        "latency_budget_ms the batching wait may take",
    )
    max_gpu_replicas: int = Field(
        default=MAX_GPU_REPLICAS,
        ge=1,
        description="bounded-gpu-capacity's maxGpuReplicas: the highest max replicas of a pool",
    )


class Slo(_Strict):
    """The service-level objective the simulated traffic is judged by (`inferstack tune`)."""

    attainment: float = Field(
        default=99.0,
        gt=0,
        description="percent of all synchronous requests answered within latency_budget_ms "
        "(rejected and timed-out requests count as misses); 99 by default because the budget "
        "is a p99. Each further nine costs replicas: `inferstack tune` prints the price of each",
    )

    @field_validator("attainment")
    @classmethod
    def _below_hundred(cls, value: float) -> float:
        if value >= 100:
            raise ValueError(
                f"{value:g} is not below 100: no configuration answers every request within "
                "the budget (a cold start or a burst always misses some); use e.g. 99.9 or 99.99"
            )
        return value


class InferenceServiceSpec(_Strict):
    """One inference service: what it serves, how fast, how much traffic, on what capacity."""

    name: str = Field(
        description="DNS label (1-40 lowercase letters, digits and '-') that names every resource"
    )
    model: ModelSource = Field(description="the model and the profile sizing reads")
    image: str = Field(
        default=DEFAULT_IMAGE,
        description="the runtime image: repository:tag, repository@sha256:digest, or both",
    )
    latency_budget_ms: float = Field(gt=0, description="p99 on the synchronous path")
    slo: Slo = Field(
        default_factory=Slo,
        description="the share of requests that must meet latency_budget_ms",
    )
    traffic: Traffic = Field(
        description="declared demand (`inferstack fit-traffic` proposes it from a trace)"
    )
    batching: Batching = Field(
        default_factory=Batching, description="the runtime's dynamic batching"
    )
    realtime: Realtime | None = Field(
        default=None,
        description="the synchronous pool, on-demand only (declare realtime, batch or both)",
    )
    batch: BatchPool | None = Field(
        default=None, description="the queue pool, spot with on-demand fallback"
    )
    prices: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="instance type -> {on_demand, spot, gpus} overriding the shipped list prices",
    )
    price_cloud: Literal["aws", "gcp"] = Field(
        default="aws", description="whose prices to use for a plain Kubernetes target"
    )
    guardrails: Guardrails = Field(
        default_factory=Guardrails, description="the policy pack's limits the spec applies"
    )

    @field_validator("image")
    @classmethod
    def _image_reference(cls, value: str) -> str:
        # A tag or a digest, or both: `repository:tag@sha256:...` pins one image for good.
        parse_image(value)
        return value

    @field_validator("name")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if not _DNS_LABEL.match(value):
            raise ValueError(
                f"{value!r} is not a DNS label; use 1-40 lowercase letters, digits and '-', "
                "starting with a letter"
            )
        return value


INVALID: Final = object()
"""Stands for a top-level field that failed its own validation (reported as such)."""


def cross_field_problems(sections: Mapping[str, Any]) -> list[Problem]:
    """What is wrong between fields, each at the field to change (paths without a prefix).

    `sections` maps each top-level field to its validated value, or to `INVALID` when it failed
    its own validation (reported as such): the checks that read it are skipped, so that one run
    lists these beside the structural problems.
    """
    problems: list[Problem] = []
    if sections.get("realtime") is None and sections.get("batch") is None:
        problems.append(
            Problem(
                "realtime",
                "declare at least one pool: `realtime` (synchronous) or `batch` (queue)",
            )
        )
    budget = sections.get("latency_budget_ms")
    batching = sections.get("batching")
    guardrails = sections.get("guardrails")
    if isinstance(budget, float | int) and isinstance(batching, Batching):
        delay = batching.max_queue_delay_ms
        if delay >= budget:
            problems.append(
                Problem(
                    "batching.max_queue_delay_ms",
                    f"{delay:g} is not below latency_budget_ms ({budget:g}), so batching alone "
                    "eats the budget; lower max_queue_delay_ms (a few ms is typical)",
                )
            )
        elif isinstance(guardrails, Guardrails) and (
            excess := queue_delay_excess(delay, budget, guardrails.max_queue_delay_share)
        ):
            allowed = budget * guardrails.max_queue_delay_share
            problems.append(
                Problem(
                    "batching.max_queue_delay_ms",
                    f"allows {excess}, which the policy pack's queue-delay-within-budget rule "
                    f"blocks; lower max_queue_delay_ms to at most {allowed:g}, or raise "
                    "latency_budget_ms, or raise guardrails.max_queue_delay_share together with "
                    "the pack's maxQueueDelayShare",
                )
            )
    if isinstance(guardrails, Guardrails):
        for path in ("realtime", "batch"):
            pool = sections.get(path)
            maximum = pool.scaling.max_replicas if isinstance(pool, Realtime | BatchPool) else None
            if isinstance(maximum, int) and (
                replicas := gpu_replicas_excess(maximum, guardrails.max_gpu_replicas)
            ):
                field = f"{path}.scaling.max_replicas"
                problems.append(Problem(field, gpu_replicas_message(field, maximum, replicas)))
    realtime, traffic = sections.get("realtime"), sections.get("traffic")
    if (
        isinstance(realtime, Realtime)
        and isinstance(traffic, Traffic)
        and realtime.prewarm_lead_minutes is not None
        and not traffic.spikes
    ):
        problems.append(
            Problem(
                "realtime.prewarm_lead_minutes",
                "set, but traffic declares no spikes to pre-warm for; remove it, or declare the "
                "spike under traffic.spikes",
            )
        )
    model = sections.get("model")
    if isinstance(model, ModelSource) and (
        model.profile is None and not model.uri.startswith("builtin://")
    ):
        problems.append(
            Problem(
                "model.profile",
                "required for a non-built-in model; measure one with `inferstack profile "
                "--model URI --out FILE` and set model.profile to FILE",
            )
        )
    return problems


def _valid_sections(data: Mapping[str, Any], error: ValidationError | None) -> dict[str, Any]:
    """Each top-level field of `data` that passes its own validation, unknown keys left out.

    Unknown keys are reported already; leaving them out lets the section they sit in be judged
    on the rest, so that a typo does not hide a refusal beside it.
    """
    unknown = [
        tuple(detail["loc"])
        for detail in (error.errors() if error else [])
        if detail["type"] == "extra_forbidden"
    ]
    cleaned = _without(data, unknown)
    sections: dict[str, Any] = {}
    for name, info in InferenceServiceSpec.model_fields.items():
        if name not in cleaned:
            if not info.is_required():
                sections[name] = info.get_default(call_default_factory=True)
            continue
        # The field's type with its constraints (gt=0 and such), as the model applies them.
        adapter: TypeAdapter[Any] = TypeAdapter(info.rebuild_annotation())
        try:
            sections[name] = adapter.validate_python(cleaned[name])
        except ValidationError:
            sections[name] = INVALID
    return sections


def _without(data: Any, locations: list[tuple[int | str, ...]]) -> Any:
    """`data` with the keys at `locations` removed (a copy; the input is left alone)."""
    if isinstance(data, Mapping):
        drop = {loc[0] for loc in locations if len(loc) == 1}
        return {
            key: _without(value, [loc[1:] for loc in locations if len(loc) > 1 and loc[0] == key])
            for key, value in data.items()
            if key not in drop
        }
    if isinstance(data, list):
        return [
            _without(item, [loc[1:] for loc in locations if len(loc) > 1 and loc[0] == index])
            for index, item in enumerate(data)
        ]
    return data


def _spec_message(detail: Mapping[str, Any]) -> str:
    if detail["type"] == "extra_forbidden":
        return "unknown field; remove it or check its spelling against the spec reference"
    if detail["type"] == "missing":
        return "required field is missing; add it"
    return str(detail["msg"]).removeprefix("Value error, ")


def parse_spec(
    data: Mapping[str, Any], *, source: str = "spec", prefix: str = ""
) -> InferenceServiceSpec:
    """Validate a mapping into a spec, or raise `SpecError` listing every problem."""
    if not isinstance(data, Mapping):
        raise SpecError(
            [
                Problem(
                    prefix or "(spec)", f"expected a mapping of fields, got {type(data).__name__}"
                )
            ],
            source=source,
        )
    try:
        spec = InferenceServiceSpec.model_validate(dict(data))
    except ValidationError as error:
        # Structural problems first (an unknown key often explains the rest), then what the
        # fields that are valid on their own find wrong between them: every problem, one run.
        problems = problems_from(error, prefix, _spec_message)
        problems.sort(key=lambda problem: not problem.message.startswith("unknown field"))
        seen = {problem.path for problem in problems}
        for problem in cross_field_problems(_valid_sections(data, error)):
            prefixed = _prefixed(problem, prefix)
            if prefixed.path not in seen:
                problems.append(prefixed)
        raise SpecError(problems, source=source) from None
    sections = {name: getattr(spec, name) for name in InferenceServiceSpec.model_fields}
    found = [_prefixed(problem, prefix) for problem in cross_field_problems(sections)]
    if found:
        raise SpecError(found, source=source)
    return spec


def _prefixed(problem: Problem, prefix: str) -> Problem:
    return Problem(f"{prefix}.{problem.path}" if prefix else problem.path, problem.message)


def load_spec_file(path: str | Path) -> InferenceServiceSpec:
    """Load a spec from a YAML file: the document itself, or under an `inferstack:service` key."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise SpecError(
            [Problem(str(path), f"cannot read the spec file ({reason}); check the path")],
            source=str(path),
        ) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise SpecError(
            [Problem(str(path), f"not valid YAML: {error}")], source=str(path)
        ) from None
    if isinstance(document, Mapping) and "inferstack:service" in document:
        document = document["inferstack:service"]
    return parse_spec(document, source=str(path))


CONFIG_KEY = "service"
"""The stack config key (`inferstack:service`) holding the spec."""


def load_spec_from_config(namespace: str = "inferstack") -> InferenceServiceSpec:
    """Load the spec from the Pulumi stack config key `<namespace>:service`.

    Called by stack programs only: components never read config themselves.
    """
    import pulumi  # deferred: the runtime image has no Pulumi

    raw = pulumi.Config(namespace).get_object(CONFIG_KEY)
    if raw is None:
        raise SpecError(
            [
                Problem(
                    f"{namespace}:{CONFIG_KEY}", "missing from the stack config; add the spec there"
                )
            ],
            source="stack config",
        )
    return parse_spec(
        raw, source=f"stack config {namespace}:{CONFIG_KEY}", prefix=f"{namespace}:{CONFIG_KEY}"
    )
