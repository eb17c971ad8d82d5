"""Sizing: replica counts, scaling targets, pre-warm windows and drain times, with their reasons.

Pure functions of the spec and the measured profile: no Pulumi, no I/O. Every `auto` in the spec
becomes a `Derived` value that carries a one-line reason, so the preview can show not only what
was chosen but why. Checks that need the profile (does any batch fit the budget, is the cold
start acceptable for sync scale-to-zero) raise `SpecError` here, before any resource exists.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from inferstack.components.planning.clouds import Target, spot_notice
from inferstack.components.planning.cold_start import start_label
from inferstack.components.planning.replica_model import BatcherRules, ComputeLaw, steady_state
from inferstack.components.planning.scale_up import Ramp, ScaleUp, derive_scale_up
from inferstack.components.planning.schedule import (
    CronShiftError,
    next_occurrence_utc,
    real_lead_minutes,
    shift_cron,
    skipped_dates,
)
from inferstack.components.planning.spec import (
    BatchPool,
    InferenceServiceSpec,
    Realtime,
    RealtimeScaling,
    gpu_replicas_message,
)
from inferstack.contract.pods import PRESTOP_SECONDS
from inferstack.contract.thresholds import gpu_replicas_excess
from inferstack.errors import Problem, SpecError
from inferstack.profile import BatchPoint, ColdStart, Profile

T = TypeVar("T")

TARGET_UTILISATION = 0.7
"""Share of measured throughput a replica is sized for: queueing delay grows without bound as
utilisation nears 1, so the rest is headroom that keeps the p99 inside the budget."""
BACKLOG_DRAIN_SECONDS = 60
"""The async pool adds a replica when the backlog per replica would take longer than this."""
DST_MARGIN_MINUTES = 60
INTERRUPTION_MARGIN_SECONDS = 15
"""Part of the notice kept back for the node drain itself and the final acknowledgements."""
HOLD_TIMEOUT_FACTOR = 1.5
STARTUP_PROBE_FACTOR = 3.0
MIN_STARTUP_SECONDS = 30


@dataclass(frozen=True)
class Derived(Generic[T]):
    """A derived number and the one-line reason it has that value."""

    value: T
    reason: str


@dataclass(frozen=True)
class PrewarmWindow:
    """A KEDA cron trigger that raises the replica floor before and during a known spike."""

    spike_index: int
    timezone: str
    start_cron: str
    end_cron: str
    desired_replicas: int
    lead_minutes: int
    next_start_utc: str
    reason: str


@dataclass(frozen=True)
class RealtimeSizing:
    """What the synchronous pool gets."""

    batch_size: Derived[int]
    replica_rps: Derived[float]
    target_per_replica: Derived[float]
    min_replicas: Derived[int]
    max_replicas: Derived[int]
    baseline_replicas: Derived[int]
    """Replicas the declared baseline needs at the sized rate (0 when the baseline is 0)."""
    peak_replicas: Derived[int]
    """Replicas the declared peak needs at the sized rate, before max_replicas caps them."""
    prewarm: list[PrewarmWindow]
    startup_seconds: Derived[int]
    termination_grace_seconds: Derived[int]
    request_hold_timeout_seconds: Derived[int] | None
    scale_up: Derived[ScaleUp]
    """The HPA's scale-up policy and KEDA's polling, from the cold start and the declared ramp."""


@dataclass(frozen=True)
class BatchSizing:
    """What the asynchronous pool gets."""

    batch_size: Derived[int]
    replica_items_per_second: Derived[float]
    target_per_replica: Derived[int]
    min_replicas: Derived[int]
    max_replicas: Derived[int]
    termination_grace_seconds: Derived[int]
    startup_seconds: Derived[int]
    """How long the worker may load and warm up before its health endpoint must answer."""
    spot_share: Derived[float]
    """Share of the replicas on spot capacity; the rest run on-demand whatever spot does."""


@dataclass(frozen=True)
class Sizing:
    """Everything sizing derived for one service, plus what the user should know about it."""

    profile_hardware: str
    cold_start_seconds: Derived[float]
    realtime: RealtimeSizing | None
    batch: BatchSizing | None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, the shape the preview prints and the stack exports."""
        return asdict(self)


