"""`model_cpus: own`: the model processes on CPUs of their own, the server on the rest."""

from __future__ import annotations

import os

import pytest

from inferstack.runtime.model_process import CpuPlan
from inferstack.runtime.server import lifecycle
from inferstack.runtime.server.settings import ServerSettings, resolve_settings
from inferstack.runtime.settings import SettingsError


def test_shared_is_the_default_and_plans_nothing() -> None:
    settings = ServerSettings(model="builtin://mlp")
    assert settings.model_cpus == "shared"
    assert lifecycle.model_cpu_plan(settings) is None


def test_own_comes_from_the_environment_and_refuses_anything_else() -> None:
    flags = {"model": "builtin://mlp"}
    settings = resolve_settings(flags, environ={"INFERSTACK_MODEL_CPUS": "own"})
    assert settings.model_cpus == "own"
    with pytest.raises(SettingsError, match="INFERSTACK_MODEL_CPUS"):
        resolve_settings(flags, environ={"INFERSTACK_MODEL_CPUS": "mine"})


@pytest.mark.parametrize(
    ("extra", "fix"),
    [({"acceptors": 2}, "acceptors 1"), ({"model_process": False}, "model_process true")],
)
def test_own_needs_one_server_process_and_model_processes(
    extra: dict[str, object], fix: str
) -> None:
    with pytest.raises(SettingsError, match=f"model_cpus own .*{fix}.*model_cpus shared"):
        resolve_settings({"model": "builtin://mlp", "model_cpus": "own", **extra}, environ={})


def _machine(monkeypatch: pytest.MonkeyPatch, cpus: set[int], budget: int) -> None:
    monkeypatch.setattr(lifecycle.os, "sched_getaffinity", lambda _pid: cpus)
    monkeypatch.setattr(lifecycle, "cpu_budget", lambda: budget)


def test_own_gives_the_model_the_last_cpus_and_the_server_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _machine(monkeypatch, {0, 1, 2, 3}, 4)
    settings = ServerSettings(model="builtin://mlp", model_cpus="own", torch_threads=2)
    assert lifecycle.model_cpu_plan(settings) == CpuPlan(((2, 3),), (0, 1))


def test_own_pins_nothing_under_a_quota_smaller_than_the_mask(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A CPU limit of 2 on a 4-CPU node: the 4 CPUs are shared with other pods.
    _machine(monkeypatch, {0, 1, 2, 3}, 2)
    settings = ServerSettings(model="builtin://mlp", model_cpus="own", torch_threads=1)
    assert lifecycle.model_cpu_plan(settings) is None
    assert "not pinning" in caplog.text


def test_own_pins_nothing_when_the_model_would_take_every_cpu(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _machine(monkeypatch, {0, 1}, 2)
    settings = ServerSettings(model="builtin://mlp", model_cpus="own", torch_threads=2)
    assert lifecycle.model_cpu_plan(settings) is None
    assert "lower torch_threads or instances" in caplog.text


def test_the_plan_fits_this_machine() -> None:
    settings = ServerSettings(model="builtin://mlp", model_cpus="own", torch_threads=1)
    plan = lifecycle.model_cpu_plan(settings)
    allowed = os.sched_getaffinity(0)
    if len(allowed) < 2 or lifecycle.cpu_budget() < len(allowed):
        assert plan is None
    else:
        assert plan is not None
        assert set(plan.server) | set(plan.model[0]) == allowed
        assert not set(plan.server) & set(plan.model[0])
