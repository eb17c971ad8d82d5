"""Server settings: flag over environment over config file over default, with named errors."""

from __future__ import annotations

import asyncio
import json

import pytest

from inferstack.contract import env as env_names
from inferstack.runtime.server.lifecycle import InferenceServer
from inferstack.runtime.server.settings import ENV_VARS, ServerSettings, resolve_settings
from inferstack.runtime.settings import BatchingSettings, SettingsError, cpu_budget
from inferstack.runtime.tensors import (
    JSON_ELEMENT_BYTES,
    REQUEST_ENVELOPE_BYTES,
    TensorSpec,
    json_request_bytes,
)
from inferstack.runtime.worker.settings import WorkerSettings
from inferstack.runtime.worker.settings import resolve_settings as resolve_worker


def test_every_setting_has_a_constant_in_the_dependency_free_env_names_module():
    constants = {value for name, value in vars(env_names).items() if name.startswith("ENV_")}
    assert set(ENV_VARS.values()) <= constants
    assert ENV_VARS["max_batch_size"] == env_names.ENV_MAX_BATCH_SIZE == "INFERSTACK_MAX_BATCH_SIZE"
    assert set(ENV_VARS) == set(ServerSettings.model_fields)


def test_precedence_flag_env_file_default(tmp_path):
    config = tmp_path / "serve.yaml"
    config.write_text("model: builtin://mlp\nmax_batch_size: 8\nport: 9000\ninstances: 2\n")
    settings = resolve_settings(
        {"max_batch_size": 64, "port": None},
        config_file=config,
        environ={"INFERSTACK_PORT": "9100", "INFERSTACK_PREFERRED_BATCH_SIZES": "16, 32"},
    )
    assert settings.max_batch_size == 64  # flag beats file
    assert settings.port == 9100  # env beats file
    assert settings.instances == 2  # file beats default
    assert settings.max_queue_delay_ms == 5.0  # default
    assert settings.preferred_batch_sizes == (16, 32)
    assert settings.batcher_config().preferred_batch_sizes == (16, 32)


def test_config_file_from_the_environment(tmp_path):
    config = tmp_path / "serve.json"
    config.write_text('{"model": "builtin://mlp", "request_timeout_ms": 250}')
    settings = resolve_settings({}, environ={"INFERSTACK_CONFIG": str(config)})
    assert settings.batcher_config().request_timeout_s == 0.25


@pytest.mark.parametrize(
    ("flags", "environ", "message"),
    [
        ({}, {}, "--model or INFERSTACK_MODEL: required; model URI"),
        (
            {"model": "builtin://mlp"},
            {"INFERSTACK_MAX_BATCH_SIZE": "lots"},
            "environment variable INFERSTACK_MAX_BATCH_SIZE: Input should be a valid integer",
        ),
        ({"model": "builtin://mlp", "port": 0}, {}, "--port: Input should be greater than"),
        (
            {"model": "builtin://mlp", "max_batch_size": 8},
            {"INFERSTACK_PREFERRED_BATCH_SIZES": "4,16"},
            r"preferred_batch_sizes \[16\] are outside 1..max_batch_size \(8\)",
        ),
        ({"model": "builtin://mlp", "device": "tpu"}, {}, "--device: expected auto, cpu, cuda"),
    ],
)
def test_bad_values_name_their_source(flags, environ, message):
    with pytest.raises(SettingsError, match=message):
        resolve_settings(flags, environ=environ)


def test_unknown_config_key_lists_the_known_ones(tmp_path):
    config = tmp_path / "serve.yaml"
    config.write_text("model: builtin://mlp\nmax_batch: 8\n")
    with pytest.raises(SettingsError, match=r"serve.yaml: max_batch: unknown setting; known"):
        resolve_settings({}, config_file=config, environ={})


def test_automatic_threads_leave_a_core_for_the_event_loop():
    settings = ServerSettings(model="builtin://mlp")
    assert settings.resolved_torch_threads() == max(1, cpu_budget() - 1)
    assert settings.resolved_torch_threads(cpus=16) == 15
    assert ServerSettings(model="builtin://mlp", torch_threads=3).resolved_torch_threads() == 3
    # The worker's settings: one event loop too.
    assert BatchingSettings(model="builtin://mlp").resolved_torch_threads(cpus=16) == 15


