"""The fast mode's queueing tables (what makes tune's repeated runs and each preview cheap):
one per replica configuration, remembered in the process and on disk, and a table found there
changes no number."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from inferstack.offline.simulate import fast
from inferstack.offline.simulate.arrivals import declared_rates
from inferstack.offline.simulate.cli import DEFAULT_START, parse_start
from inferstack.offline.simulate.inputs import load_stack
from inferstack.offline.simulate.report import summarize

REPO = Path(__file__).resolve().parents[3]


def test_one_table_serves_every_seed_and_a_remembered_one_gives_the_same_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(fast.CACHE_ENV, str(tmp_path))
    start = parse_start(DEFAULT_START)
    inputs = load_stack("dev", REPO, start)
    rates = declared_rates(inputs.traffic, start, 600, rng=np.random.default_rng(1))
    fast._TABLES.clear()
    built = summarize(fast.run_fast(inputs.configured, rates, start, seed=3), timeline=True)
    assert len(fast._TABLES) == 1
    assert len(list((tmp_path / "simulate-tables").glob("*.npz"))) == 1
    remembered = summarize(fast.run_fast(inputs.configured, rates, start, seed=3), timeline=True)
    assert remembered == built
    other_seed = summarize(fast.run_fast(inputs.configured, rates, start, seed=4), timeline=True)
    assert len(fast._TABLES) == 1
    assert other_seed != built
    # A new process reads the file: the same run again.
    fast._TABLES.clear()
    from_disk = summarize(fast.run_fast(inputs.configured, rates, start, seed=3), timeline=True)
    assert from_disk == built


def test_a_table_read_from_disk_equals_the_built_one_and_a_broken_file_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(fast.CACHE_ENV, str(tmp_path))
    pool = load_stack("dev", REPO, parse_start(DEFAULT_START)).configured.realtime
    assert pool is not None
    fast._TABLES.clear()
    built = fast.table_for(pool)
    fast._TABLES.clear()
    read = fast.table_for(pool)
    for name in fast._COLUMNS:
        np.testing.assert_array_equal(getattr(read, name), getattr(built, name))
    (path,) = (tmp_path / "simulate-tables").glob("*.npz")
    path.write_bytes(b"not a table")
    fast._TABLES.clear()
    rebuilt = fast.table_for(pool)
    np.testing.assert_array_equal(rebuilt.fine, built.fine)


def test_the_key_changes_with_the_batcher_and_the_budget_not_with_the_autoscaler() -> None:
    pool = load_stack("dev", REPO, parse_start(DEFAULT_START)).configured.realtime
    assert pool is not None
    key = fast.table_key(pool)
    assert fast.table_key(replace(pool, metric="rps", fixed_replicas=7)) == key
    assert fast.table_key(replace(pool, latency_budget_s=pool.latency_budget_s * 2)) != key
    batcher = replace(pool.batcher, max_queue_delay_s=pool.batcher.max_queue_delay_s * 2)
    assert fast.table_key(replace(pool, batcher=batcher)) != key


def test_an_empty_cache_setting_keeps_tables_in_memory_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(fast.CACHE_ENV, "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert fast.cache_dir() is None
