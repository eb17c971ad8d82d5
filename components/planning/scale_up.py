"""How fast the realtime pool may grow: the HPA's scale-up policy and KEDA's polling, derived.

A reactive pool sees a rise late and serves it later still: the demand gauge is scraped every
`SCRAPE_SECONDS`, the HPA acts on it at its next sync (`HPA_SYNC_SECONDS`), and the replica it
asks for serves after a cold start. So the policy must let one sync request every replica the
rise will need by the time they are ready (a tighter policy only makes the pool trail further),
and when the rise over that reaction time is more than the sized headroom of the floor can
carry, no policy helps: only a higher floor or a pre-warm does, and the user is told so.
The declared ramp is `traffic.ramp_minutes` (baseline to peak); without it the rise is taken as
a step, so one sync may add every replica between the floor and the peak.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

HPA_SYNC_SECONDS = 15
"""kube-controller-manager's `--horizontal-pod-autoscaler-sync-period` default."""
SCRAPE_SECONDS = 15
"""The Prometheus scrape interval the runtime's gauges are read through (the simulator's)."""
SCALE_UP_PERCENT = 100
"""Beside the derived pod count: a large pool may double in one sync."""
POLLING_SHARE = 20
"""KEDA polls activity every cold start / this (whole seconds, rounded down), within
`POLLING_BOUNDS`: the wake from zero then waits at most 5% of the cold start more."""
POLLING_BOUNDS = (5, 30)


@dataclass(frozen=True)
class ScaleUp:
    """The rendered scale-up behaviour of the realtime pool's HPA, and KEDA's polling."""

    stabilization_seconds: int
    period_seconds: int
    pods: int
    """Replicas one period may add (a `Pods` policy, beside `Percent` under `selectPolicy: Max`)."""
    percent: int
    polling_seconds: int
    """KEDA's `pollingInterval`: how often it checks for activity (the wake from zero)."""


@dataclass(frozen=True)
class Ramp:
    """What sizing knows about the rise: declared traffic and the sized pool."""

    baseline_rps: float
    peak_rps: float
    ramp_minutes: float | None
    replica_rps: float
    headroom_share: float
    """Spare capacity per replica, as a share of the sized rate (1 / utilisation - 1)."""
    min_replicas: int
    peak_replicas: int
    cold_start_seconds: float


def _polling(cold_start_seconds: float) -> int:
    low, high = POLLING_BOUNDS
    return int(min(high, max(low, cold_start_seconds // POLLING_SHARE)))


def _pods(count: int) -> str:
    return f"{count} pod" if count == 1 else f"{count} pods"


def derive_scale_up(ramp: Ramp) -> tuple[ScaleUp, str, list[str]]:
    """The behaviour, its one-line reason, and a warning when the floor cannot follow the rise."""
    reaction = SCRAPE_SECONDS + HPA_SYNC_SECONDS + ramp.cold_start_seconds
    span = max(1, ramp.peak_replicas - ramp.min_replicas)
    polling = _polling(ramp.cold_start_seconds)
    tail = (
        f"; stabilisation 0 s (a rise is acted on at its first sync), or {SCALE_UP_PERCENT}% "
        f"per {HPA_SYNC_SECONDS} s for a large pool; KEDA polls every {polling} s "
        f"(cold start {ramp.cold_start_seconds:.0f} s / {POLLING_SHARE}, "
        f"{POLLING_BOUNDS[0]}-{POLLING_BOUNDS[1]} s)"
    )
    warnings: list[str] = []
    if ramp.ramp_minutes is None:
        pods = span
        reason = (
            f"no traffic.ramp_minutes: a step from baseline to peak, so one {HPA_SYNC_SECONDS} s "
            f"sync may add every replica between the floor ({ramp.min_replicas}) and the peak "
            f"({ramp.peak_replicas}): {_pods(pods)}"
        )
    else:
        rise = (ramp.peak_rps - ramp.baseline_rps) / (ramp.ramp_minutes * 60)
        grown = rise * reaction
        pods = min(span, max(1, math.ceil(grown / ramp.replica_rps)))
        reason = (
            f"ramp {ramp.baseline_rps:g} to {ramp.peak_rps:g} rps in {ramp.ramp_minutes:g} min "
            f"({rise:.1f} rps/s) adds {grown:,.0f} rps while the pool reacts ({reaction:.0f} s: "
            f"scrape {SCRAPE_SECONDS} + sync {HPA_SYNC_SECONDS} + cold start "
            f"{ramp.cold_start_seconds:.0f}), {grown / ramp.replica_rps:.1f} replicas at "
            f"{ramp.replica_rps:,.0f} rps each: {_pods(pods)} per sync"
        )
        headroom = ramp.min_replicas * ramp.replica_rps * ramp.headroom_share
        if grown > headroom:
            floor = math.ceil(grown / (ramp.replica_rps * ramp.headroom_share))
            warnings.append(
                f"traffic.ramp_minutes {ramp.ramp_minutes:g}: the rise adds {grown:,.0f} rps "
                f"during the {reaction:.0f} s the pool needs to react, more than the headroom of "
                f"{ramp.min_replicas} replica(s) ({headroom:,.0f} rps): requests will queue past "
                f"the budget on every such rise; raise realtime.scaling.min_replicas to {floor} "
                "or declare the rise as a spike so it is pre-warmed"
            )
    behaviour = ScaleUp(
        stabilization_seconds=0,
        period_seconds=HPA_SYNC_SECONDS,
        pods=pods,
        percent=SCALE_UP_PERCENT,
        polling_seconds=polling,
    )
    return behaviour, reason + tail, warnings


__all__ = ["HPA_SYNC_SECONDS", "SCRAPE_SECONDS", "Ramp", "ScaleUp", "derive_scale_up"]