def _fits_budget(spec: InferenceServiceSpec, point: BatchPoint) -> bool:
    return spec.batching.max_queue_delay_ms + point.latency_ms.p99 <= spec.latency_budget_ms


def _largest_feasible_batch(spec: InferenceServiceSpec, profile: Profile) -> BatchPoint:
    measured = [p for p in profile.batches if p.batch_size <= spec.batching.max_batch_size]
    feasible = [p for p in measured if _fits_budget(spec, p)]
    if feasible:
        return feasible[-1]
    smallest = measured[0] if measured else profile.batches[0]
    raise SpecError(
        [
            Problem(
                "latency_budget_ms",
                f"{spec.latency_budget_ms:g} ms cannot hold max_queue_delay_ms "
                f"{spec.batching.max_queue_delay_ms:g} plus the p99 compute of batch "
                f"{smallest.batch_size} ({smallest.latency_ms.p99:g} ms on "
                f"{profile.hardware.device}); raise the budget, lower "
                "batching.max_queue_delay_ms, or profile faster hardware",
            )
        ]
    )


def _largest_measured_batch(spec: InferenceServiceSpec, profile: Profile) -> BatchPoint:
    measured = [p for p in profile.batches if p.batch_size <= spec.batching.max_batch_size]
    return measured[-1] if measured else profile.batches[0]


def _spike_replicas(rps: float, replica_rps: float, floor: int, ceiling: int) -> int:
    return min(ceiling, max(floor, math.ceil(rps / replica_rps)))


