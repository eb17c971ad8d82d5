"""The two alternatives every simulation is compared with.

- **naive**: what a team does without inferstack: enough on-demand replicas for the peak at
  batch 1 (each request its own model call), always on, no autoscaler; the queue pool likewise on
  on-demand, sized to the average queue rate at batch 1, always on.
- **competent default**: a team that knows KEDA but keeps its defaults: the same batching, a
  Prometheus rps trigger with the sized rps per replica as target, KEDA's default
  `pollingInterval` (30 s) and `cooldownPeriod` (300 s), the HPA's default behaviour, `min =
  ceil(peak replicas / 4)`, the configured maximum, no spot (the queue pool scales from zero on
  its backlog, on-demand). For each declared daily spike it has the cron trigger a KEDA user
  would write: from the spike's start to its end, with the replicas the spike's rate needs at
  the sized rps per replica, and no lead time for the cold start (that lead is what inferstack's
  pre-warm adds); without it the comparison on declared traffic would be a straw man.
  On the `sagemaker` target the pools run SageMaker's own loops with AWS's defaults instead
  (`sagemaker.competent_realtime` and `competent_batch`): no SageMaker team writes KEDA.
"""

from __future__ import annotations

import math
from dataclasses import replace

from inferstack.components.planning.schedule import CronShiftError, shift_cron
from inferstack.offline.simulate.autoscaler import (
    DEFAULT_BEHAVIOR,
    KEDA_DEFAULT_COOLDOWN_SECONDS,
    KEDA_DEFAULT_POLLING_SECONDS,
    CronTrigger,
    ScaledObjectParams,
)
from inferstack.offline.simulate.config import Facts, Scenario, naive_replicas
from inferstack.offline.simulate.sagemaker import (
    SageMakerAsyncScaling,
    SageMakerScaling,
    competent_batch,
    competent_realtime,
)


def naive(configured: Scenario, facts: Facts) -> Scenario:
    """Peak-sized, on-demand, batch 1, always on."""
    realtime = None
    if configured.realtime is not None:
        pool = configured.realtime
        batcher = replace(pool.batcher, max_batch_size=1, preferred_batch_sizes=())
        realtime = replace(
            pool,
            batcher=batcher,
            scaler=None,
            fixed_replicas=naive_replicas(facts.peak_rps, facts.single_replica_rps),
            scale_to_zero=False,
        )
    batch = None
    if configured.batch is not None:
        queue = configured.batch
        single = facts.batch_single_items_per_second
        batch = replace(
            queue,
            scaler=None,
            fixed_replicas=max(1, math.ceil(queue.items_per_second / single)),
            replica_items_per_second=single,
            spot=False,
        )
    return Scenario(
        name="naive",
        description="peak-sized, on-demand, batch 1, always on",
        realtime=realtime,
        batch=batch,
        cold_start=configured.cold_start,
        consolidation_s=configured.consolidation_s,
        scrape_s=configured.scrape_s,
    )


def spike_crons(facts: Facts, minimum: int) -> tuple[CronTrigger, ...]:
    """One cron trigger per declared spike, as a KEDA user writes it: the spike's own window.

    A spike whose end cannot be written as a cron (a pinned day of month crossing midnight; the
    plan reports it) gets none.
    """
    triggers = []
    for index, spike in enumerate(facts.spikes):
        try:
            end = shift_cron(spike.cron, math.ceil(spike.duration_s / 60))
        except CronShiftError:
            continue
        needed = math.ceil(spike.rps / facts.replica_rps) if facts.replica_rps else minimum
        replicas = min(facts.realtime_max or needed, max(minimum, needed))
        triggers.append(CronTrigger(f"spike-{index}", spike.timezone, spike.cron, end, replicas))
    return tuple(triggers)


