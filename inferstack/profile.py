"""The measured profile of a model on one kind of hardware: the input to every sizing decision.

A versioned JSON document. `inferstack profile` writes it; sizing reads it. Cold start is split
into its parts because they are paid at different times: node provisioning only when a new
machine is needed, image pull once per node, model load and warm-up once per replica. Parts
that cannot be measured where the profiler ran (node provisioning, image pull on a machine
without a registry) are recorded with `source: "assumed"` and a note saying where the figure
comes from, never passed off as measurements.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from inferstack.errors import Problem, SpecError

PROFILE_FORMAT_VERSION: Literal[1] = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Hardware(_Strict):
    """What the profile was measured on."""

    kind: Literal["cpu", "gpu"]
    device: str = Field(description="CPU model or GPU name as the driver reports it")
    accelerator: str | None = Field(default=None, description="spec GPU type, e.g. nvidia-l4")
    threads: int | None = Field(default=None, ge=1, description="torch intra-op threads used")
    torch_version: str | None = None


class LatencyMs(_Strict):
    """Compute latency of one batch, in milliseconds."""

    p50: float = Field(gt=0)
    p99: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> LatencyMs:
        if self.p99 < self.p50:
            raise ValueError(f"p99 ({self.p99}) is below p50 ({self.p50})")
        return self


class BatchPoint(_Strict):
    """Latency and throughput of the model at one batch size."""

    batch_size: int = Field(ge=1)
    latency_ms: LatencyMs
    throughput_items_per_s: float = Field(gt=0)


class ColdStartPart(_Strict):
    """One part of the cold start, in seconds, and whether it was measured."""

    seconds: float = Field(ge=0)
    source: Literal["measured", "assumed"]
    note: str = ""


class ColdStart(_Strict):
    """Time from "a replica is needed" to "it serves", split by where it is spent."""

    node_provision: ColdStartPart
    image_pull: ColdStartPart
    model_load: ColdStartPart
    warmup: ColdStartPart

    @property
    def pod_seconds(self) -> float:
        """A new replica on a node that already exists and has the image: load plus warm-up."""
        return self.model_load.seconds + self.warmup.seconds

    @property
    def total_seconds(self) -> float:
        """A new replica that also needs a new node: every part."""
        return (
            self.node_provision.seconds
            + self.image_pull.seconds
            + self.model_load.seconds
            + self.warmup.seconds
        )


class Profile(_Strict):
    """A model's measured behaviour on one kind of hardware."""

    format_version: Literal[1] = 1
    model: str = Field(description="the model URI that was measured")
    measured_at: str = Field(description="ISO 8601 timestamp")
    hardware: Hardware
    batches: list[BatchPoint] = Field(min_length=1)
    cold_start: ColdStart

    @model_validator(mode="after")
    def _sorted_unique(self) -> Profile:
        sizes = [point.batch_size for point in self.batches]
        if sizes != sorted(set(sizes)):
            raise ValueError(f"batches must be sorted by batch_size without repeats, got {sizes}")
        return self

    def at(self, batch_size: int) -> BatchPoint:
        """The measured point for exactly `batch_size`; KeyError when it was not measured."""
        for point in self.batches:
            if point.batch_size == batch_size:
                return point
        raise KeyError(batch_size)


def parse_profile(data: object, *, source: str = "profile") -> Profile:
    """Validate a decoded JSON document into a `Profile`, or raise `SpecError`."""
    try:
        return Profile.model_validate(data)
    except ValidationError as error:
        problems = [
            Problem(
                ".".join(str(part) for part in detail["loc"]) or "(profile)",
                str(detail["msg"]).removeprefix("Value error, "),
            )
            for detail in error.errors(include_url=False)
        ]
        raise SpecError(problems, source=source) from None


def load_profile(path: str | Path) -> Profile:
    """Load a profile JSON file."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise SpecError(
            [Problem("model.profile", f"cannot read {path}: {error}; point it at a profile JSON")],
            source=str(path),
        ) from None
    return parse_profile(data, source=str(path))


BUILTIN_PROFILES = {"builtin://mlp": "profiles/builtin-mlp.cpu.json"}
"""Profiles shipped with the package for the built-in models."""


def builtin_profile(uri: str) -> Profile:
    """The shipped profile of a built-in model."""
    resource = resources.files("inferstack").joinpath(BUILTIN_PROFILES[uri])
    return parse_profile(json.loads(resource.read_text()), source=f"shipped profile of {uri}")


def resolve_profile(
    model_uri: str, profile_path: str | None, base_dir: Path | None = None
) -> Profile:
    """The profile a spec points at: its `model.profile` path, else the built-in model's own."""
    if profile_path is not None:
        path = Path(profile_path)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        return load_profile(path)
    if model_uri in BUILTIN_PROFILES:
        return builtin_profile(model_uri)
    raise SpecError(
        [Problem("model.profile", f"no profile for {model_uri}; run `inferstack profile`")]
    )
