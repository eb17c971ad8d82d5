"""Triton Inference Server on this machine's CPU, serving the same MLP with the same knobs.

PyPI has no `tritonserver` binary package, but NVIDIA's `nvidia-pytriton` wheel (0.7.0) bundles
Triton 2.51's `tritonserver` with its python backend; the binary runs on a CPU-only Debian 12
(it logs that it finds no CUDA driver and goes on). Its python backend stub embeds the system's
Python 3.11 and needs numpy < 2 (the project venv has 2.x: outputs then come back empty), so
the model runs from a virtualenv of its own under `.bench/`, with numpy 1.26 and the same CPU
torch as the project.

The model: builtin://mlp traced to TorchScript, run by a python-backend `model.py` in one torch
thread (what `inferstack serve` gives its model process on 2 cores), max batch 128, a 2 ms
max queue delay, one CPU instance: the issue's knobs, which `grpc_protocols.py` also gives
`inferstack serve`. Everything lives under `.bench/triton/` and is built on first use.

`inferstack serve` freezes and optimizes a TorchScript model on the CPU when that answers the
same and is not slower (`runtime/optimize.py`), so a comparison with Triton as-is mixes the
servers' paths with two different forward passes. `start(..., optimized=True)` also loads a
second model, `mlp_optimized`, into the same Triton: the same file and `model.py`, told by its
config's `optimize` parameter to apply the same transform
(`torch.jit.optimize_for_inference(torch.jit.freeze(model))`) at initialize and to refuse to
load when its outputs on a sample batch differ from the loaded graph's beyond the runtime's
tolerance. One server for both keeps their frontend and backend identical; each model has its
own python-backend process and instance, and is measured alone (the other idles).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any, Final

from loadgen import REPO, start_server

from inferstack.runtime.optimize import ATOL, OPTIMIZATION, RTOL

PYTRITON: Final = "nvidia-pytriton==0.7.0"
BENCH: Final = REPO / ".bench" / "triton"
MODEL: Final = "mlp"
"""The model as traced."""
OPTIMIZED_MODEL: Final = "mlp_optimized"
"""The same file, frozen and optimized at initialize (`optimized=True`)."""
MODEL_PY: Final = """import json
import os
import site
site.addsitedir(%(site)r)
import numpy as np
import torch
import triton_python_backend_utils as pb_utils


def optimized(model):
    # The transform of inferstack's runtime/optimize.py, checked with its tolerance.
    candidate = torch.jit.optimize_for_inference(torch.jit.freeze(model))
    sample = (torch.arange(32 * 512) %% 7 / 7.0).reshape(32, 512).float()
    with torch.inference_mode():
        want, got = model(sample), candidate(sample)
    atol = %(atol)r * max(1.0, want.abs().max().item())
    if not torch.allclose(got, want, rtol=%(rtol)r, atol=atol):
        raise RuntimeError("the optimized graph's outputs differ from the loaded graph's")
    return candidate


class TritonPythonModel:
    def initialize(self, args):
        torch.set_num_threads(1)
        model = torch.jit.load(os.path.join(os.path.dirname(__file__), "mlp.pt")).eval()
        parameters = json.loads(args["model_config"]).get("parameters", {})
        if parameters.get("optimize", {}).get("string_value") == %(optimization)r:
            model = optimized(model)
        self.model = model

    def execute(self, requests):
        xs = [pb_utils.get_input_tensor_by_name(r, "input").as_numpy() for r in requests]
        with torch.inference_mode():
            y = self.model(torch.from_numpy(np.concatenate(xs))).numpy()
        out, start = [], 0
        for x in xs:
            tensor = pb_utils.Tensor("output", y[start : start + len(x)])
            out.append(pb_utils.InferenceResponse([tensor]))
            start += len(x)
        return out
"""
CONFIG: Final = """name: "%(name)s"
backend: "python"
max_batch_size: 128
input [ { name: "input", data_type: TYPE_FP32, dims: [ 512 ] } ]
output [ { name: "output", data_type: TYPE_FP32, dims: [ 512 ] } ]
dynamic_batching { max_queue_delay_microseconds: 2000 }
instance_group [ { count: 1, kind: KIND_CPU } ]
parameters { key: "optimize" value: { string_value: "%(optimize)s" } }
"""


def prepare(optimized: bool = False) -> Path:
    """Download and unpack Triton, build the model venv and repository (with `mlp_optimized`
    beside `mlp` when `optimized`); the server binary."""
    binary = BENCH / "server" / "pytriton" / "tritonserver" / "bin" / "tritonserver"
    if not binary.exists():
        wheels = BENCH / "wheels"
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", wheels, PYTRITON],
            check=True,
        )
        wheel = next(wheels.glob("nvidia_pytriton-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(BENCH / "server")
        binary.chmod(0o755)
        backend = binary.parents[1] / "backends" / "python"
        stub = binary.parents[1] / "python_backend_stubs" / "3.11" / "triton_python_backend_stub"
        (backend / stub.name).write_bytes(stub.read_bytes())
        (backend / stub.name).chmod(0o755)
    venv = BENCH / "python"
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run(
            [venv / "bin" / "pip", "install", "-q", "numpy<2", "torch==2.13.0"], check=True
        )
    site = next((venv / "lib").glob("python3.*/site-packages"))
    _write_model(MODEL, "", site)
    if optimized:
        _write_model(OPTIMIZED_MODEL, OPTIMIZATION, site)
    else:  # Triton loads every model in the repository: no idle second model in as-is runs.
        shutil.rmtree(BENCH / "repository" / OPTIMIZED_MODEL, ignore_errors=True)
    return binary


def _write_model(name: str, optimize: str, site: Path) -> None:
    """One model of the repository: the traced MLP, `model.py` and its config (`optimize`:
    OPTIMIZATION to apply it, empty for the graph as traced)."""
    import torch

    from inferstack.runtime.models import build_mlp

    trace: Any = torch.jit.trace  # Untyped in torch's stubs.
    version = BENCH / "repository" / name / "1"
    version.mkdir(parents=True, exist_ok=True)
    trace(build_mlp(), torch.zeros(1, 512)).save(str(version / "mlp.pt"))
    (version / "model.py").write_text(
        MODEL_PY % {"site": str(site), "atol": ATOL, "rtol": RTOL, "optimization": OPTIMIZATION}
    )
    (version.parent / "config.pbtxt").write_text(CONFIG % {"name": name, "optimize": optimize})


def start(
    http_port: int, grpc_port: int, metrics_port: int, *, optimized: bool = False
) -> subprocess.Popen[bytes]:
    """Start tritonserver on the three ports and wait until the models are ready (`mlp`, and
    `mlp_optimized` too when `optimized`)."""
    binary = prepare(optimized)
    libraries = binary.parents[3] / "nvidia_pytriton.libs"
    return start_server(
        [
            str(binary),
            f"--model-repository={BENCH / 'repository'}",
            f"--backend-directory={binary.parents[1] / 'backends'}",
            f"--http-port={http_port}",
            f"--grpc-port={grpc_port}",
            f"--metrics-port={metrics_port}",
            "--log-info=false",
        ],
        http_port,
        env={"LD_LIBRARY_PATH": f"{libraries}:{os.environ.get('LD_LIBRARY_PATH', '')}"},
    )