def _prewarm_windows(
    spec: InferenceServiceSpec,
    realtime: Realtime,
    profile: Profile,
    replica_rps: float,
    floor: int,
    ceiling: int,
    now: datetime,
) -> tuple[list[PrewarmWindow], list[str]]:
    """Each spike's pre-warm window, and a note for each spike that needs none."""
    if realtime.prewarm == "off":
        return [], []
    cold_minutes = math.ceil(profile.cold_start.total_seconds / 60)
    windows: list[PrewarmWindow] = []
    notes: list[str] = []
    problems: list[Problem] = []
    for index, spike in enumerate(spec.traffic.spikes):
        path = f"traffic.spikes[{index}].cron"
        replicas = _spike_replicas(spike.rps, replica_rps, floor, ceiling)
        if replicas <= floor:
            # A KEDA cron floor at or below minReplicaCount changes nothing: render none.
            notes.append(
                f"traffic.spikes[{index}]: no pre-warm window: the spike's {spike.rps:g} rps "
                f"needs {replicas} replica(s) at {replica_rps:.1f} rps each, no more than "
                f"min_replicas ({floor}), which are always up"
            )
            continue
        cold = profile.cold_start
        parts = _cold_parts(cold)
        if realtime.prewarm_lead_minutes is None:
            lead = cold_minutes
            note = f"cold start {cold.total_seconds:.0f} s: {parts}"
        else:
            lead = realtime.prewarm_lead_minutes
            note = (
                f"realtime.prewarm_lead_minutes set in the stack file; derived would be "
                f"{cold_minutes} min, the cold start of {cold.total_seconds:.0f} s"
            )
            if lead * 60 < cold.total_seconds:
                notes.append(
                    f"traffic.spikes[{index}]: realtime.prewarm_lead_minutes {lead} is shorter "
                    f"than the cold start ({cold.total_seconds:.0f} s), so the floor's new "
                    f"replicas serve {cold.total_seconds / 60 - lead:.1f} min into the spike; "
                    f"raise it to {cold_minutes} or unset it"
                )
        skipped = skipped_dates(spike.cron, spike.timezone, start=now)
        if skipped:
            problems.append(
                Problem(
                    path,
                    f"{spike.cron!r} falls in the hour that {spike.timezone} skips when clocks "
                    f"go forward (next on {skipped[0]:%Y-%m-%d}), so the spike's schedule would "
                    "not fire that day; move the start outside the DST change (e.g. 03:00)",
                )
            )
            continue
        try:
            check = real_lead_minutes(spike.cron, spike.timezone, lead, start=now)
            start = shift_cron(spike.cron, -lead)
            skipped_start = skipped_dates(start, spike.timezone, start=now)
            if check.shortest_real_minutes < lead or skipped_start:
                lead += DST_MARGIN_MINUTES
                when = check.first_short_occurrence or skipped_start[0]
                note += (
                    f" + {DST_MARGIN_MINUTES} min because a DST change shortens or skips the "
                    f"window (first on {when:%Y-%m-%d})"
                )
                start = shift_cron(spike.cron, -lead)
            end = shift_cron(spike.cron, spike.duration_minutes)
            if skipped_dates(end, spike.timezone, start=now):
                # An end time that does not exist would keep the floor up until the next day.
                end = shift_cron(spike.cron, spike.duration_minutes + DST_MARGIN_MINUTES)
                note += f"; ends {DST_MARGIN_MINUTES} min later to avoid the skipped hour"
        except CronShiftError as error:
            problems.append(Problem(path, str(error)))
            continue
        capped = " (capped by max_replicas)" if math.ceil(spike.rps / replica_rps) > ceiling else ""
        windows.append(
            PrewarmWindow(
                spike_index=index,
                timezone=spike.timezone,
                start_cron=start,
                end_cron=end,
                desired_replicas=replicas,
                lead_minutes=lead,
                next_start_utc=next_occurrence_utc(start, spike.timezone, now).isoformat(),
                reason=(
                    f"spike of {spike.rps:g} rps at '{spike.cron}' {spike.timezone} needs "
                    f"{replicas} replicas at {replica_rps:.1f} rps each{capped}; starts {lead} min "
                    f"early ({note}) and holds until the spike ends"
                ),
            )
        )
    if problems:
        raise SpecError(problems)
    return windows, notes


def _cold_start_checks(realtime: Realtime, spec: InferenceServiceSpec, profile: Profile) -> None:
    if not realtime.scale_to_zero:
        return
    cold = profile.cold_start
    problems: list[Problem] = []
    if cold.total_seconds * 1000 > spec.latency_budget_ms and not (
        realtime.allow_cold_start_over_budget
    ):
        problems.append(
            Problem(
                "realtime.scale_to_zero",
                f"the first request after idle waits a cold start of {cold.total_seconds:.0f} s "
                f"({start_label(cold)} {cold.node_provision.seconds:g} + image "
                f"{cold.image_pull.seconds:g} + "
                f"{_download_reason(cold)}"
                f"load {cold.model_load.seconds:g} + warm-up {cold.warmup.seconds:g}), far above "
                f"latency_budget_ms {spec.latency_budget_ms:g}; set "
                "realtime.allow_cold_start_over_budget: true to accept it, or scale_to_zero: false",
            )
        )
    timeout = realtime.request_hold_timeout_s
    if timeout != "auto" and float(timeout) < cold.total_seconds:
        problems.append(
            Problem(
                "realtime.request_hold_timeout_s",
                f"{float(timeout):g} s is shorter than the cold start "
                f"({cold.total_seconds:.0f} s), so held requests time out before a replica "
                "is ready; raise it to at least "
                f"{math.ceil(cold.total_seconds)} or use 'auto'",
            )
        )
    if problems:
        raise SpecError(problems)


