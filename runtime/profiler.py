"""`inferstack profile`: measure a model on this hardware and write its profile.

Measured here: model load, warm-up, and per batch size the compute latency (p50, and a p99
that one burst of a shared machine's stalls does not set: `robust_p99`) and throughput of
`predict_batch` (numpy in, numpy out: what the server pays per batch), with the
same explicit torch thread setting the server uses and, by default, the way the server calls it:
in a model process, through the pipe (`--model-process false` times it in this process). Not
measurable here, and so recorded as `source: "assumed"` with the figure's origin: node
provisioning and image pull.

Under a real-time policy (SCHED_FIFO or SCHED_RR, as the fidelity benchmark runs it) the kernel
lets real-time tasks use `sched_rt_runtime_us` of every `sched_rt_period_us` (950 ms of each
second by default) and runs other tasks for the rest: a continuous timing loop of a CPU-bound model
met a 50-ms stall once a second, and the demo MLP's p99 read 3x its p50 from batch 4. So there
the timings run in bursts a quarter of that runtime long, each followed by a pause that keeps the
loop at half the runtime's share (`RtBudget`): no period's real-time time reaches the limit.

With `--server-overhead` (default true) it also measures what `inferstack serve` adds to a
batch's compute (HTTP parse, decode, batcher, encode: `server_overhead.py`) and how far apart
the answers of one batch leave, and records both in the profile (format 4), for the simulator's
replica.

The profile also records what it measured: the model URI with a digest of its file (the
built-in model's weights, a handler's module source), its signature, and the device seen (the
CPU model, or the GPU's driver name with the spec GPU type it is). `--accelerator` is a check,
not a label: a name the spec would reject, or one that is not the GPU here, is refused.

`--optimize` is `serve`'s setting (`optimize.py`), default `auto`: the profile times the graph
the server would run with that setting, the server path included. Which graph that was is in
the progress line and in the cold start's warm-up note (free text, so the format stays 4; the
warm-up seconds include the graph check's).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import hashlib
import importlib.util
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, get_args

import numpy as np

from inferstack.contract.gpus import GPU_TYPE_NAMES, gpu_type_of_device
from inferstack.profile import (
    BatchPoint,
    ColdStart,
    ColdStartPart,
    Hardware,
    LatencyMs,
    Profile,
    Signature,
    TensorSignature,
    file_digest,
    model_file,
)
from inferstack.runtime.model_source import fetch_model
from inferstack.runtime.models import (
    LoadedModel,
    ModelLoadError,
    build_mlp,
    configure_torch_threads,
    model_name_from_uri,
    open_model,
    resolve_device,
)
from inferstack.runtime.optimize import OptimizeMode
from inferstack.runtime.server_overhead import measure_server_overhead
from inferstack.runtime.settings import BatchingSettings, boolean
from inferstack.runtime.tensors import TensorSpec

DEFAULT_BATCH_SIZES: Final = (1, 2, 4, 8, 16, 32, 64, 128)
P99_PARTS: Final = 5
"""A batch size's p99 is the median of the p99s of this many consecutive parts of its timings."""
PART_SAMPLES: Final = 20
"""Fewest samples per part: with fewer timings there are fewer parts (one: the plain p99)."""
RT_KERNEL_DIR: Final = Path("/proc/sys/kernel")
"""Where Linux keeps `sched_rt_runtime_us` and `sched_rt_period_us` (sched(7))."""
DEFAULT_RT_RUNTIME_US: Final = 950_000
DEFAULT_RT_PERIOD_US: Final = 1_000_000
REALTIME_POLICIES: Final = frozenset(
    getattr(os, name) for name in ("SCHED_FIFO", "SCHED_RR") if hasattr(os, name)
)

