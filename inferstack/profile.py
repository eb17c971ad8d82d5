"""The measured profile of a model on one kind of hardware: the input to every sizing decision.

A versioned JSON document. `inferstack profile` writes it; sizing reads it. Cold start is split
into its parts because they are paid at different times: node provisioning only when a new
machine is needed, image pull once per node, model load and warm-up once per replica. Parts
that cannot be measured where the profiler ran (node provisioning, image pull on a machine
without a registry) are recorded with `source: "assumed"` and a note saying where the figure
comes from, never passed off as measurements.

Format 2 also records what was measured, so that sizing can refuse a profile of another model
and warn for every pool on other hardware: the model URI with a digest of its file (or of the
built-in model's weights, or of a handler's module source), its signature, and the device the
profiler saw (the CPU model, or the GPU name from the driver with the spec GPU type it is).
Format 1 files still load: the fields they lack are None, and a CPU profile's `accelerator`
label is ignored (it was a free-form flag then, not what the profiler saw).

Format 3 adds the server path's own cost (`server_overhead`): what a request pays in
`inferstack serve` beyond the batch's compute (HTTP parse, decode, the batcher, encode), per
request and per batch, measured through a real server on loopback. Formats 1 and 2 still load
without it (None: the simulator then adds nothing).

Format 4 adds, at each of those batch sizes, the time between consecutive answers of one batch
(`answer_spacing_ms`): the server answers a batch's requests one after another, so a request's
answer waits for the encode and write of those before it in its batch. Formats 1 to 3 still
load without it (the simulator then answers a whole batch at once).
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from inferstack.contract.gpus import GPU_TYPE_NAMES, gpu_type_of_device
from inferstack.errors import Problem, SpecError

PROFILE_FORMAT_VERSION: Literal[4] = 4
READABLE_FORMAT_VERSIONS = (1, 2, 3, 4)
FILE_SCHEME = "file://"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Hardware(_Strict):
    """What the profile was measured on."""

    kind: Literal["cpu", "gpu"]
    device: str = Field(description="CPU model or GPU name as the driver reports it")
    accelerator: str | None = Field(
        default=None,
        description="the spec GPU type of the device seen, e.g. nvidia-l4 (None on a CPU or a GPU "
        "the spec does not list)",
    )
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
    model_download: ColdStartPart | None = None
    """A fetched model's download at pod start; the plan adds it from `model_bytes` and the
    bandwidth (`components.planning.model_delivery`), a profile does not record it."""

    @property
    def download_seconds(self) -> float:
        """The model's download at pod start (0 when it is not fetched)."""
        return self.model_download.seconds if self.model_download is not None else 0.0

    @property
    def pod_seconds(self) -> float:
        """A new replica on a node that already exists and has the image: download (when the
        model is fetched), load and warm-up."""
        return self.download_seconds + self.model_load.seconds + self.warmup.seconds

    @property
    def total_seconds(self) -> float:
        """A new replica that also needs a new node: every part."""
        return self.node_provision.seconds + self.image_pull.seconds + self.pod_seconds


class TensorSignature(_Strict):
    """One input or output of the measured model: v2 datatype and shape (-1 varies)."""

    name: str
    datatype: str
    shape: list[int]


class Signature(_Strict):
    """The measured model's inputs and outputs."""

    inputs: list[TensorSignature]
    outputs: list[TensorSignature]


class OverheadPoint(_Strict):
    """The server path at one batch size, kept busy with full batches of one-row requests."""

    batch_size: int = Field(ge=1)
    batch_cycle_ms: float = Field(
        gt=0, description="batch_size / answers per second: how long a batch occupies the server"
    )
    compute_ms: float = Field(gt=0, description="the batch's compute p50 in this profile")
    overhead_ms: float = Field(description="batch_cycle_ms - compute_ms")
    answer_spacing_ms: float | None = Field(
        default=None,
        ge=0,
        description="the time between consecutive answers of one batch as they reach the client "
        "(format 4; None at batch size 1 and in older formats)",
    )


class ServerOverhead(_Strict):
    """What `inferstack serve` adds to a batch's compute: `per_batch + per_request * size`."""

    per_request_ms: float = Field(ge=0)
    per_batch_ms: float = Field(ge=0)
    points: list[OverheadPoint] = Field(min_length=1)
    request: str = Field(description="how the requests were sent, e.g. JSON over HTTP/1.1")

    def at(self, batch_size: int) -> float:
        """The fitted overhead of a batch of `batch_size` requests, in milliseconds."""
        return self.per_batch_ms + self.per_request_ms * batch_size