def _startup_seconds(profile: Profile) -> Derived[int]:
    """How long a starting pod may take before its probes count: download (when the model is
    fetched), load and warm-up, with room."""
    cold = profile.cold_start
    parts = "download + " if cold.model_download is not None else ""
    return Derived(
        max(MIN_STARTUP_SECONDS, math.ceil(cold.pod_seconds * STARTUP_PROBE_FACTOR)),
        f"{STARTUP_PROBE_FACTOR:g} x {parts}measured model load + warm-up "
        f"({cold.pod_seconds:.1f} s), at least {MIN_STARTUP_SECONDS} s",
    )


def _cold_parts(cold: ColdStart) -> str:
    """What the full cold start is made of, for reason lines."""
    fetched = "download, " if cold.model_download is not None else ""
    return f"{start_label(cold)}, image, {fetched}load, warm-up"


def _download_reason(cold: ColdStart) -> str:
    """The download term of the cold start's reason line, empty when nothing is fetched."""
    download = cold.model_download
    if download is None:
        return ""
    return f"download {download.seconds:g} s ({download.note}) + "


def size_realtime(
    spec: InferenceServiceSpec, realtime: Realtime, profile: Profile, now: datetime
) -> tuple[RealtimeSizing, list[str]]:
    """Size the synchronous pool; returns the sizing and the warnings it produced."""
    _cold_start_checks(realtime, spec, profile)
    warnings: list[str] = []
    point = _largest_feasible_batch(spec, profile)
    gpus = realtime.gpu.count
    batch_size = Derived(
        point.batch_size,
        f"largest measured batch <= max_batch_size {spec.batching.max_batch_size} whose p99 "
        f"compute {point.latency_ms.p99:g} ms plus max_queue_delay_ms "
        f"{spec.batching.max_queue_delay_ms:g} fits the {spec.latency_budget_ms:g} ms budget",
    )
    rate = point.throughput_items_per_s * gpus * TARGET_UTILISATION
    replica_rps = Derived(
        round(rate, 2),
        f"{point.throughput_items_per_s:g} items/s at batch {point.batch_size} x {gpus} GPU(s) "
        f"x {TARGET_UTILISATION:.0%} target utilisation (headroom keeps queueing inside the p99)",
    )
    scaling = realtime.scaling
    baseline = spec.traffic.baseline_rps

    if scaling.min_replicas == "auto":
        if realtime.scale_to_zero:
            minimum = Derived(0, "scale_to_zero: idle replicas go away; requests are held on wake")
        elif baseline == 0:
            minimum = Derived(1, "baseline is 0 rps and scale_to_zero is off: one warm replica")
        else:
            needed = max(1, math.ceil(baseline / rate))
            minimum = Derived(
                needed, f"baseline {baseline:g} rps / {rate:.1f} rps per replica, rounded up"
            )
    else:
        minimum = Derived(int(scaling.min_replicas), "set in the spec")
        needed = math.ceil(baseline / rate)
        if minimum.value < needed and not realtime.scale_to_zero:
            warnings.append(
                f"realtime.scaling.min_replicas {minimum.value} is below the {needed} replicas "
                f"that baseline {baseline:g} rps needs; the autoscaler will add them, but each "
                "one costs a cold start"
            )

    at_peak = math.ceil(spec.traffic.peak_rps / rate)
    if scaling.max_replicas == "auto":
        maximum = Derived(
            max(minimum.value, at_peak, 1),
            f"peak {spec.traffic.peak_rps:g} rps / {rate:.1f} rps per replica, rounded up",
        )
        ceiling = spec.guardrails.max_gpu_replicas
        excess = gpu_replicas_excess(maximum.value, ceiling)
        if excess is not None:
            raise SpecError(
                [
                    Problem(
                        "realtime.scaling.max_replicas",
                        f"{gpu_replicas_message('auto', maximum.value, excess)} ({maximum.reason})",
                    )
                ]
            )
    else:
        maximum = Derived(int(scaling.max_replicas), "set in the spec")
        if maximum.value < at_peak:
            warnings.append(
                f"realtime.scaling.max_replicas {maximum.value} cannot carry peak "
                f"{spec.traffic.peak_rps:g} rps (needs {at_peak} at {rate:.1f} rps each): "
                "requests above that will queue past the budget or be rejected"
            )
        if maximum.value < minimum.value:
            raise SpecError(
                [
                    Problem(
                        "realtime.scaling.max_replicas",
                        f"{maximum.value} is below the derived min_replicas {minimum.value} "
                        f"({minimum.reason}); raise max_replicas or set min_replicas",
                    )
                ]
            )

    target = _realtime_target(spec, realtime, profile, point, rate)
    cold = profile.cold_start
    startup = _startup_seconds(profile)
    drain = spec.batching.queue_limit / (point.throughput_items_per_s * gpus)
    grace = Derived(
        PRESTOP_SECONDS + math.ceil(drain + spec.latency_budget_ms / 1000) + 5,
        f"{PRESTOP_SECONDS} s for endpoint removal + {drain:.1f} s to drain a full queue of "
        f"{spec.batching.queue_limit} + one latency budget + 5 s margin",
    )
    hold: Derived[int] | None = None
    if realtime.scale_to_zero:
        if realtime.request_hold_timeout_s == "auto":
            hold = Derived(
                math.ceil(cold.total_seconds * HOLD_TIMEOUT_FACTOR),
                f"{HOLD_TIMEOUT_FACTOR:g} x the full cold start ({cold.total_seconds:.0f} s: "
                f"{_cold_parts(cold)}), so a request held at zero outlives the wake",
            )
        else:
            hold = Derived(math.ceil(float(realtime.request_hold_timeout_s)), "set in the spec")
    windows, prewarm_notes = _prewarm_windows(
        spec, realtime, profile, rate, minimum.value, maximum.value, now
    )
    warnings.extend(prewarm_notes)
    behaviour, behaviour_reason, ramp_warnings = derive_scale_up(
        Ramp(
            baseline_rps=baseline,
            peak_rps=spec.traffic.peak_rps,
            ramp_minutes=spec.traffic.ramp_minutes,
            replica_rps=rate,
            headroom_share=1 / TARGET_UTILISATION - 1,
            min_replicas=minimum.value,
            peak_replicas=min(at_peak, maximum.value),
            cold_start_seconds=cold.total_seconds,
        )
    )
    warnings.extend(ramp_warnings)
    scale_up = _scale_up_override(scaling, behaviour, behaviour_reason)
    sizing = RealtimeSizing(
        batch_size=batch_size,
        replica_rps=replica_rps,
        target_per_replica=target,
        min_replicas=minimum,
        max_replicas=maximum,
        baseline_replicas=Derived(
            math.ceil(baseline / rate), f"baseline {baseline:g} rps / {rate:.1f} rps per replica"
        ),
        peak_replicas=Derived(
            at_peak, f"peak {spec.traffic.peak_rps:g} rps / {rate:.1f} rps per replica"
        ),
        prewarm=windows,
        startup_seconds=startup,
        termination_grace_seconds=grace,
        request_hold_timeout_seconds=hold,
        scale_up=scale_up,
    )
    return sizing, warnings