@pytest.mark.parametrize(
    ("cpus", "acceptors", "torch_threads", "shares"),
    [
        (16, 1, 0, (1, 15)),  # The default: one process, the model the rest.
        (16, 4, 0, (4, 12)),  # Each acceptor takes a CPU from the model's automatic threads.
        (16, 16, 0, (16, 1)),  # At least one thread.
        (16, 0, 0, (15, 1)),  # Both automatic: the model keeps one CPU, never a shared one.
        (16, 0, 6, (10, 6)),  # Automatic acceptors take what the model's threads leave.
        (16, 0, 16, (1, 16)),  # At least one acceptor.
        (2, 0, 0, (1, 1)),
        (1, 0, 0, (1, 1)),
        (2, 3, 4, (3, 4)),  # Set values are kept, even past the budget.
    ],
)
def test_the_cpu_budget_is_split_between_acceptors_and_torch_threads(
    cpus, acceptors, torch_threads, shares
):
    settings = ServerSettings(
        model="builtin://mlp", acceptors=acceptors, torch_threads=torch_threads
    )
    assert (
        settings.resolved_acceptors(cpus=cpus),
        settings.resolved_torch_threads(cpus=cpus),
    ) == shares
    if acceptors == torch_threads == 0:  # Both automatic: no CPU is counted twice.
        assert sum(shares) <= max(cpus, 2)


@pytest.mark.parametrize(
    ("settings", "shares"),
    [
        ({"instances": 4}, (1, 3)),  # (16 - 1) // 4: the model's 15 CPUs, shared by 4 processes.
        ({"instances": 4, "acceptors": 4}, (4, 3)),
        ({"instances": 20}, (1, 1)),  # At least one thread each.
        ({"instances": 4, "acceptors": 0}, (12, 1)),  # Both automatic: one CPU per process.
        ({"instances": 4, "acceptors": 0, "torch_threads": 2}, (8, 2)),
        ({"instances": 4, "torch_threads": 6}, (1, 6)),  # A set count is each process's.
        ({"instances": 4, "model_process": False}, (1, 15)),  # One process, one thread pool.
    ],
)
def test_the_model_processes_share_the_models_cpus(settings, shares):
    served = ServerSettings(model="builtin://mlp", **settings)
    assert (served.resolved_acceptors(cpus=16), served.resolved_torch_threads(cpus=16)) == shares


class _Started(Exception):
    """Raised in place of starting the model processes: what they would have been given."""


@pytest.fixture
def model_processes_started(monkeypatch):
    """Records the config and count the model processes would start with, on a 16-CPU pod."""
    from inferstack.runtime import model_process
    from inferstack.runtime import settings as runtime_settings

    def start(config, instances=1):
        raise _Started(config.torch_threads, instances)

    monkeypatch.setattr(runtime_settings, "cpu_budget", lambda: 16)
    monkeypatch.setattr(model_process.ProcessModel, "start", start)


@pytest.mark.usefixtures("model_processes_started")
def test_each_model_process_of_serve_gets_its_share_of_the_threads():
    from inferstack.runtime.server.lifecycle import open_served_model

    environ = {env_names.ENV_INSTANCES: "4", env_names.ENV_CPUS: "16"}
    settings = resolve_settings({"model": "builtin://mlp"}, environ=environ)
    with pytest.raises(_Started) as started:
        open_served_model(settings, "mlp")
    assert started.value.args == (3, 4)  # Not 15 threads in each of 4 processes.


@pytest.mark.usefixtures("model_processes_started")
def test_each_model_process_of_work_gets_its_share_of_the_threads():
    from inferstack.runtime.worker.process import WorkerProcess

    environ = {env_names.ENV_INSTANCES: "4", env_names.ENV_CPUS: "16"}
    flags = {"model": "builtin://mlp", "queue": "sqs://jobs", "results": "s3://r/out"}
    with pytest.raises(_Started) as started:
        WorkerProcess(resolve_worker(flags, environ=environ))._load_model()
    assert started.value.args == (3, 4)


def test_the_cpus_setting_is_the_budget_over_the_nodes_cpus():
    """A Kubernetes pod with a CPU request and no limit has no quota: the runtime's detection
    sees the node (48 CPUs here). INFERSTACK_CPUS (the request, through the Downward API) is
    the budget instead, for both processes; the detected CPUs still cap it."""
    serve = resolve_settings({"model": "builtin://mlp"}, environ={env_names.ENV_CPUS: "3"})
    work = resolve_worker(
        {"model": "builtin://mlp", "queue": "sqs://jobs", "results": "s3://r/out"},
        environ={env_names.ENV_CPUS: "3"},
    )
    assert serve.cpus == work.cpus == 3
    assert serve.cpu_budget_in_force(48) == work.cpu_budget_in_force(48) == 3
    assert serve.resolved_torch_threads(cpus=48) == work.resolved_torch_threads(cpus=48) == 2
    automatic = serve.model_copy(update={"acceptors": 0})
    assert (automatic.resolved_acceptors(cpus=48), automatic.resolved_torch_threads(cpus=48)) == (
        2,
        1,
    )
    # A quota (or affinity mask) smaller than the request is what the kernel enforces.
    assert serve.resolved_torch_threads(cpus=2) == 1
    assert serve.cpu_budget_in_force(2) == 2
    # Unset (0, what the Downward API gives a container without a request): detection.
    unset = resolve_settings({"model": "builtin://mlp"}, environ={})
    assert unset.cpus == 0
    assert unset.cpu_budget_in_force(48) == 48
    assert unset.resolved_torch_threads(cpus=48) == 47


