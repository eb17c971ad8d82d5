"""Monthly cost: a naive deployment against this configuration, broken down by lever.

The naive baseline is what a team does without inferstack: enough on-demand replicas for the
peak, each serving one request at a time, always on. Each lever (dynamic batching, demand
autoscaling, scale-to-zero, spot) is then applied in turn, so every row shows what that lever
alone saves on top of the ones before it. The traffic model is the declared one: baseline rps
outside the declared spikes, the spike rps during a spike's pre-warm window and duration.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from inferstack.components.planning.clouds import CLOUDS
from inferstack.components.planning.pools import BatchPool, RealtimePool, batch_pool, pools
from inferstack.components.planning.pools import realtime_pool as realtime_pool_of
from inferstack.components.planning.pricing import (
    Cloud,
    PriceTable,
    default_price_table,
    machine_price,
)
from inferstack.components.planning.schedule import occurrences_per_week
from inferstack.components.planning.sizing import TARGET_UTILISATION, Sizing
from inferstack.components.planning.spec import BatchPool as BatchPoolSpec
from inferstack.components.planning.spec import BatchSchedule, InferenceServiceSpec
from inferstack.profile import Profile

HOURS_PER_MONTH = 730
MINUTES_PER_WEEK = 7 * 24 * 60
SPOT_AVAILABILITY = 0.9
"""Share of async GPU-hours assumed to run on spot; the rest falls back to on-demand."""
_REFERENCE_WEEK = datetime(2026, 1, 5, tzinfo=ZoneInfo("UTC"))  # a Monday outside any DST change
IDLE_BEFORE_ZERO_SECONDS = 300
"""The batch ScaledObject's cooldownPeriod (the Kubernetes target's `IDLE_BEFORE_ZERO_SECONDS`)."""
RUN_TAIL_SECONDS = IDLE_BEFORE_ZERO_SECONDS + 600
"""How long a scheduled run's replicas stay billed after its last item: KEDA's cooldownPeriod
before scaling to zero (the batch ScaledObject's 300 s) plus the node autoscaler's removal of
the empty node (the cluster autoscaler's default 10 min), as the simulator runs them."""


@dataclass(frozen=True)
class LeverRow:
    """The monthly cost once this lever (and every one above it) is applied."""

    lever: str
    monthly_usd: float
    saves_usd: float
    reason: str


@dataclass(frozen=True)
class CostEstimate:
    """Naive against configured monthly cost, with the lever-by-lever path between them."""

    currency: str
    price_source: str
    naive_monthly_usd: float
    configured_monthly_usd: float
    rows: list[LeverRow]
    notes: list[str] = field(default_factory=list)

    @property
    def savings_ratio(self) -> float:
        """Share of the naive bill this configuration saves."""
        if self.naive_monthly_usd == 0:
            return 0.0
        return 1 - self.configured_monthly_usd / self.naive_monthly_usd

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, with the savings ratio included."""
        return {**asdict(self), "savings_ratio": round(self.savings_ratio, 4)}


@dataclass(frozen=True)
class _PoolCosts:
    """Monthly cost of one pool after each lever, in lever order."""

    naive: float
    batching: float
    autoscaling: float
    scale_to_zero: float
    spot: float


def _average_realtime_replicas(
    spec: InferenceServiceSpec, pool: RealtimePool, floor: int
) -> tuple[float, str]:
    realtime = pool.sizing
    spike_minutes = 0.0
    weighted = 0.0
    for window in realtime.prewarm:
        spike = spec.traffic.spikes[window.spike_index]
        per_week = occurrences_per_week(spike.cron, spike.timezone, _REFERENCE_WEEK)
        minutes = per_week * (spike.duration_minutes + window.lead_minutes)
        spike_minutes += minutes
        weighted += minutes * window.desired_replicas
    spike_minutes = min(spike_minutes, MINUTES_PER_WEEK)
    base = max(floor, realtime.baseline_replicas.value)
    average = (weighted + base * (MINUTES_PER_WEEK - spike_minutes)) / MINUTES_PER_WEEK
    share = spike_minutes / MINUTES_PER_WEEK
    return average, f"{base} replica(s) off-spike, spike replicas {share:.1%} of the week"


def _realtime_costs(
    spec: InferenceServiceSpec,
    profile: Profile,
    pool: RealtimePool,
    cloud: Cloud,
    table: PriceTable,
) -> tuple[_PoolCosts, list[str]]:
    gpus = pool.gpu.count
    price = machine_price(pool.gpu.type, cloud, spec.prices, table)
    per_replica_month = price.on_demand_per_gpu_hour * gpus * HOURS_PER_MONTH
    single = profile.batches[0]
    single_rate = single.throughput_items_per_s * gpus * TARGET_UTILISATION
    naive_replicas = math.ceil(spec.traffic.peak_rps / single_rate)
    batched_replicas = pool.sizing.peak_replicas.value
    warm_floor = 1
    autoscaled, autoscaled_why = _average_realtime_replicas(spec, pool, warm_floor)
    zero_floor = 0 if pool.spec.scale_to_zero else warm_floor
    to_zero, _ = _average_realtime_replicas(spec, pool, zero_floor)
    notes = [
        f"realtime naive: {naive_replicas} x {pool.gpu.type} at batch "
        f"{single.batch_size} for peak {spec.traffic.peak_rps:g} rps; batched: {batched_replicas}; "
        f"autoscaled average {autoscaled:.2f} ({autoscaled_why})",
    ]
    if to_zero == 0:
        # Time at zero is only what the declared traffic says is idle: off-spike time with no
        # baseline. A pool that serves its peak at moments nobody declared is not free.
        to_zero = autoscaled
        notes.append(
            f"realtime scale-to-zero: the declared traffic (baseline 0 rps, no pre-warmed spike) "
            f"says {spec.traffic.peak_rps:g} rps come but not when, so no time at zero is "
            f"counted and {autoscaled:.2f} replica(s) are costed as always on; declare the "
            "spikes, or measure the idle share on a trace with `inferstack simulate`"
        )
    costs = _PoolCosts(
        naive=naive_replicas * per_replica_month,
        batching=batched_replicas * per_replica_month,
        autoscaling=autoscaled * per_replica_month,
        scale_to_zero=to_zero * per_replica_month,
        spot=to_zero * per_replica_month,  # realtime never runs on spot
    )
    return costs, notes


def fixed_worker_count(
    items_per_day: float | None, items_per_second: float, low: int, high: int
) -> tuple[int, int]:
    """The count of queue workers that run around the clock where the platform has no queue
    autoscaling (`Cloud.queue_workers_fixed`): what drains the declared items at the pool's rate,
    at least one (a count of 0 never drains) and within the pool's bounds; with the count the
    declared items need (0 when none are declared)."""
    needed = 0 if items_per_day is None else math.ceil(items_per_day / 86400 / items_per_second)
    return min(high, max(1, low, needed)), needed


def _fixed_workers(
    batch: BatchPool, platform: str, batched_rate: float, per_replica_month: float
) -> tuple[float, str]:
    """The monthly cost and the note of queue workers at a fixed count (no queue autoscaling):
    they bill every hour whether items arrive or not, so neither arrivals nor a schedule move
    the cost."""
    workers, needed = fixed_worker_count(
        batch.spec.expected_items_per_day,
        batched_rate,
        batch.sizing.min_replicas.value,
        batch.sizing.max_replicas.value,
    )
    return workers * per_replica_month, (
        f"{platform} runs queue work at a fixed count of {workers} worker(s) billed around the "
        f"clock (no queue autoscaling; the declared items need {needed} at {batched_rate:g} "
        "items/s each)"
    )


def _batch_costs(
    spec: InferenceServiceSpec, profile: Profile, batch: BatchPool, cloud: Cloud, table: PriceTable
) -> tuple[_PoolCosts, list[str]] | None:
    pool = batch.spec
    if pool.expected_items_per_day is None:
        return None
    gpus = pool.gpu.count
    price = machine_price(pool.gpu.type, cloud, spec.prices, table)
    per_replica_month = price.on_demand_per_gpu_hour * gpus * HOURS_PER_MONTH
    average_rate = pool.expected_items_per_day / 86400
    single_rate = profile.batches[0].throughput_items_per_s * gpus
    batched_rate = batch.sizing.replica_items_per_second.value
    naive_replicas = max(1, math.ceil(average_rate / single_rate))
    batched_replicas = max(1, math.ceil(average_rate / batched_rate))
    spot_ratio = price.spot_per_gpu_hour / price.on_demand_per_gpu_hour
    blended = SPOT_AVAILABILITY * spot_ratio + (1 - SPOT_AVAILABILITY)
    on_spot = pool.capacity.spot and CLOUDS[cloud].offers_spot
    floor_share = pool.scaling.min_replicas * per_replica_month
    if CLOUDS[cloud].queue_workers_fixed:
        busy, held = _fixed_workers(batch, CLOUDS[cloud].title, batched_rate, per_replica_month)
    elif pool.schedule is None:
        busy, held = _spread_arrivals(pool, profile, batched_rate, per_replica_month)
        window, _ = _scheduled_runs(
            pool, profile, batched_rate, per_replica_month, _one_packed_run(pool, batched_rate)
        )
        saving = (busy - max(window, floor_share)) * (blended if on_spot else 1.0)
        if saving >= 0.005:
            notes_tail = (
                f"if the items really come in a window, declare batch.schedule: one daily run at "
                f"full rate would cost ${saving:,.2f} a month less"
            )
            held = f"{held}; {notes_tail}"
    else:
        busy, held = _scheduled_runs(pool, profile, batched_rate, per_replica_month, pool.schedule)
    autoscaled = max(busy, floor_share)
    spot = autoscaled * blended if on_spot else autoscaled
    spot_terms = (
        f"spot assumed available {SPOT_AVAILABILITY:.0%} of the time at {spot_ratio:.0%} of the "
        "on-demand price"
        if CLOUDS[cloud].offers_spot
        else "on-demand only"
    )
    notes = [f"batch pool: {held}; {spot_terms}"]
    costs = _PoolCosts(
        naive=naive_replicas * per_replica_month,
        batching=batched_replicas * per_replica_month,
        autoscaling=autoscaled,
        scale_to_zero=autoscaled,
        spot=spot,
    )
    return costs, notes


def _spread_arrivals(
    pool: BatchPoolSpec, profile: Profile, batched_rate: float, per_replica_month: float
) -> tuple[float, str]:
    """Monthly cost of the replicas that items arriving around the clock hold, and why.

    Without `batch.schedule` the items arrive at random, evenly over the day (a Poisson stream
    at `rate`, as the simulator draws them). KEDA scales the pool to zero `cooldownPeriod` after
    the last item it saw, and the empty node goes `RUN_TAIL_SECONDS` after that item: the node
    stays billed unless the gap to the next item outlasts that tail and the time the item took
    to be served (`wait`: nothing after a short gap, the pod's start after a gap past the
    cooldown, the whole cold start after one past the tail). With exponential gaps the share of
    the time the node is gone is exp(-rate x tail) x E[exp(-rate x wait)]; the rest of the time
    the pool holds the replicas the rate needs (one at least, at most max_replicas).
    """
    items = pool.expected_items_per_day or 0.0
    rate = items / 86400
    replicas = min(pool.scaling.max_replicas, max(1, math.ceil(rate / batched_rate)))
    cold = profile.cold_start
    past_cooldown = math.exp(-rate * IDLE_BEFORE_ZERO_SECONDS)
    past_tail = math.exp(-rate * RUN_TAIL_SECONDS)
    waited = (
        (1 - past_cooldown)
        + (past_cooldown - past_tail) * math.exp(-rate * cold.pod_seconds)
        + past_tail * math.exp(-rate * cold.total_seconds)
    )
    up = 1.0 - past_tail * waited if items else 0.0
    spread = (
        f"{items:,.0f} items/day arrive spread over the day (no batch.schedule): "
        f"{rate:.3g} items/s against one replica's {batched_rate:g} items/s"
    )
    tail = f"{RUN_TAIL_SECONDS} s (KEDA cooldown {IDLE_BEFORE_ZERO_SECONDS} s + node removal)"
    if up >= 0.9995:
        why = (
            f"{spread} keep {replicas} replica(s) up all day, busy "
            f"{min(1.0, rate / (replicas * batched_rate)):.1%} of it: the next item always "
            f"comes within {tail}, so the pool never goes to zero"
        )
    else:
        why = (
            f"{spread} keep {replicas} replica(s) up {up:.1%} of the time: the pool goes to "
            f"zero only after {tail} without an item, and wakes "
            f"{86400 * rate * past_tail:.1f} times a day at a {cold.total_seconds:.0f} s cold "
            "start"
        )
    return up * replicas * per_replica_month, why


def _one_packed_run(pool: BatchPoolSpec, batched_rate: float) -> BatchSchedule:
    """The cheapest schedule the same items could have: one daily run one replica drains."""
    minutes = math.ceil((pool.expected_items_per_day or 0.0) / batched_rate / 60)
    return BatchSchedule(
        cron="0 1 * * *", timezone="UTC", duration_minutes=min(1440, max(1, minutes))
    )


def _scheduled_runs(
    pool: BatchPoolSpec,
    profile: Profile,
    batched_rate: float,
    per_replica_month: float,
    schedule: BatchSchedule,
) -> tuple[float, str]:
    """Monthly cost of the replicas a scheduled run holds, and the sentence that says why.

    Items arrive evenly over the run (`batch.schedule`, as the simulator has them arrive), so
    the pool holds enough replicas for the arrival rate (at most max_replicas) for the run, or
    until the backlog is cleared, plus each replica's cold start and `RUN_TAIL_SECONDS`.
    """
    items = pool.expected_items_per_day or 0.0
    duration = schedule.duration_minutes * 60.0
    replicas = min(pool.scaling.max_replicas, max(1, math.ceil(items / duration / batched_rate)))
    run = max(duration, items / (replicas * batched_rate))
    cold = profile.cold_start.total_seconds
    per_week = occurrences_per_week(schedule.cron, schedule.timezone, _REFERENCE_WEEK)
    runs_per_month = per_week * HOURS_PER_MONTH / (7 * 24)
    hours = runs_per_month * replicas * (run + cold + RUN_TAIL_SECONDS) / 3600
    why = (
        f"{items:,.0f} items per run ('{schedule.cron}' {schedule.timezone}, "
        f"{runs_per_month:.1f} runs a month) arrive over {schedule.duration_minutes} min and hold "
        f"{replicas} replica(s) at {batched_rate:g} items/s for {run / 60:.0f} min + cold start "
        f"{cold:.0f} s + {RUN_TAIL_SECONDS} s before the node goes (KEDA cooldown, node removal)"
    )
    return hours / HOURS_PER_MONTH * per_replica_month, why


def estimate_cost(
    spec: InferenceServiceSpec,
    profile: Profile,
    sizing: Sizing,
    cloud: Cloud | None = None,
    *,
    table: PriceTable | None = None,
) -> CostEstimate:
    """Monthly cost of the naive deployment and of this one, lever by lever.

    Replica counts come from `sizing` (the plan's); only the naive baseline, which no plan
    deploys, is derived here. `table` replaces the shipped list prices.
    """
    cloud = cloud or spec.price_cloud
    table = table or default_price_table()
    costed: list[_PoolCosts] = []
    notes: list[str] = []
    realtime, batch = realtime_pool_of(spec, sizing), batch_pool(spec, sizing)
    for result in (
        _realtime_costs(spec, profile, realtime, cloud, table) if realtime else None,
        _batch_costs(spec, profile, batch, cloud, table) if batch else None,
    ):
        if result is not None:
            costed.append(result[0])
            notes.extend(result[1])
    if batch is not None and batch.spec.expected_items_per_day is None:
        notes.append("batch pool not costed: set batch.expected_items_per_day to include it")
    spot_why = "queue work on spot capacity with on-demand fallback"
    if not CLOUDS[cloud].offers_spot:
        spot_why = f"none: {CLOUDS[cloud].title} hosting offers no spot capacity"
        if batch is not None and batch.spec.capacity.spot:
            on_aws = estimate_cost(spec, profile, sizing, "aws", table=table).rows[-1]
            notes.append(
                f"spot: {CLOUDS[cloud].title} hosting offers none; on the Kubernetes target (AWS "
                f"prices) spot would save ${on_aws.saves_usd:,.2f} a month of the queue work"
            )
    levers = [
        ("naive", "peak-sized, on-demand, batch 1, always on"),
        ("batching", "dynamic batching: fewer replicas carry the same peak"),
        ("autoscaling", "replicas follow declared demand instead of sitting at peak"),
        ("scale-to-zero", "no replicas while there is no traffic"),
        ("spot", spot_why),
    ]
    rows: list[LeverRow] = []
    previous = None
    for lever, why in levers:
        total = round(sum(getattr(pool, lever.replace("-", "_")) for pool in costed), 2)
        saves = 0.0 if previous is None else round(previous - total, 2)
        rows.append(LeverRow(lever, total, saves, why))
        previous = total
    # The first pool's machine names the price source (a spec has at least one pool).
    first = pools(spec, sizing)[0]
    price_source = machine_price(first.gpu.type, cloud, spec.prices, table).source
    return CostEstimate(
        currency="USD",
        price_source=price_source,
        naive_monthly_usd=rows[0].monthly_usd,
        configured_monthly_usd=rows[-1].monthly_usd,
        rows=rows,
        notes=notes,
    )