class Profile(_Strict):
    """A model's measured behaviour on one kind of hardware."""

    format_version: Literal[1, 2, 3, 4] = PROFILE_FORMAT_VERSION
    model: str = Field(description="the model URI that was measured")
    model_digest: str | None = Field(
        default=None, description="sha256:<hex> of what `model_digest_of` names (format 2)"
    )
    model_digest_of: Literal["file", "weights", "handler source"] | None = Field(
        default=None,
        description="what was hashed: the model file, the built-in model's weights, or the "
        "handler's module source",
    )
    model_bytes: int | None = Field(
        default=None,
        ge=0,
        description="size of the model file in bytes: what a pod downloads when the model is "
        "fetched (the plan's cold start divides it by the download bandwidth)",
    )
    signature: Signature | None = Field(default=None, description="inputs and outputs (format 2)")
    measured_at: str = Field(description="ISO 8601 timestamp")
    hardware: Hardware
    batches: list[BatchPoint] = Field(min_length=1)
    cold_start: ColdStart
    server_overhead: ServerOverhead | None = Field(
        default=None, description="the server path's cost beyond compute (format 3)"
    )

    @field_validator("format_version", mode="before")
    @classmethod
    def _readable(cls, value: Any) -> Any:
        if value not in READABLE_FORMAT_VERSIONS:
            raise ValueError(
                f"format_version {value!r} is not one this inferstack reads "
                f"({', '.join(map(str, READABLE_FORMAT_VERSIONS))}); upgrade inferstack, or "
                "re-run `inferstack profile` with this one"
            )
        return value

    @model_validator(mode="after")
    def _sorted_unique(self) -> Profile:
        sizes = [point.batch_size for point in self.batches]
        if sizes != sorted(set(sizes)):
            raise ValueError(f"batches must be sorted by batch_size without repeats, got {sizes}")
        if self.server_overhead is not None and self.format_version < 3:
            raise ValueError(
                f"server_overhead is a format 3 field but format_version is "
                f"{self.format_version}; set format_version: 3 or remove it"
            )
        spaced = self.server_overhead is not None and any(
            point.answer_spacing_ms is not None for point in self.server_overhead.points
        )
        if spaced and self.format_version < 4:
            raise ValueError(
                "server_overhead.points[].answer_spacing_ms is a format 4 field but "
                f"format_version is {self.format_version}; set format_version: 4 or remove it"
            )
        hardware = self.hardware
        if self.format_version >= 2 and hardware.accelerator is not None:
            if hardware.kind == "cpu":
                raise ValueError(
                    f"hardware.accelerator is {hardware.accelerator} but the profile was measured "
                    "on a CPU; remove it (format 2 records the device the profiler saw)"
                )
            if hardware.accelerator not in GPU_TYPE_NAMES:
                raise ValueError(
                    f"hardware.accelerator {hardware.accelerator!r} is not a spec GPU type; use "
                    f"one of {', '.join(GPU_TYPE_NAMES)} or remove it"
                )
        return self

    @property
    def measured_gpu_type(self) -> str | None:
        """The spec GPU type this was measured on; None for a CPU or an unlisted GPU.

        The driver's device name decides where it names a known type; the recorded label only
        otherwise, and never for a CPU profile.
        """
        if self.hardware.kind != "gpu":
            return None
        return gpu_type_of_device(self.hardware.device) or self.hardware.accelerator

    @property
    def hardware_label(self) -> str:
        """What the profile was measured on, for messages: e.g. `gpu: NVIDIA L4 (nvidia-l4)`."""
        gpu = self.measured_gpu_type
        return f"{self.hardware.kind}: {self.hardware.device}" + (f" ({gpu})" if gpu else "")

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


MAX_PROFILE_BYTES = 1 << 20
"""A profile is a few kilobytes; anything larger is not one (and is not read into memory)."""
PROFILE_FIELD = "model.profile"


def _not_a_profile(path: Path, why: str) -> SpecError:
    return SpecError(
        [
            Problem(
                PROFILE_FIELD,
                f"{path} is not an inferstack profile ({why}); point it at the JSON file "
                "`inferstack profile --model URI --out FILE` wrote",
            )
        ],
        source=str(path),
    )