def _scale_up_override(scaling: RealtimeScaling, derived: ScaleUp, reason: str) -> Derived[ScaleUp]:
    """The derived scale-up behaviour, with the fields the stack file sets in its place."""
    policy = scaling.scale_up
    if policy is None:
        return Derived(derived, reason)
    overrides = {
        "pods": policy.pods,
        "percent": policy.percent,
        "period_seconds": policy.period_seconds,
        "stabilization_seconds": policy.stabilization_seconds,
    }
    chosen = {key: value for key, value in overrides.items() if value is not None}
    if not chosen:
        return Derived(derived, reason)
    written = ", ".join(f"{key} {value}" for key, value in chosen.items())
    was = ", ".join(f"{key} {getattr(derived, key)}" for key in chosen)
    return Derived(
        dataclasses.replace(derived, **chosen),
        f"realtime.scaling.scale_up set in the stack file ({written}; derived: {was}); the rest "
        f"derived: {reason}",
    )


def batcher_rules(spec: InferenceServiceSpec, gpus: int) -> BatcherRules:
    """The spec's batching as one replica with `gpus` GPUs runs it."""
    batching = spec.batching
    return BatcherRules(
        max_batch_size=batching.max_batch_size,
        preferred_batch_sizes=tuple(batching.preferred_batch_sizes),
        max_queue_delay_s=batching.max_queue_delay_ms / 1000,
        queue_limit=batching.queue_limit,
        instances=batching.instances_per_gpu * gpus,
    )