def _defaults(
    params: ScaledObjectParams,
    *,
    minimum: int,
    threshold: float,
    crons: tuple[CronTrigger, ...] = (),
) -> ScaledObjectParams:
    return ScaledObjectParams(
        polling_seconds=KEDA_DEFAULT_POLLING_SECONDS,
        cooldown_seconds=KEDA_DEFAULT_COOLDOWN_SECONDS,
        min_replicas=minimum,
        max_replicas=params.max_replicas,
        behavior=DEFAULT_BEHAVIOR,
        demand_threshold=threshold,
        activation_threshold=0.0,
        crons=crons,
    )


def competent_default(configured: Scenario, facts: Facts) -> Scenario:
    """Same batching, KEDA and HPA defaults, rps target, a quarter of peak as floor."""
    realtime = None
    if configured.realtime is not None and configured.realtime.scaler is not None:
        pool = configured.realtime
        scaler_rt = configured.realtime.scaler
        at_peak = math.ceil(facts.peak_rps / facts.replica_rps)
        minimum = max(1, math.ceil(at_peak / 4))
        if isinstance(scaler_rt, SageMakerScaling):
            realtime = competent_realtime(pool, minimum, spike_crons(facts, minimum))
        else:
            realtime = replace(
                pool,
                metric="rps",
                scaler=_defaults(
                    scaler_rt,
                    minimum=minimum,
                    threshold=facts.replica_rps,
                    crons=spike_crons(facts, minimum),
                ),
                scale_to_zero=False,
            )
    batch = None
    if configured.batch is not None and configured.batch.scaler is not None:
        queue = configured.batch
        scaler = configured.batch.scaler
        if isinstance(scaler, SageMakerAsyncScaling):
            batch = competent_batch(queue)
        else:
            batch = replace(
                queue,
                scaler=_defaults(scaler, minimum=0, threshold=scaler.demand_threshold),
                spot=False,
            )
    sagemaker = realtime is not None and isinstance(realtime.scaler, SageMakerScaling)
    return Scenario(
        name="competent default",
        description="same batching, SageMaker target tracking at half a copy's peak rate, "
        "default cooldowns, min = ceil(peak/4), scheduled floor at each declared spike's start "
        "(no lead)"
        if sagemaker
        else "same batching, KEDA/HPA defaults, rps target, min = ceil(peak/4), cron at "
        "each declared spike's start (no lead), no spot",
        realtime=realtime,
        batch=batch,
        cold_start=configured.cold_start,
        consolidation_s=configured.consolidation_s,
        scrape_s=configured.scrape_s,
    )


def lever_steps(configured: Scenario, facts: Facts) -> list[Scenario]:
    """The preview's levers applied one at a time, from naive to configured.

    naive -> batching (the configured batcher, still peak-sized, on-demand and always on) ->
    autoscaling (the configured KEDA/HPA, pre-warm and scale-to-zero, queue work on-demand) ->
    spot (the configuration as rendered). Each step's cost minus the next is what that lever
    saves on this traffic.
    """
    base = naive(configured, facts)
    realtime = None
    if configured.realtime is not None:
        realtime = replace(
            configured.realtime,
            scaler=None,
            fixed_replicas=naive_replicas(facts.peak_rps, facts.replica_rps),
            scale_to_zero=False,
        )
    batch = None
    if base.batch is not None and configured.batch is not None:
        batch = replace(
            base.batch,
            replica_items_per_second=configured.batch.replica_items_per_second,
            fixed_replicas=max(
                1,
                math.ceil(
                    configured.batch.items_per_second / configured.batch.replica_items_per_second
                ),
            ),
        )
    batching = replace(
        base,
        name="batching",
        description="configured batching, peak-sized, always on",
        realtime=realtime,
        batch=batch,
    )
    on_demand = replace(
        configured,
        name="autoscaling",
        description="configured autoscaling, queue work on-demand",
        batch=replace(configured.batch, spot=False) if configured.batch is not None else None,
    )
    spot = replace(configured, name="spot", description="as configured, queue work on spot")
    return [base, batching, on_demand, spot]