def load_profile(path: str | Path) -> Profile:
    """Load a profile JSON file.

    A file that is not a profile is refused before anything in it is repeated: not a regular
    file, over `MAX_PROFILE_BYTES`, not JSON, or not a JSON object with a `format_version`. The
    refusal names the path and why, never the file's keys or values (issue 22: `model.profile:
    /etc/passwd`, or any JSON file, had its keys echoed by the schema errors).
    """
    path = Path(path)
    try:
        if not path.is_file():
            raise _not_a_profile(path, "no such regular file")
        with path.open("rb") as handle:
            raw = handle.read(MAX_PROFILE_BYTES + 1)
    except OSError as error:
        raise _not_a_profile(path, f"cannot read it: {error.strerror}") from None
    if len(raw) > MAX_PROFILE_BYTES:
        raise _not_a_profile(path, f"larger than {MAX_PROFILE_BYTES} bytes")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _not_a_profile(path, "not JSON") from None
    if not isinstance(data, dict) or "format_version" not in data:
        raise _not_a_profile(path, "not a JSON object with a format_version")
    return parse_profile(data, source=str(path))


def _inside_project(path: Path, base_dir: Path) -> Path:
    """`path` (relative to `base_dir` unless absolute), refused if it resolves outside it.

    A stack's config is reviewed and run by CI with the runner's files and credentials beside
    it; a profile belongs to the project (committed with it, found again by `pulumi up` on
    another machine), so a path that leaves the project (`/etc/passwd`, `../../.aws/x`, a
    symlink out) is a mistake or a probe, and is refused before it is opened.
    """
    project = base_dir.resolve()
    resolved = (path if path.is_absolute() else base_dir / path).resolve()
    if not resolved.is_relative_to(project):
        raise SpecError(
            [
                Problem(
                    PROFILE_FIELD,
                    f"{path} is outside the project directory {project}; keep the profile in "
                    "the project (e.g. profiles/<model>.json) and give its path relative to it",
                )
            ],
            source=str(path),
        )
    return resolved


BUILTIN_PROFILES = {"builtin://mlp": "profiles/builtin-mlp.cpu.json"}
"""Profiles shipped with the package for the built-in models."""


def builtin_profile(uri: str) -> Profile:
    """The shipped profile of a built-in model."""
    resource = resources.files("inferstack").joinpath(BUILTIN_PROFILES[uri])
    return parse_profile(json.loads(resource.read_text()), source=f"shipped profile of {uri}")


def file_digest(path: Path) -> str:
    """`sha256:<hex>` of a file's bytes, as profiles record a model file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def model_file(uri: str, base_dir: Path | None = None) -> Path | None:
    """The local file a model URI names (a path or `file://`), or None for other URIs."""
    if uri.startswith(FILE_SCHEME):
        path = Path(uri.removeprefix(FILE_SCHEME))
    elif ":" in uri:  # another scheme (builtin://, s3://) or a module:Class handler
        return None
    else:
        path = Path(uri)
    if path.is_absolute():
        return path
    return None if base_dir is None else base_dir / path


def _check_model_file(profile: Profile, path: Path, base_dir: Path | None) -> None:
    """Refuse a profile whose model file has changed since it was measured, when both are here."""
    if profile.model_digest_of != "file" or profile.model_digest is None:
        return
    model = model_file(profile.model, base_dir)
    if model is None or not model.is_file():
        return
    digest = file_digest(model)
    if digest != profile.model_digest:
        raise SpecError(
            [
                Problem(
                    PROFILE_FIELD,
                    f"{model} has changed since it was profiled (now {digest[:19]}..., profiled "
                    f"{profile.model_digest[:19]}...); re-run `inferstack profile --model "
                    f"{profile.model} --out {path}`",
                )
            ],
            source=str(path),
        )


def resolve_profile(
    model_uri: str, profile_path: str | None, base_dir: Path | None = None
) -> Profile:
    """The profile a spec points at: its `model.profile` path, else the built-in model's own.

    Given `base_dir` (a stack's project directory), the path must stay inside it. A profile of
    a local model file whose bytes have changed since it was measured is refused.
    """
    if profile_path is not None:
        path = Path(profile_path)
        if base_dir is not None:
            path = _inside_project(path, base_dir)
        profile = load_profile(path)
        if profile.model == model_uri:
            _check_model_file(profile, path, base_dir)
        return profile
    if model_uri in BUILTIN_PROFILES:
        return builtin_profile(model_uri)
    raise SpecError(
        [Problem(PROFILE_FIELD, f"no profile for {model_uri}; run `inferstack profile`")]
    )