@pytest.mark.parametrize("value", ["-1", "2.5", "500m", "three"])
def test_a_bad_cpus_value_names_the_variable(value):
    with pytest.raises(SettingsError, match=env_names.ENV_CPUS) as raised:
        resolve_settings({"model": "builtin://mlp"}, environ={env_names.ENV_CPUS: value})
    assert value in str(raised.value)
    assert "whole CPUs" in str(raised.value)
    assert "divisor 1" in str(raised.value)


def test_gil_switch_interval_is_a_setting_with_bounds(tmp_path):
    settings = resolve_settings(
        {"model": "builtin://mlp"}, environ={"INFERSTACK_GIL_SWITCH_INTERVAL_US": "500"}
    )
    assert settings.gil_switch_interval_us == 500
    with pytest.raises(SettingsError, match="INFERSTACK_GIL_SWITCH_INTERVAL_US"):
        resolve_settings(
            {"model": "builtin://mlp"}, environ={"INFERSTACK_GIL_SWITCH_INTERVAL_US": "1"}
        )


def test_configure_gil_switch_interval_sets_the_interpreter_interval():
    import sys

    from inferstack.runtime.models import configure_gil_switch_interval

    before = sys.getswitchinterval()
    try:
        configure_gil_switch_interval(250)
        assert sys.getswitchinterval() == pytest.approx(0.00025)
    finally:
        sys.setswitchinterval(before)


@pytest.mark.parametrize("command", [ServerSettings, WorkerSettings])
def test_serve_and_work_share_one_definition_of_the_model_and_batching_settings(command):
    assert issubclass(command, BatchingSettings)
    for name, field in BatchingSettings.model_fields.items():
        assert repr(command.model_fields[name]) == repr(field), name


def test_the_worker_refuses_an_unknown_device_as_the_server_does():
    with pytest.raises(ValueError, match="expected auto, cpu, cuda or cuda:N"):
        WorkerSettings(queue="redis://x/0?stream=s", model="builtin://mlp", device="tpu")


# The request body limit ---------------------------------------------------------------------


def test_the_body_limit_is_automatic_or_at_least_a_kilobyte():
    assert ServerSettings(model="builtin://mlp").max_request_bytes == 0
    assert ServerSettings(model="builtin://mlp", max_request_bytes=4096).max_request_bytes == 4096
    with pytest.raises(ValueError, match="0 \\(automatic\\) or at least 1024"):
        ServerSettings(model="builtin://mlp", max_request_bytes=10)


def test_the_automatic_body_limit_is_a_max_batch_in_json_worst_case_bytes():
    specs = [TensorSpec("x", "FP32", [-1, 512]), TensorSpec("m", "BOOL", [-1, 2, 4])]
    row = 512 + 8
    assert json_request_bytes(specs, 32) == 32 * row * JSON_ELEMENT_BYTES + REQUEST_ENVELOPE_BYTES
    # A float's longest JSON spelling, pretty-printed in a nested list, fits the element budget.
    pretty = json.dumps({"data": [[[-2.2250738585072014e-308] * 8] * 8] * 8}, indent=2)
    assert len(pretty) / 8**3 < JSON_ELEMENT_BYTES
    assert json_request_bytes([TensorSpec("s", "BYTES", [-1])], 32) is None
    assert json_request_bytes([TensorSpec("v", "FP32", [-1, -1])], 32) is None


def test_the_server_sizes_its_body_limit_from_the_loaded_model():
    async def load(settings: ServerSettings) -> int:
        server = InferenceServer(settings)
        await server._load()
        try:
            return server.http.limits.max_request_bytes
        finally:
            assert server.app.served is not None
            await server.app.served.batcher.close()
            server._close_model()

    doubler = {"model": "tests.runtime.handlers:Doubler", "model_process": False}
    derived = asyncio.run(load(ServerSettings(**doubler, max_batch_size=4)))
    assert derived == 4 * 3 * JSON_ELEMENT_BYTES + REQUEST_ENVELOPE_BYTES
    explicit = asyncio.run(load(ServerSettings(**doubler, max_request_bytes=5000)))
    assert explicit == 5000


def test_the_in_flight_body_budget_is_256_mib_or_two_largest_bodies_unless_set():
    settings = ServerSettings(model="builtin://mlp")
    assert settings.body_budget(1 << 20) == 256 << 20
    assert settings.body_budget(200 << 20) == 400 << 20
    assert (
        ServerSettings(model="builtin://mlp", max_body_bytes_in_flight=5000).body_budget(1 << 20)
        == 5000
    )