def compute_law(profile: Profile) -> ComputeLaw:
    """The profile's measured batch compute, as the batcher model samples it."""
    return ComputeLaw(
        sizes=tuple(p.batch_size for p in profile.batches),
        p50_s=tuple(p.latency_ms.p50 / 1000 for p in profile.batches),
        p99_s=tuple(p.latency_ms.p99 / 1000 for p in profile.batches),
    )


def _realtime_target(
    spec: InferenceServiceSpec,
    realtime: Realtime,
    profile: Profile,
    point: BatchPoint,
    rate: float,
) -> Derived[float]:
    """The gauge's per-replica value at the sized rate: where the HPA then holds the pool."""
    scaling = realtime.scaling
    if scaling.target_per_replica != "auto":
        return Derived(float(scaling.target_per_replica), "set in the spec")
    at = (
        f"{rate:,.0f} rps per replica ({TARGET_UTILISATION:.0%} of batch-{point.batch_size} "
        "throughput)"
    )
    if scaling.metric == "rps":
        return Derived(round(rate, 2), f"the sized rate: {at}; the rps gauge reads the rate itself")
    state = steady_state(batcher_rules(spec, realtime.gpu.count), compute_law(profile), rate)
    if scaling.metric == "queue_depth":
        return Derived(
            round(state.queue_depth, 1),
            f"mean queue depth {state.queue_depth:.1f} at {at}, from the batcher model",
        )
    return Derived(
        round(state.in_flight, 1),
        f"mean in flight {state.in_flight:.1f} (waiting + computing) at {at}, from the batcher "
        "model",
    )


def size_batch(
    spec: InferenceServiceSpec, pool: BatchPool, profile: Profile, target: Target
) -> BatchSizing:
    """Size the asynchronous pool: throughput, backlog target, bounds and the drain deadline."""
    point = _largest_measured_batch(spec, profile)
    rate = point.throughput_items_per_s * pool.gpu.count
    batch_size = Derived(
        point.batch_size,
        f"largest measured batch <= max_batch_size {spec.batching.max_batch_size}: queue work "
        "has no latency budget, so throughput decides",
    )
    items = Derived(
        round(rate, 2), f"{point.throughput_items_per_s:g} items/s x {pool.gpu.count} GPU(s)"
    )
    if pool.scaling.target_per_replica == "auto":
        backlog = Derived(
            max(1, math.ceil(rate * BACKLOG_DRAIN_SECONDS)),
            f"a replica clears its share of the backlog within {BACKLOG_DRAIN_SECONDS} s at "
            f"{rate:.1f} items/s",
        )
    else:
        backlog = Derived(int(pool.scaling.target_per_replica), "set in the spec")
    notice, which = spot_notice(target)
    grace = Derived(
        notice - INTERRUPTION_MARGIN_SECONDS,
        f"{which} ({notice} s) minus {INTERRUPTION_MARGIN_SECONDS} s for the drain itself; "
        f"jobs longer than that (max_job_seconds {pool.max_job_seconds}) are released, not lost",
    )
    return BatchSizing(
        batch_size=batch_size,
        replica_items_per_second=items,
        target_per_replica=backlog,
        min_replicas=Derived(pool.scaling.min_replicas, "set in the spec (0: scale from zero)"),
        max_replicas=Derived(pool.scaling.max_replicas, "set in the spec: a hard GPU ceiling"),
        termination_grace_seconds=grace,
        startup_seconds=_startup_seconds(profile),
        spot_share=_spot_share(pool),
    )


