"""Settings from flags, environment variables and a config file, for every runtime command.

`inferstack serve` and `inferstack work` take the same three layers, highest first: a
command-line flag, an environment variable `INFERSTACK_<FIELD>` (what a Kubernetes Deployment
sets), a YAML or JSON config file (keys are the field names), then the field's default. Errors
name where each bad value came from, so a user knows whether to fix a flag, a variable or a file.

Both commands' settings (`server/settings.py`, `worker/settings.py`) extend `BatchingSettings`:
the model, how it runs, and the batcher's knobs are one definition, so a setting cannot mean one
thing to `serve` and another to `work`.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal, TypeVar

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from inferstack.contract.env import ENV_CONFIG, ENV_PREFIX
from inferstack.runtime.batcher import BatcherConfig
from inferstack.runtime.optimize import OptimizeMode

SettingsT = TypeVar("SettingsT", bound=BaseModel)


class SettingsError(ValueError):
    """A setting with a wrong value; the message names where it came from and the fix."""


def _comma_separated_ints(value: object) -> object:
    """`16,32` (how an environment variable or a flag carries a list) -> (16, 32)."""
    if isinstance(value, str):
        parts = [part.strip() for part in value.split(",") if part.strip()]
        if not all(part.isdigit() for part in parts):
            raise ValueError(f"expected comma-separated positive integers, got {value!r}")
        return tuple(int(part) for part in parts)
    return value


BatchSizes = Annotated[tuple[int, ...], BeforeValidator(_comma_separated_ints)]
"""A list of batch sizes, given as a list (config file) or as `16,32` (flag, env var)."""


class BatchingSettings(BaseModel):
    """What `serve` and `work` share: the model, how it runs, and the batcher's knobs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(description="model URI, e.g. builtin://mlp")
    model_name: str | None = Field(default=None, description="served name; derived from the URI")
    model_sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="the model file's sha256 (required for https://); another digest is refused",
    )
    model_cache: str | None = Field(
        default=None,
        description="folder fetched models go to (default ~/.cache/inferstack/models)",
    )
    device: str = Field(default="auto", description="auto, cpu, cuda or cuda:N")
    torch_threads: int = Field(
        default=0,
        ge=0,
        description="0: the CPU budget less one per event loop that parses requests (one, or "
        "serve's acceptors), shared equally by the model processes (instances), at least 1 each",
    )
    cpus: int = Field(
        default=0,
        ge=0,
        description="the CPU budget (0: this process's cgroup quota, else its affinity mask); a "
        "Kubernetes pod passes its container's CPU request here, since a request sets no quota; "
        "the smaller of this and the detected CPUs counts",
    )
    gil_switch_interval_us: int = Field(
        default=200,
        ge=20,
        le=5000,
        description="max microseconds a thread keeps the GIL while the batch thread waits",
    )
    max_batch_size: int = Field(default=32, ge=1)
    preferred_batch_sizes: BatchSizes = ()
    max_queue_delay_ms: float = Field(default=5.0, ge=0)
    instances: int = Field(default=1, ge=1)
    model_process: bool = Field(
        default=True,
        description="run each model instance in its own process (false: on a thread of this one)",
    )
    optimize: OptimizeMode = Field(
        default="auto",
        description="auto: a TorchScript model on the CPU serves its frozen graph after "
        "torch.jit.optimize_for_inference when that answers the same and is not slower at the "
        "warm-up batch sizes (else, and on a GPU or for other formats, the graph as loaded; the "
        "ready log line says which and why); off: always the graph as loaded",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("cpus", mode="before")
    @classmethod
    def _whole_cpus(cls, value: object) -> object:
        # Said here, not by pydantic's int message: the fix (whole CPUs; in a pod, divisor 1).
        text = str(value).strip()
        if isinstance(value, bool) or not text.isdigit():
            raise ValueError(
                f"expected whole CPUs (0: detect from the cgroup quota or affinity), got "
                f"{value!r}; from a pod's CPU request use resourceFieldRef with divisor 1"
            )
        return int(text)

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if value not in ("auto", "cpu", "cuda") and not value.startswith("cuda:"):
            raise ValueError(f"expected auto, cpu, cuda or cuda:N, got {value!r}")
        return value

    def cpu_budget_in_force(self, detected: int | None = None) -> int:
        """The CPUs this process shares out: the `cpus` setting when set, capped by the CPUs
        detected (`detected`, else this process's `cpu_budget()`: its cgroup quota or affinity
        mask), which is the budget when `cpus` is 0.

        Capped because the kernel enforces the quota and the mask, and threads past them only
        queue for the same CPUs; a pod's CPU request (what `cpus` carries there) enforces
        nothing, so without it a pod with no CPU limit would count every CPU of its node.
        """
        available = cpu_budget() if detected is None else detected
        return min(self.cpus, available) if self.cpus else available

    @property
    def model_processes(self) -> int:
        """Processes that each start `torch_threads` intra-op threads: one per instance with
        `model_process`; else one, this process, whose instances share its one thread pool."""
        return self.instances if self.model_process else 1

    def cpu_shares(self, cpus: int | None = None) -> CpuShares:
        """How the CPU budget (`cpu_budget_in_force(cpus)`; `cpus` the detected CPUs, for
        tests) is shared: one event loop, the model processes' threads (`split_cpus`)."""
        return split_cpus(
            self.cpu_budget_in_force(cpus),
            acceptors=1,
            torch_threads=self.torch_threads,
            model_processes=self.model_processes,
        )

    def resolved_torch_threads(self, cpus: int | None = None) -> int:
        """The intra-op thread count to use: the explicit setting, or what `cpu_shares` leaves
        the model."""
        return self.cpu_shares(cpus).torch_threads

    def batching(self, *, max_queue_size: int, request_timeout_s: float | None) -> BatcherConfig:
        """The batcher knobs with the queue bound and timeout the command decides."""
        return BatcherConfig(
            max_batch_size=self.max_batch_size,
            preferred_batch_sizes=self.preferred_batch_sizes,
            max_queue_delay_s=self.max_queue_delay_ms / 1000,
            max_queue_size=max_queue_size,
            request_timeout_s=request_timeout_s,
            instances=self.instances,
        )


CPU_MAX: Final = Path("/sys/fs/cgroup/cpu.max")
"""The cgroup v2 CPU bandwidth limit of this process's cgroup (a container's, in a pod)."""


def cpu_quota(cpu_max: str) -> int | None:
    """Whole CPUs a cgroup v2 `cpu.max` grants, rounded up; None when it sets no limit.

    The kernel's format (Documentation/admin-guide/cgroup-v2.rst, "cpu.max"): "$MAX $PERIOD",
    where $MAX is "max" for no limit, and "max 100000" is the default; a lone $MAX may be
    written, so the period is optional when reading. ValueError for anything else.
    """
    fields = cpu_max.split()
    if not 1 <= len(fields) <= 2:
        raise ValueError(f"cpu.max holds {cpu_max!r}; expected '$MAX $PERIOD'")
    if fields[0] == "max":
        return None
    if not all(field.lstrip("-").isdigit() for field in fields):
        raise ValueError(f"cpu.max holds {cpu_max!r}; expected '$MAX $PERIOD' in microseconds")
    quota, period = int(fields[0]), int(fields[1]) if len(fields) == 2 else 100_000
    if quota <= 0 or period <= 0:
        raise ValueError(f"cpu.max holds {cpu_max!r}; expected positive microseconds")
    return max(1, math.ceil(quota / period))


def cpu_budget(cpu_max: Path = CPU_MAX) -> int:
    """CPUs this process may use: the cgroup v2 quota if set, else the affinity mask."""
    available = len(os.sched_getaffinity(0))
    try:
        quota = cpu_quota(cpu_max.read_text())
    except (OSError, ValueError):
        return available
    return available if quota is None else min(available, quota)


@dataclass(frozen=True)
class CpuShares:
    """The CPU budget shared between the event loops that parse requests and the model."""

    acceptors: int
    """Event loops parsing HTTP and gRPC: the server process itself (1), or serve's acceptor
    processes."""
    torch_threads: int
    """The model's intra-op threads, in each model process."""


def split_cpus(
    cpus: int, *, acceptors: int, torch_threads: int, model_processes: int = 1
) -> CpuShares:
    """The one rule that shares `cpus` between parsing and the model (0 for either: automatic).

    Each event loop that parses requests takes a CPU and the model gets the rest, shared
    equally by its `model_processes` (each starts its own intra-op pool, so N processes of the
    whole share would run N threads per CPU): `(cpus - acceptors) // model_processes` automatic
    threads each, at least 1. Automatic acceptors take what the model's threads leave, at least
    1: `cpus - torch_threads * model_processes`; when both are automatic each model process
    keeps one CPU (one thread) and the acceptors the rest, so the two never count the same CPU
    twice. A set value is kept as given, even past the budget: that is the operator's choice.
    """
    if acceptors == 0:
        acceptors = max(1, cpus - (torch_threads or 1) * model_processes)
    return CpuShares(acceptors, torch_threads or max(1, (cpus - acceptors) // model_processes))


def env_vars(model: type[BaseModel]) -> dict[str, str]:
    """Field name to the environment variable that sets it."""
    return {name: ENV_PREFIX + name.upper() for name in model.model_fields}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def resolve(
    model: type[SettingsT],
    flags: Mapping[str, Any],
    *,
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    check: Callable[[SettingsT], object] | None = None,
) -> SettingsT:
    """Merge the layers into `model`; `flags` maps field names to values (None: not given).

    `check` runs on the merged settings for cross-field rules that raise ValueError.
    """
    values, sources = _layers(model, flags, config_file, os.environ if environ is None else environ)
    try:
        settings = model.model_validate(values)
        if check is not None:
            check(settings)
    except ValidationError as error:
        raise SettingsError(_problems(model, error, sources)) from None
    except ValueError as error:
        raise SettingsError(str(error)) from None
    return settings


def _layers(
    model: type[BaseModel],
    flags: Mapping[str, Any],
    config_file: str | Path | None,
    env: Mapping[str, str],
) -> tuple[dict[str, Any], dict[str, str]]:
    """The merged values, lowest layer first, and where each one came from."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    path = config_file or env.get(ENV_CONFIG)
    if path:
        for key, value in read_config(Path(path)).items():
            values[key] = value
            sources[key] = f"config file {path}: {key}"
    for name, variable in env_vars(model).items():
        if variable in env:
            values[name] = env[variable]
            sources[name] = f"environment variable {variable}"
    for name, value in flags.items():
        if value is not None:
            values[name] = value
            sources[name] = _flag(name)
    return values, sources


def _problems(model: type[BaseModel], error: ValidationError, sources: Mapping[str, str]) -> str:
    """Every validation error, each naming where its value came from (or how to give one)."""
    variables = env_vars(model)
    problems = []
    for detail in error.errors(include_url=False):
        name = str(detail["loc"][0]) if detail["loc"] else "(settings)"
        where = sources.get(name) or f"{_flag(name)} or {variables.get(name, name)}"
        message = str(detail["msg"]).removeprefix("Value error, ")
        if detail["type"] == "extra_forbidden":
            message = f"unknown setting; known settings are {', '.join(model.model_fields)}"
        elif detail["type"] == "missing" and model.model_fields[name].description:
            message = f"required; {model.model_fields[name].description}"
        problems.append(f"{where}: {message}")
    return "; ".join(problems)


def read_config(path: Path) -> dict[str, Any]:
    """The settings in a YAML or JSON file (JSON is YAML)."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise SettingsError(f"cannot read config file {path}: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(f"config file {path} must be a mapping of setting name to value")
    return {str(key): value for key, value in data.items()}


def boolean(text: str) -> bool:
    """An argparse type for true/false flags."""
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_setting_flags(
    parser: argparse.ArgumentParser, model: type[BaseModel], help_texts: Mapping[str, str]
) -> None:
    """One flag per field (default None, so the lower layers show through) plus `--config`."""
    parser.add_argument("--config", help="YAML or JSON file of settings (keys: setting names)")
    variables = env_vars(model)
    for name, field in model.model_fields.items():
        kind = field.annotation
        arg_type: Callable[[str], Any] = str
        if kind is int or kind == int | None:
            arg_type = int
        elif kind is float or kind == float | None:
            arg_type = float
        elif kind is bool:
            arg_type = boolean
        help_text = help_texts.get(name, field.description or name.replace("_", " "))
        default = "" if field.is_required() else f"; default {field.default!r}"
        parser.add_argument(
            _flag(name),
            dest=name,
            type=arg_type,
            default=None,
            help=f"{help_text} (env {variables[name]}{default})",
        )