ASSUMED_NODE_PROVISION_S: Final = 150.0
ASSUMED_NODE_PROVISION_NOTE: Final = (
    "not measurable without a cluster; typical time for a managed GPU node (EKS managed node "
    "group or GKE node pool) from scale-up decision to Ready with the NVIDIA device plugin: "
    "2 to 3 minutes"
)
ASSUMED_IMAGE_PULL_S: Final = 60.0
ASSUMED_IMAGE_PULL_NOTE: Final = (
    "not measurable without a registry; a CUDA + torch runtime image is about 5-6 GB "
    "compressed, at the ~100 MB/s a cloud node typically pulls from its regional registry"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `inferstack profile`."""
    parser.add_argument("--model", required=True, help="model URI, e.g. builtin://mlp")
    parser.add_argument("--out", required=True, type=Path, help="profile JSON to write")
    parser.add_argument(
        "--batch-sizes",
        default=",".join(str(size) for size in DEFAULT_BATCH_SIZES),
        help="comma-separated batch sizes to measure (default %(default)s)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument(
        "--model-sha256",
        help="the model file's sha256: a fetched (or local) file with another digest is refused",
    )
    parser.add_argument(
        "--model-cache",
        help="folder a remote model (s3://, gs://, hf://, https://) is fetched into "
        "(default ~/.cache/inferstack/models)",
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="torch intra-op threads (0: as the server does)"
    )
    parser.add_argument(
        "--seconds", type=float, default=2.0, help="measuring time per batch size (default 2)"
    )
    parser.add_argument(
        "--accelerator",
        help="the spec GPU type this run must measure, e.g. nvidia-l4: refused unless it is the "
        "GPU here (the type seen is recorded either way)",
    )
    parser.add_argument(
        "--model-process",
        type=boolean,
        default=True,
        help="time the model in its own process, as `serve` runs it (default true)",
    )
    parser.add_argument(
        "--server-overhead",
        type=boolean,
        default=True,
        help="also measure what `inferstack serve` adds per request and per batch, through a "
        "server on loopback (default true)",
    )
    # serve's setting, its choices, default and help: a profile of the graph serve would run.
    optimize = BatchingSettings.model_fields["optimize"]
    parser.add_argument(
        "--optimize",
        choices=get_args(OptimizeMode),
        default=optimize.default,
        help=f"{optimize.description} (default %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    """Measure and write the profile; 2 on bad flags or a model that does not load."""
    try:
        sizes = _batch_sizes(args.batch_sizes)
    except ValueError as error:
        sys.stderr.write(f"inferstack profile: --batch-sizes: {error}\n")
        return 2
    if args.seconds <= 0 or args.threads < 0:
        sys.stderr.write("inferstack profile: --seconds must be positive, --threads >= 0\n")
        return 2
    try:
        profile = measure(
            args.model,
            sizes,
            device=args.device,
            sha256=args.model_sha256,
            cache_dir=args.model_cache,
            threads=_torch_threads(args.model, args.threads),
            seconds_per_size=args.seconds,
            accelerator=args.accelerator,
            model_process=args.model_process,
            server_overhead=args.server_overhead,
            optimize=args.optimize,
            progress=_to_stderr,
        )
    except (ModelLoadError, AcceleratorError, RuntimeError) as error:
        sys.stderr.write(f"inferstack profile: {error}\n")
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(profile.model_dump(mode="json"), indent=2) + "\n")
    sys.stderr.write(f"wrote {args.out}\n")
    return 0


def _torch_threads(model: str, threads: int) -> int:
    """`--threads`, or the automatic count `serve` gives its model with default settings."""
    return BatchingSettings(model=model, torch_threads=threads).resolved_torch_threads()


def measure(
    uri: str,
    batch_sizes: Sequence[int],
    *,
    device: str = "auto",
    sha256: str | None = None,
    cache_dir: str | None = None,
    threads: int = 1,
    seconds_per_size: float = 2.0,
    accelerator: str | None = None,
    model_process: bool = True,
    server_overhead: bool = False,
    optimize: OptimizeMode = "auto",
    progress: Callable[[str], None] | None = None,
) -> Profile:
    """Load, warm up and time the model at each batch size; returns a validated Profile.

    `optimize` is `serve`'s setting (`optimize.optimize_graph`): the timed graph, here and
    through the server, is the one `serve` runs with it.

    With `server_overhead`, also time the server path through `inferstack serve` (RuntimeError
    when that server cannot start).

    Raises `AcceleratorError` before loading anything when `accelerator` is not the GPU here.
    """
    import torch

    report = progress or (lambda line: None)
    # Set here too in a model process: the profile records this process's torch as well.
    configure_torch_threads(threads)
    resolved = resolve_device(device)
    gpu = resolved.startswith("cuda")
    device_name = torch.cuda.get_device_name(resolved) if gpu else _cpu_name()
    seen_type = check_accelerator(accelerator, resolved, device_name)
    # A remote model is fetched once, here: its digest and size are the fetched file's, and the
    # size is what the plan's cold start downloads (model_bytes).
    local = fetch_model(uri, sha256=sha256, cache_dir=cache_dir)
    digest, digest_of = model_digest(local)
    file_bytes = model_size(local)
    opened = open_model(
        local,
        name=model_name_from_uri(uri),
        device=resolved,
        threads=threads,
        warm_up_sizes=sorted(batch_sizes),
        model_process=model_process,
        optimize=optimize,
    )
    model, resolved = opened.model, opened.device
    load_s, warmup_s = opened.load_s, opened.warm_up_s
    where = "in a model process" if model_process else "in this process"
    graph = opened.graph.describe()
    report(
        f"{uri}: load {load_s:.2f}s, warm-up {warmup_s:.2f}s on {resolved} {where}, "
        f"{threads} threads, {graph}"
    )
    budget = rt_budget()
    if budget is not None:
        report(
            f"  real-time limit {budget.runtime_s * 1000:.0f} ms of every "
            f"{budget.period_s * 1000:.0f} ms: timing in bursts of {budget.burst_s * 1000:.0f} "
            f"ms, each followed by a pause {budget.pause_s(1.0):.2f}x its length"
        )
    # As the server does once ready: a gen-2 collection walking torch in this process would
    # land inside a timed call (20-40 ms outliers at batch 16 and 32 set the p99 before).
    gc.collect()
    gc.freeze()
    points = []
    try:
        for size in sorted(batch_sizes):
            point = _time_batch(model, size, seconds_per_size, budget)
            report(
                f"  batch {size:>4}: p50 {point.latency_ms.p50:8.2f} ms  p99 "
                f"{point.latency_ms.p99:8.2f} ms  {point.throughput_items_per_s:10.0f} items/s"
            )
            points.append(point)
        signature = Signature(
            inputs=[_tensor(spec) for spec in model.inputs],
            outputs=[_tensor(spec) for spec in model.outputs],
        )
        row = model.example_inputs(1)
    finally:
        model.close()
    overhead = None
    if server_overhead:  # after close: the server loads its own copy of the model
        overhead = measure_server_overhead(
            local,
            row,
            {p.batch_size: p.latency_ms.p50 for p in points},
            threads=threads,
            device=resolved,
            model_process=model_process,
            seconds_per_size=seconds_per_size,
            optimize=optimize,
        )
        for measured in overhead.points:
            report(
                f"  server path, batch {measured.batch_size:>4}: "
                f"{measured.batch_cycle_ms:8.2f} ms per batch, overhead {measured.overhead_ms:6.2f}"
                + (
                    f", answers {measured.answer_spacing_ms:.3f} ms apart"
                    if measured.answer_spacing_ms is not None
                    else ""
                )
            )
        report(
            f"  server overhead: {overhead.per_batch_ms:.3f} ms per batch + "
            f"{overhead.per_request_ms:.3f} ms per request"
        )
    return Profile(
        model=uri,
        model_digest=digest,
        model_digest_of=digest_of,
        model_bytes=file_bytes,
        signature=signature,
        measured_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        hardware=Hardware(
            kind="gpu" if gpu else "cpu",
            device=device_name,
            accelerator=seen_type,
            threads=threads,
            torch_version=torch.__version__,
        ),
        batches=points,
        cold_start=ColdStart(
            node_provision=ColdStartPart(
                seconds=ASSUMED_NODE_PROVISION_S,
                source="assumed",
                note=ASSUMED_NODE_PROVISION_NOTE,
            ),
            image_pull=ColdStartPart(
                seconds=ASSUMED_IMAGE_PULL_S, source="assumed", note=ASSUMED_IMAGE_PULL_NOTE
            ),
            model_load=ColdStartPart(
                seconds=round(load_s, 3),
                source="measured",
                note=f"load_model({uri!r}) on {resolved} {where}",
            ),
            warmup=ColdStartPart(
                seconds=round(warmup_s, 3),
                source="measured",
                # The seconds include the graph check's (`OpenedModel.warm_up_s`), and the
                # timings are of the graph it chose: the profile's record of which one.
                note=f"2 calls at each of batch sizes {sorted(batch_sizes)}, after the graph "
                f"check ({optimize}): {graph}",
            ),
        ),
        server_overhead=overhead,
    )


class AcceleratorError(ValueError):
    """`--accelerator` names a GPU the spec would reject, or not the one this run measures."""


def check_accelerator(requested: str | None, device: str, device_name: str) -> str | None:
    """The spec GPU type to record for `device` (named `device_name` by its driver).

    Refuses a `requested` type that the spec would reject or that is not what is seen.
    """
    if requested is not None and requested not in GPU_TYPE_NAMES:
        raise AcceleratorError(
            f"--accelerator {requested!r} is not a GPU type a spec accepts; use one of "
            f"{', '.join(GPU_TYPE_NAMES)}"
        )
    if not device.startswith("cuda"):
        if requested is not None:
            raise AcceleratorError(
                f"--accelerator {requested} but this run measures the CPU ({device_name}); run "
                f"it on a machine with a {requested} (--device cuda), or drop --accelerator: the "
                "profile then records the CPU and sizing warns that its numbers are indicative"
            )
        return None
    seen = gpu_type_of_device(device_name)
    if requested is not None and requested != seen:
        raise AcceleratorError(
            f"--accelerator {requested} but the GPU on {device} is {device_name!r} "
            f"({seen or 'not a GPU type the spec lists'}); run it on a {requested}, or drop "
            "--accelerator to record the GPU seen"
        )
    return seen


def model_digest(
    uri: str,
) -> tuple[str | None, Literal["file", "weights", "handler source"] | None]:
    """A digest of what `uri` loads, and what was hashed; (None, None) when nothing local is."""
    if uri.startswith("builtin://"):
        digest = hashlib.sha256()
        for name, tensor in sorted(build_mlp("cpu").state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().contiguous().numpy().tobytes())
        return f"sha256:{digest.hexdigest()}", "weights"
    path = model_file(uri, Path.cwd())
    if path is not None:
        return (file_digest(path), "file") if path.is_file() else (None, None)
    if "://" not in uri and ":" in uri:  # package.module:Class
        found = importlib.util.find_spec(uri.split(":", 1)[0])
        if found is not None and found.origin and Path(found.origin).is_file():
            return file_digest(Path(found.origin)), "handler source"
    return None, None


def model_size(uri: str) -> int | None:
    """Bytes of the model file `uri` names locally (None: the built-in model, a handler)."""
    path = model_file(uri)
    return path.stat().st_size if path is not None and path.is_file() else None


def _tensor(spec: TensorSpec) -> TensorSignature:
    return TensorSignature(name=spec.name, datatype=spec.datatype, shape=list(spec.shape))


@dataclass(frozen=True)
class RtBudget:
    """The kernel's real-time limit: real-time tasks get `runtime_s` of CPU per `period_s`.

    A core whose real-time tasks used `runtime_s` within a period runs none of them until the
    period ends (Documentation/scheduler/sched-rt-group.rst; since Linux 6.12 the fair deadline
    server runs starved other tasks for the rest instead, the same stall). Timing bursts of at most
    `burst_s`, at a duty cycle of `runtime_s / (2 * period_s)`, use at most half the runtime
    plus one burst, three quarters of it, in any period: never stopped.
    """

    runtime_s: float
    period_s: float

    @property
    def burst_s(self) -> float:
        """The longest stretch of timing between pauses: a quarter of the runtime."""
        return self.runtime_s / 4

    def pause_s(self, busy_s: float) -> float:
        """The pause after `busy_s` of timing, for a duty cycle of half the runtime's share."""
        return busy_s * (2 * self.period_s / self.runtime_s - 1)


def rt_budget(kernel_dir: Path = RT_KERNEL_DIR, policy: int | None = None) -> RtBudget | None:
    """The real-time limit this process's timings meet (`policy`: its scheduling policy).

    None when the process is not real-time (SCHED_FIFO, SCHED_RR). The limit is
    `sched_rt_runtime_us` of `sched_rt_period_us`; where that sets none (-1) or cannot be read,
    the kernel's default, 950 ms of each second: since Linux 6.12 the fair deadline server
    reserves 50 ms of each second for other tasks whatever that setting says (its own figures
    are in debugfs only).
    """
    if policy is None:
        try:
            policy = os.sched_getscheduler(0)
        except (AttributeError, OSError):
            return None
    if policy not in REALTIME_POLICIES:
        return None
    try:
        runtime = int((kernel_dir / "sched_rt_runtime_us").read_text())
        period = int((kernel_dir / "sched_rt_period_us").read_text())
    except (OSError, ValueError):
        runtime, period = DEFAULT_RT_RUNTIME_US, DEFAULT_RT_PERIOD_US
    if not 0 < runtime < period:
        runtime, period = DEFAULT_RT_RUNTIME_US, DEFAULT_RT_PERIOD_US
    return RtBudget(runtime / 1e6, period / 1e6)


def _time_batch(
    model: LoadedModel, batch_size: int, seconds: float, budget: RtBudget | None = None
) -> BatchPoint:
    """Time `predict_batch` at `batch_size` for `seconds` of calls; in bursts under `budget`."""
    inputs = model.example_inputs(batch_size)
    model.predict_batch(inputs)
    timings: list[float] = []
    timed = 0.0
    burst_began = time.perf_counter()
    # At least 20 samples so the p99 is not just the single slowest call of a handful.
    while len(timings) < 20 or timed < seconds:
        if budget is not None and (busy := time.perf_counter() - burst_began) >= budget.burst_s:
            time.sleep(budget.pause_s(busy))
            burst_began = time.perf_counter()
            # Untimed: the first call after a pause finds what other tenants left in the caches,
            # which the server's back-to-back batches under load do not.
            model.predict_batch(inputs)
        before = time.perf_counter()
        model.predict_batch(inputs)  # Returns numpy: on a GPU this includes the sync.
        timings.append(time.perf_counter() - before)
        timed += timings[-1]
    values = np.array(timings) * 1000
    return BatchPoint(
        batch_size=batch_size,
        latency_ms=LatencyMs(
            p50=round(float(np.percentile(values, 50)), 3),
            p99=round(robust_p99(values), 3),
        ),
        throughput_items_per_s=round(batch_size * len(values) / (values.sum() / 1000), 1),
    )


def robust_p99(values: np.ndarray) -> float:
    """The median of the p99s of up to `P99_PARTS` consecutive parts of `values` (in order).

    Why not the plain p99: on a shared machine the process is descheduled now and then for a
    few milliseconds, in bursts. For a model whose batch time is tight (the fidelity benchmark's
    sleep: p99/p50 = 1.02 over 1,800 calls at batch 1 and 4, load average 9) one burst inside
    a few hundred timings set the plain p99 30 % above p50 at batch 2 and 4, and the simulator's
    log-normal, fitted through p50 and p99, spread that over every batch. A burst lands in one
    part; the median of the parts' p99s is the tail that recurs. A tail the model really has
    (each part sees it) is kept.
    """
    parts = max(1, min(P99_PARTS, len(values) // PART_SAMPLES))
    return float(np.median([np.percentile(part, 99) for part in np.array_split(values, parts)]))


def _to_stderr(line: str) -> None:
    sys.stderr.write(line + "\n")


def _batch_sizes(text: str) -> list[int]:
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise ValueError(f"expected comma-separated positive integers, got {text!r}")
    return sorted({int(part) for part in parts})


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