def _spot_share(pool: BatchPool) -> Derived[float]:
    capacity = pool.capacity
    if capacity.spot_share is not None:
        derived = 1.0 if capacity.spot else 0.0
        return Derived(
            capacity.spot_share,
            f"batch.capacity.spot_share set in the stack file (derived: {derived:g}); the rest "
            "run on on-demand nodes whatever spot does",
        )
    if capacity.spot:
        return Derived(1.0, "capacity.spot: every replica prefers spot")
    return Derived(0.0, "capacity.spot is false: every replica on on-demand nodes")


def profile_warnings(spec: InferenceServiceSpec, profile: Profile) -> list[str]:
    """Refuse a profile of another model; warn for every pool it sizes on other hardware.

    A profile of another model sizes only when `model.accept_profile_of` names that model, and
    then with a warning. The hardware is what the profiler saw: a CPU profile is never taken for
    a GPU one, whatever its `accelerator` label says.
    """
    uri, measured = spec.model.uri, profile.model
    accepted = spec.model.accept_profile_of
    warnings = []
    if measured != uri:
        if accepted != measured:
            raise SpecError(
                [
                    Problem(
                        "model.profile",
                        f"the profile measured {measured}, not {uri}; run `inferstack profile "
                        f"--model {uri} --out FILE` and set model.profile to FILE, or set "
                        f"model.accept_profile_of: {measured!r} to size from it knowingly",
                    )
                ]
            )
        warnings.append(
            f"model.accept_profile_of: sized from a profile of {measured}, not of {uri}; the "
            f"numbers hold only as far as the two models cost the same to run; measure {uri} "
            "with `inferstack profile`"
        )
    elif accepted is not None:
        warnings.append(
            f"model.accept_profile_of is {accepted!r} but the profile is of {uri} itself; remove it"
        )
    for path, pool in (("realtime", spec.realtime), ("batch", spec.batch)):
        if pool is not None and profile.measured_gpu_type != pool.gpu.type:
            warnings.append(
                f"{path}: sized from a profile measured on {profile.hardware_label}, not on the "
                f"pool's {pool.gpu.type}: its numbers are indicative; measure on a "
                f"{pool.gpu.type} with `inferstack profile`"
            )
    return warnings


def size_service(
    spec: InferenceServiceSpec,
    profile: Profile,
    *,
    target: Target = "kubernetes",
    now: datetime | None = None,
) -> Sizing:
    """Derive every `auto` of the spec from the profile; raise `SpecError` if nothing fits."""
    now = now or datetime.now(UTC)
    warnings = profile_warnings(spec, profile)
    hardware = profile.hardware
    label = f"{hardware.kind}: {hardware.device}"
    realtime = None
    if spec.realtime is not None:
        realtime, realtime_warnings = size_realtime(spec, spec.realtime, profile, now)
        warnings.extend(realtime_warnings)
    batch = size_batch(spec, spec.batch, profile, target) if spec.batch is not None else None
    cold = profile.cold_start
    return Sizing(
        profile_hardware=label,
        cold_start_seconds=Derived(
            round(cold.total_seconds, 2),
            f"node {cold.node_provision.seconds:g} s ({cold.node_provision.source}) + image "
            f"{cold.image_pull.seconds:g} s ({cold.image_pull.source}) + "
            + _download_reason(cold)
            + "load "
            f"{cold.model_load.seconds:g} s ({cold.model_load.source}) + warm-up "
            f"{cold.warmup.seconds:g} s ({cold.warmup.source})",
        ),
        realtime=realtime,
        batch=batch,
        warnings=warnings,
    )
