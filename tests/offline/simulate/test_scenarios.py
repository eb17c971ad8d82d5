"""The alternatives every simulation is compared with."""

from __future__ import annotations

from datetime import UTC, datetime

from inferstack.offline.simulate.arrivals import Spike
from inferstack.offline.simulate.config import Facts
from inferstack.offline.simulate.scenarios import competent_default
from tests.offline.simulate.factories import realtime_pool, scenario

SPIKE = Spike("0 9 * * 1-5", "Europe/Paris", 30 * 60.0, 9000.0)


def _facts(*spikes: Spike) -> Facts:
    return Facts(
        baseline_rps=500.0,
        peak_rps=4000.0,
        replica_rps=1400.0,
        single_replica_rps=100.0,
        realtime_max=10,
        batch_single_items_per_second=0.0,
        spikes=spikes,
    )


def test_the_competent_default_writes_a_cron_trigger_for_each_declared_spike():
    # A KEDA user who knows of a daily 09:00 spike writes a cron trigger for it: the spike's
    # own window (no lead time for the cold start), the replicas its rate needs.
    pool = competent_default(scenario(realtime_pool()), _facts(SPIKE)).realtime
    assert pool is not None
    assert pool.scaler is not None
    (trigger,) = pool.scaler.crons
    assert (trigger.start, trigger.end, trigger.timezone) == (
        "0 9 * * 1-5",
        "30 9 * * 1-5",
        "Europe/Paris",
    )
    assert trigger.desired_replicas == 7  # ceil(9,000 / 1,400)
    assert trigger.is_active(datetime(2026, 1, 5, 8, 10, tzinfo=UTC))  # 09:10 in Paris
    assert not trigger.is_active(datetime(2026, 1, 5, 8, 40, tzinfo=UTC))


def test_the_competent_default_cron_is_capped_by_the_maximum():
    pool = competent_default(
        scenario(realtime_pool()), _facts(Spike("0 9 * * *", "UTC", 600.0, 1e6))
    ).realtime
    assert pool is not None
    assert pool.scaler is not None
    assert pool.scaler.crons[0].desired_replicas == 10


def test_without_declared_spikes_the_competent_default_has_no_cron():
    pool = competent_default(scenario(realtime_pool()), _facts()).realtime
    assert pool is not None
    assert pool.scaler is not None
    assert pool.scaler.crons == ()
