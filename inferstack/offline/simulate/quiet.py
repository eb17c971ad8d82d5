"""Quiet stretches: how long KEDA and the HPA leave a settled pool's replica count alone.

Most of a simulated month, a pool holds its count: every pod is ready, nothing is pending, and
each KEDA poll and HPA sync decides "no change". Running those loops one call at a time was
most of the fast mode's time (a month is ~500,000 ticks). For a pool that holds `replicas`
ready pods, `settled_ends` evaluates the same decisions for a run of upcoming control instants
at once, with numpy: the scraped gauge, KEDA's activity check (`KedaScaler.poll`), the HPA's
per-metric proposals (`external_average_value_replicas`), and its scale-down and scale-up
stabilisation windows (`HorizontalPodAutoscaler._stabilize`, over the remembered
recommendations and those of the stretch itself). It returns how many instants in a row change
nothing and writes the state those instants leave (the recommendations, KEDA's last activity);
the first instant that would change the count is left to the ordinary step, which also applies
the rate limits. The two paths give the same numbers: `tests/offline/simulate/test_quiet.py`
checks every decision against the step-by-step loop.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from inferstack.offline.simulate.autoscaler import (
    CRON_METRIC_OUTSIDE_WINDOW,
    MAX_INT32,
    CronSchedule,
    HorizontalPodAutoscaler,
    KedaScaler,
)

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Times = npt.NDArray[np.int64] | npt.NDArray[np.float64]
"""Instants in seconds: whole ones (the realtime pool's ticks) or not (the queue's steps)."""


def _cron_active(schedule: CronSchedule, offsets: Floats) -> npt.NDArray[np.bool_]:
    """`schedule.is_active` at each offset."""
    starts, stops = schedule.union()
    if not starts:
        return np.zeros(len(offsets), dtype=bool)
    index = np.searchsorted(np.asarray(starts), offsets, side="right") - 1
    stop = np.asarray(stops)[np.maximum(index, 0)]
    return (index >= 0) & (offsets < stop)


def _proposals(replicas: int, usage: Floats, target: float, tolerance: float) -> Ints:
    """`external_average_value_replicas` for each usage."""
    ratio = usage / (target * replicas)
    wanted = np.minimum(MAX_INT32, np.ceil(usage / target))
    return np.where(np.abs(1.0 - ratio) > tolerance, wanted, replicas).astype(np.int64)


def _window_reduce(
    ufunc: np.ufunc, times: Floats, values: Ints, cutoffs: Floats, own: Ints
) -> tuple[Ints, npt.NDArray[np.bool_]]:
    """`ufunc` over the values with time > cutoff, up to and including each query's own entry.

    Returns the reductions and which windows are non-empty.
    """
    left = np.searchsorted(times, cutoffs, side="right")
    right = own + 1
    bounds = np.empty(2 * len(own), dtype=np.int64)
    bounds[0::2] = left
    bounds[1::2] = right
    padded = np.append(values, 0)
    reduced = ufunc.reduceat(padded, np.minimum(bounds, len(values)))[0::2]
    return reduced.astype(np.int64), left < right


def crossings(ends: Times, step: float, period: float) -> npt.NDArray[np.bool_]:
    """Which steps of `step` seconds ending at `ends` pass a multiple of `period`."""
    return np.asarray(np.floor(ends / period) > np.floor((ends - step) / period), dtype=bool)


def _hpa_holds(
    hpa: HorizontalPodAutoscaler,
    replicas: int,
    sync_times: Floats,
    usages: list[tuple[Floats, float]],
) -> int:
    """How many syncs in a row keep `replicas`; the recommendations they leave are kept."""
    proposal = np.max(
        [_proposals(replicas, usage, target, hpa.tolerance) for usage, target in usages], axis=0
    )
    remembered = sorted(hpa._recommendations)
    past_times = np.array([at for at, _ in remembered], dtype=np.float64)
    past_values = np.array([value for _, value in remembered], dtype=np.int64)
    all_times = np.concatenate([past_times, sync_times])
    all_values = np.concatenate([past_values, proposal])
    up_s = hpa.behavior.scale_up.stabilization_seconds
    down_s = hpa.behavior.scale_down.stabilization_seconds
    kept = len(sync_times)
    # A sync whose own proposal is `replicas` keeps it whatever the windows hold (the up
    # window's minimum is at most, the down window's maximum at least, that proposal); and the
    # rate limits clamp the result to [min_replicas, max_replicas] (`_rate_limited`), so a pool at
    # its floor keeps it whatever lower count the windows give, and one at its ceiling likewise.
    # The windows are read only when some proposal could move the count.
    can_rise = replicas < hpa.max_replicas
    can_fall = replicas > hpa.min_replicas
    if (((proposal > replicas) & can_rise) | ((proposal < replicas) & can_fall)).any():
        own = len(remembered) + np.arange(len(sync_times), dtype=np.int64)
        up, up_any = _window_reduce(np.minimum, all_times, all_values, sync_times - up_s, own)
        down, down_any = _window_reduce(np.maximum, all_times, all_values, sync_times - down_s, own)
        up = np.where(up_any, np.minimum(up, proposal), proposal)
        down = np.where(down_any, np.maximum(down, proposal), proposal)
        result = np.minimum(np.maximum(replicas, up), down)
        moving = ((result > replicas) & can_rise) | ((result < replicas) & can_fall)
        moved = np.nonzero(moving)[0]
        kept = int(moved[0]) if len(moved) else kept
    if kept:
        # What `_stabilize` leaves: every recommendation still inside a window (older ones are
        # never read again, whatever slot they sit in).
        oldest = float(sync_times[kept - 1]) - max(up_s, down_s)
        held = len(remembered) + kept
        entries = zip(all_times[:held].tolist(), all_values[:held].tolist(), strict=True)
        hpa._recommendations[:] = [(at, int(value)) for at, value in entries if at >= oldest]
    return kept


def settled_ends(
    keda: KedaScaler,
    replicas: int,
    ends: Times,
    gauge: Floats,
    concurrency: Floats,
    polls: npt.NDArray[np.bool_],
    syncs: npt.NDArray[np.bool_],
) -> int:
    """How many of the control instants `ends` leave `replicas` unchanged; their state kept.

    `ends`: ascending instants (seconds), each a step's end; `gauge`: the demand metric as the
    HPA reads it at each (the last scrape's value); `concurrency`: the HTTP add-on's in-flight
    count at each; `polls`, `syncs`: at which ends KEDA polls and the HPA syncs. The pool holds
    `replicas` ready pods, none pending, draining or held.
    """
    if type(keda) is not KedaScaler:
        return 0  # another loop (a subclass, e.g. SageMaker's) decides differently: step it
    params = keda.params
    hpa = keda.hpa
    count = len(ends)
    if count == 0 or replicas > hpa.max_replicas or 0 < replicas < hpa.min_replicas:
        return 0
    times = ends.astype(np.float64)
    stop = count
    cron_active = np.zeros(count, dtype=bool)
    cron_metrics: list[Floats] = []
    for schedule in keda.cron_schedules:
        active = _cron_active(schedule, times)
        cron_active |= active
        outside = float(CRON_METRIC_OUTSIDE_WINDOW)
        cron_metrics.append(np.where(active, float(schedule.trigger.desired_replicas), outside))
    active = (gauge > params.activation_threshold) | cron_active
    # KEDA's last activity before each instant's check, then the checks that would change the
    # count: below the minimum while inactive, or to zero after the cooldown.
    seen = np.where(polls & active, times, -math.inf)
    last_active = np.maximum(keda.last_active, np.maximum.accumulate(seen))
    inactive = polls & ~active
    changes = inactive & (replicas < params.min_replicas)
    if replicas == 0:
        # At zero the HPA is off and KEDA activates the target on the first active poll.
        changes |= polls & active
    elif params.min_replicas == 0:
        changes |= inactive & (times - last_active >= params.cooldown_seconds)
    if changes.any():
        stop = int(np.argmax(changes))
    # The HPA syncs: proposals, then the stabilisation windows over what it remembers.
    synced = np.nonzero(syncs[:stop])[0] if replicas else np.zeros(0, dtype=np.int64)
    if len(synced):
        usages = [(gauge[synced], params.demand_threshold)]
        usages += [(metric[synced], 1.0) for metric in cron_metrics]
        if params.http_wake:
            usages.append((concurrency[synced], params.http_concurrency_target))
        kept = _hpa_holds(hpa, replicas, times[synced], usages)
        if kept < len(synced):
            stop = int(synced[kept])
    if stop:
        polled = polls[:stop] & active[:stop]
        if polled.any():
            keda.last_active = max(keda.last_active, float(times[:stop][polled][-1]))
    return stop


__all__ = ["crossings", "settled_ends"]
