"""Model loaders: one interface over the built-in model, TorchScript, torch.export and handlers.

Every model, whatever its format, becomes a `LoadedModel`: a name, input and output
`TensorSpec`s (batch dimension first) and a blocking `predict_batch` from numpy arrays to numpy
arrays. The batcher, the HTTP server, the profiler and the queue worker only see that interface.

URIs:
- `builtin://mlp`: a 512 -> 2048 -> 2048 -> 512 GELU MLP with weights drawn from a fixed seed.
  Nothing is downloaded; big enough that batching pays, small enough for CPU tests.
- a path (or `file://` URI) ending in `.pt`, `.pth` or `.torchscript`: a TorchScript archive.
- a path ending in `.pt2`: a `torch.export` program (its batch dimension must be dynamic).
- `package.module:Class`: a Python handler class with `load()` and `predict_batch()`.

TorchScript archives do not record shapes or dtypes, so they need a signature: a JSON document
`{"inputs": [{"name", "datatype", "shape"}], "outputs": [...]}` embedded in the archive as the
extra file `inferstack_signature.json` (`torch.jit.save(m, path, _extra_files={...})`) or kept
beside it as `<path>.signature.json`. Exported programs carry shapes, so the signature is optional
there and only renames tensors.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import re
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from typing_extensions import override

from inferstack.runtime.pt2_archives import code_in_archive
from inferstack.runtime.tensors import VARIABLE_DIM, TensorSpec

if TYPE_CHECKING:  # optimize.py builds on this module.
    from inferstack.runtime.optimize import GraphOutcome, OptimizeMode

BUILTIN_SCHEME: Final = "builtin://"
SIGNATURE_FILE: Final = "inferstack_signature.json"
"""Name of the signature inside a TorchScript or torch.export archive."""
SIGNATURE_SUFFIX: Final = ".signature.json"
"""Suffix of a signature kept beside a model file."""

MLP_SEED: Final = 20240611
MLP_WIDTHS: Final = (512, 2048, 2048, 512)

_TORCHSCRIPT_SUFFIXES: Final = (".pt", ".pth", ".torchscript")
_EXPORT_SUFFIXES: Final = (".pt2",)
_HANDLER_RE: Final = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class ModelLoadError(Exception):
    """A model URI could not be turned into a servable model; the message says how to fix it."""


class LoadedModel(ABC):
    """A model ready to serve: its signature and a blocking batch prediction.

    `predict_batch` receives every input with the same number of rows (the batch dimension) and
    must return every output with that many rows. It runs on a worker thread, never on the
    event loop.
    """

    name: str
    uri: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    platform: str = "inferstack"

    @abstractmethod
    def predict_batch(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch: every input has the same first dimension; so must every output."""

    def example_inputs(self, batch_size: int) -> dict[str, np.ndarray]:
        """Valid synthetic inputs with `batch_size` rows, for warm-up and profiling."""
        return {spec.name: spec.example(batch_size) for spec in self.inputs}

    def input_spec(self, name: str) -> TensorSpec | None:
        """The spec of input `name`, or None when the model has no such input."""
        return next((spec for spec in self.inputs if spec.name == name), None)

    def close(self, timeout_s: float | None = None) -> None:  # noqa: B027 (an optional hook)
        """Release what the model holds beyond memory (processes, files); none by default.

        `timeout_s` bounds how long a model that is still working may take to stop (None: the
        model's own default).
        """


class TorchModel(LoadedModel):
    """A torch callable (nn.Module, ScriptModule or exported program) behind the interface."""

    def __init__(
        self,
        *,
        name: str,
        uri: str,
        module: Callable[..., Any],
        inputs: Sequence[TensorSpec],
        outputs: Sequence[TensorSpec],
        device: str,
        platform: str,
    ) -> None:
        self.name = name
        self.uri = uri
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.platform = platform
        self.device = device
        self._module = module

    @property
    def module(self) -> Callable[..., Any]:
        """The torch callable that `predict_batch` runs."""
        return self._module

    def use_module(self, module: Callable[..., Any]) -> None:
        """Serve `module` from now on (an optimized graph of the same model, `optimize.py`)."""
        self._module = module

    @override
    def predict_batch(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.run_module(self._module, inputs)

    def run_module(
        self, module: Callable[..., Any], inputs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """`predict_batch` through `module` instead of the served one: how a candidate graph is
        checked and timed on exactly the path batches take."""
        import torch

        args = [
            torch.from_numpy(np.ascontiguousarray(inputs[spec.name])).to(self.device)
            for spec in self.inputs
        ]
        with torch.inference_mode():
            result = module(*args)
        return self._name_outputs(result)

    def _name_outputs(self, result: Any) -> dict[str, np.ndarray]:
        import torch

        if isinstance(result, torch.Tensor):
            tensors: list[Any] = [result]
        elif isinstance(result, Mapping):
            missing = [spec.name for spec in self.outputs if spec.name not in result]
            if missing:
                raise ValueError(
                    f"model {self.name!r} returned a dict without outputs {missing}; "
                    f"return keys {[spec.name for spec in self.outputs]} or fix the signature"
                )
            tensors = [result[spec.name] for spec in self.outputs]
        elif isinstance(result, (tuple, list)):
            tensors = list(result)
        else:
            raise TypeError(
                f"model {self.name!r} returned {type(result).__name__}; return a tensor, "
                "a tuple of tensors or a dict of tensors"
            )
        if len(tensors) != len(self.outputs):
            raise ValueError(
                f"model {self.name!r} returned {len(tensors)} outputs but its signature declares "
                f"{len(self.outputs)} ({[spec.name for spec in self.outputs]}); fix the signature"
            )
        return {
            spec.name: tensor.detach().cpu().numpy()
            for spec, tensor in zip(self.outputs, tensors, strict=True)
        }


class HandlerModel(LoadedModel):
    """A user's Python handler class: `load()` once, then `predict_batch(dict) -> dict`.

    The class declares `inputs` and `outputs` (lists of `TensorSpec` or of
    `{"name", "datatype", "shape"}` dicts) and may set `name`; both may be set by `load()`.
    """

    def __init__(self, *, uri: str, handler: Any, name: str | None, default_name: str) -> None:
        self.uri = uri
        self._handler = handler
        self.name = name or str(getattr(handler, "name", None) or default_name)
        self.inputs = _specs(getattr(handler, "inputs", None), f"{uri}: handler.inputs")
        self.outputs = _specs(getattr(handler, "outputs", None), f"{uri}: handler.outputs")
        self.platform = "python"

    @override
    def predict_batch(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        result = self._handler.predict_batch(inputs)
        if not isinstance(result, Mapping):
            raise TypeError(
                f"handler {self.uri} predict_batch returned {type(result).__name__}; "
                "return a dict of output name to numpy array"
            )
        return {str(key): np.asarray(value) for key, value in result.items()}

    @override
    def example_inputs(self, batch_size: int) -> dict[str, np.ndarray]:
        custom = getattr(self._handler, "example_inputs", None)
        if callable(custom):
            return dict(custom(batch_size))
        return super().example_inputs(batch_size)


def model_name_from_uri(uri: str) -> str:
    """The default served name of a model: `builtin://mlp` -> `mlp`, `/m/resnet.pt` -> `resnet`."""
    if uri.startswith(BUILTIN_SCHEME):
        raw = uri.removeprefix(BUILTIN_SCHEME)
    elif _HANDLER_RE.match(uri):
        raw = uri.rsplit(":", 1)[1].lower()
    else:
        raw = Path(uri.removeprefix("file://")).stem
    # Names appear in URL paths and metric labels: keep them to a safe alphabet.
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", raw).strip("-.")
    return name or "model"


def resolve_device(device: str = "auto") -> str:
    """`auto` is `cuda` when torch sees a GPU, else `cpu`; `cuda[:N]` is checked to exist.

    Raises ModelLoadError in one line when a CUDA device is asked for and this torch cannot give
    it (a CPU build of torch, no GPU visible, or fewer GPUs than N+1), instead of the traceback
    or the misleading "not a TorchScript archive" torch would produce further in.
    """
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not device.startswith("cuda"):
        return device
    build = torch.__version__
    if torch.version.cuda is None:
        raise ModelLoadError(
            f"device {device!r} asked for, but this torch ({build}) is a CPU build; run the "
            "-cuda image (or install a CUDA torch), or use --device cpu / auto"
        )
    count = torch.cuda.device_count()
    index = int(device.partition(":")[2] or 0)
    if count <= index:
        seen = "no GPU is visible" if count == 0 else f"only {count} GPU(s) are visible"
        raise ModelLoadError(
            f"device {device!r} asked for, but {seen} to torch {build} "
            f"(CUDA {torch.version.cuda}); "
            "run on a GPU node with the NVIDIA driver and nvidia.com/gpu requested, or use "
            "--device cpu / auto"
        )
    return device


def load_model(uri: str, *, name: str | None = None, device: str = "auto") -> LoadedModel:
    """Load the model at `uri` (see the module docstring for the URI forms).

    Raises ModelLoadError with the fix when the URI, the file or its signature is wrong.
    """
    served_name = name or model_name_from_uri(uri)
    if uri.startswith(BUILTIN_SCHEME):
        return _load_builtin(uri, served_name, resolve_device(device))
    if _HANDLER_RE.match(uri):
        return _load_handler(uri, name, served_name)
    path = Path(uri.removeprefix("file://"))
    if path.suffix in _EXPORT_SUFFIXES:
        return _load_exported(uri, path, served_name, resolve_device(device))
    if path.suffix in _TORCHSCRIPT_SUFFIXES:
        return _load_torchscript(uri, path, served_name, resolve_device(device))
    raise ModelLoadError(
        f"model URI {uri!r} is not understood; use builtin://mlp, a TorchScript file "
        f"({', '.join(_TORCHSCRIPT_SUFFIXES)}), a torch.export program (.pt2) or "
        "package.module:HandlerClass"
    )


def build_mlp(device: str = "cpu") -> Any:
    """The built-in MLP as an `nn.Module` in eval mode, weights from `MLP_SEED`.

    Weights are drawn on the CPU from a private generator so they are identical on every
    device and do not disturb the global RNG.
    """
    import torch

    generator = torch.Generator().manual_seed(MLP_SEED)
    layers: list[torch.nn.Module] = []
    for index, (fan_in, fan_out) in enumerate(zip(MLP_WIDTHS, MLP_WIDTHS[1:], strict=False)):
        linear = torch.nn.Linear(fan_in, fan_out)
        with torch.no_grad():
            linear.weight.copy_(torch.randn(fan_out, fan_in, generator=generator) / fan_in**0.5)
            linear.bias.copy_(torch.randn(fan_out, generator=generator) * 0.01)
        layers.append(linear)
        if index < len(MLP_WIDTHS) - 2:
            layers.append(torch.nn.GELU())
    return torch.nn.Sequential(*layers).eval().to(device)


def _load_builtin(uri: str, name: str, device: str) -> LoadedModel:
    kind = uri.removeprefix(BUILTIN_SCHEME)
    if kind != "mlp":
        raise ModelLoadError(f"unknown built-in model {uri!r}; the built-in model is builtin://mlp")
    return TorchModel(
        name=name,
        uri=uri,
        module=build_mlp(device),
        inputs=[TensorSpec("input", "FP32", [VARIABLE_DIM, MLP_WIDTHS[0]])],
        outputs=[TensorSpec("output", "FP32", [VARIABLE_DIM, MLP_WIDTHS[-1]])],
        device=device,
        platform="pytorch_libtorch",
    )


def _load_torchscript(uri: str, path: Path, name: str, device: str) -> LoadedModel:
    import torch

    if not path.is_file():
        raise ModelLoadError(f"TorchScript file {path} does not exist; check the model URI")
    extra = {SIGNATURE_FILE: ""}
    try:
        jit_load: Any = torch.jit.load  # Untyped in torch's stubs.
        with warnings.catch_warnings():
            # TorchScript is deprecated upstream but is still what many teams ship; loading it
            # is this loader's job, so the warning would only be noise in the server log.
            warnings.simplefilter("ignore", DeprecationWarning)
            module = jit_load(str(path), map_location=device, _extra_files=extra)
    except RuntimeError as error:
        raise ModelLoadError(
            f"{path} is not a TorchScript archive ({error}); save it with torch.jit.save, "
            "or name a torch.export program .pt2"
        ) from None
    signature = _read_signature(path, extra[SIGNATURE_FILE])
    if signature is None:
        raise ModelLoadError(
            f"{path} has no signature: TorchScript does not record shapes or dtypes. Embed one "
            f"with torch.jit.save(m, path, _extra_files={{{SIGNATURE_FILE!r}: json}}) or write "
            f"{path}{SIGNATURE_SUFFIX}, both as "
            '{"inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 512]}], '
            '"outputs": [...]}'
        )
    inputs, outputs = signature
    module.eval()
    return TorchModel(
        name=name,
        uri=uri,
        module=module,
        inputs=inputs,
        outputs=outputs,
        device=device,
        platform="pytorch_libtorch",
    )


def _load_exported(uri: str, path: Path, name: str, device: str) -> LoadedModel:
    import torch

    if not path.is_file():
        raise ModelLoadError(f"torch.export program {path} does not exist; check the model URI")
    problem = code_in_archive(path)  # Before torch.export.load, which would unpickle it.
    if problem is not None:
        raise ModelLoadError(problem)
    extra = {SIGNATURE_FILE: ""}
    try:
        program = torch.export.load(str(path), extra_files=extra)
    except Exception as error:  # torch raises several types for a bad archive.
        raise ModelLoadError(
            f"{path} is not a torch.export program ({type(error).__name__}: {error}); "
            "save one with torch.export.save"
        ) from None
    derived_inputs, derived_outputs = _exported_signature(program, path)
    signature = _read_signature(path, extra[SIGNATURE_FILE])
    inputs, outputs = signature if signature is not None else (derived_inputs, derived_outputs)
    if len(inputs) != len(derived_inputs) or len(outputs) != len(derived_outputs):
        raise ModelLoadError(
            f"{path}: the signature declares {len(inputs)} inputs and {len(outputs)} outputs but "
            f"the program has {len(derived_inputs)} and {len(derived_outputs)}; fix the signature"
        )
    module = program.module()
    if device != "cpu":
        module = module.to(device)
    return TorchModel(
        name=name,
        uri=uri,
        module=module,
        inputs=inputs,
        outputs=outputs,
        device=device,
        platform="pytorch_export",
    )


def _exported_signature(program: Any, path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Input and output specs read from an exported program's graph: symbolic dims become -1."""
    import torch

    from inferstack.runtime.tensors import datatype_of

    def spec(tensor_name: str, value: Any) -> TensorSpec:
        if not isinstance(value, torch.Tensor):
            raise ModelLoadError(
                f"{path}: {tensor_name} is not a tensor ({type(value).__name__}); "
                "export a model whose inputs and outputs are tensors"
            )
        dims = [dim if isinstance(dim, int) else VARIABLE_DIM for dim in value.shape]
        if not dims or dims[0] != VARIABLE_DIM:
            raise ModelLoadError(
                f"{path}: the batch dimension of {tensor_name} is fixed at "
                f"{dims[0] if dims else 'nothing'}; export with a dynamic batch, e.g. "
                "dynamic_shapes={'x': {0: torch.export.Dim('batch')}}"
            )
        datatype = datatype_of(torch.empty(0, dtype=value.dtype).numpy())
        return TensorSpec(tensor_name, datatype, dims)

    user_inputs = set(program.graph_signature.user_inputs)
    inputs: list[TensorSpec] = []
    outputs: list[TensorSpec] = []
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in user_inputs:
            inputs.append(spec(node.name, node.meta.get("val")))
        elif node.op == "output":
            results = node.args[0]
            user_outputs = results[-len(program.graph_signature.user_outputs) :]
            names = (
                ["output"]
                if len(user_outputs) == 1
                else [f"output_{i}" for i in range(len(user_outputs))]
            )
            outputs = [
                spec(out_name, result.meta.get("val"))
                for out_name, result in zip(names, user_outputs, strict=True)
            ]
    return inputs, outputs


def _read_signature(
    path: Path, embedded: str | bytes
) -> tuple[list[TensorSpec], list[TensorSpec]] | None:
    """The signature embedded in an archive, else the one beside the file, else None."""
    sidecar = path.with_name(path.name + SIGNATURE_SUFFIX)
    if embedded:
        text, source = (
            embedded.decode() if isinstance(embedded, bytes) else embedded,
            f"{path}:{SIGNATURE_FILE}",
        )
    elif sidecar.is_file():
        text, source = sidecar.read_text(), str(sidecar)
    else:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ModelLoadError(f"signature {source} is not JSON: {error}") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"signature {source} must be an object with 'inputs' and 'outputs'")
    return (
        _specs(data.get("inputs"), f"{source}: inputs"),
        _specs(data.get("outputs"), f"{source}: outputs"),
    )


def _specs(raw: object, where: str) -> list[TensorSpec]:
    if not isinstance(raw, (list, tuple)) or not raw:
        raise ModelLoadError(
            f"{where} must be a non-empty list of TensorSpec or "
            '{"name": ..., "datatype": "FP32", "shape": [-1, ...]} entries'
        )
    specs: list[TensorSpec] = []
    for item in raw:
        try:
            spec = item if isinstance(item, TensorSpec) else TensorSpec.from_json(item)
        except (ValueError, AttributeError, TypeError) as error:
            raise ModelLoadError(f"{where}: {error}") from None
        if spec.shape[0] != VARIABLE_DIM:
            raise ModelLoadError(
                f"{where}: {spec.name!r} has a fixed first dimension {spec.shape[0]}; the first "
                "dimension is the batch and must be -1"
            )
        specs.append(spec)
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise ModelLoadError(f"{where}: tensor names repeat ({names}); give each a unique name")
    return specs


def _load_handler(uri: str, name: str | None, default_name: str) -> LoadedModel:
    module_name, class_name = uri.rsplit(":", 1)
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ModelLoadError(
            f"cannot import handler module {module_name!r} ({error}); install it or put its "
            "folder on PYTHONPATH"
        ) from None
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise ModelLoadError(f"module {module_name!r} has no class {class_name!r}")
    for method in ("load", "predict_batch"):
        if not callable(getattr(cls, method, None)):
            raise ModelLoadError(
                f"handler {uri} has no {method}() method; a handler defines load() and "
                "predict_batch(inputs: dict[str, numpy.ndarray]) -> dict[str, numpy.ndarray]"
            )
    handler = cls()
    handler.load()
    return HandlerModel(uri=uri, handler=handler, name=name, default_name=default_name)


def configure_torch_threads(intra_op: int, inter_op: int = 1) -> None:
    """Set torch's thread pools explicitly, before any model runs.

    Why explicit: torch defaults to one intra-op thread per core, which on a small machine
    starves the event loop that parses requests. inter-op threads can only be set once per
    process, so a second call leaves them as they are.
    """
    import torch

    torch.set_num_threads(intra_op)
    # Raises once set or once parallel work started: then the first setting stays.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(inter_op)


def configure_gil_switch_interval(microseconds: int) -> None:
    """How long a thread may hold the GIL while another one waits for it.

    Why: the model thread releases the GIL inside each torch operator but needs it back between
    operators, while the event-loop thread, busy parsing requests, keeps it for the whole
    default interval (5 ms). A forward pass of a few operators then waits several intervals, and
    the model sits idle with its batch half done. A short interval hands the GIL back within
    `microseconds`; `make bench` shows the effect.
    """
    import sys

    sys.setswitchinterval(microseconds / 1_000_000)


def warm_up(model: LoadedModel, batch_sizes: Sequence[int], repeats: int = 2) -> float:
    """Run the model on synthetic inputs at each batch size; returns the seconds it took.

    Why: the first calls at a new shape pay one-off costs (allocator growth, kernel selection,
    lazy initialisation on GPUs) that must not land on the first real requests.
    """
    started = time.perf_counter()
    for batch_size in batch_sizes:
        inputs = model.example_inputs(batch_size)
        for _ in range(repeats):
            model.predict_batch(inputs)
    if getattr(model, "device", "cpu").startswith("cuda"):
        import torch

        torch.cuda.synchronize()
    return time.perf_counter() - started


@dataclass(frozen=True)
class OpenedModel:
    """A model ready for `predict_batch`, and what opening it cost."""

    model: LoadedModel
    device: str
    """The resolved device (`auto` decided)."""
    load_s: float
    warm_up_s: float
    """The warm-up's seconds, with the graph check's (`graph.seconds`): both run the model at
    the warm-up sizes before it is ready."""
    graph: GraphOutcome
    """Whether the served graph is the optimized one, and why (`optimize.py`)."""


def open_model(
    uri: str,
    *,
    name: str | None = None,
    device: str = "auto",
    threads: int,
    warm_up_sizes: Sequence[int],
    instances: int = 1,
    model_process: bool = True,
    sha256: str | None = None,
    cache_dir: str | None = None,
    cpus: Sequence[tuple[int, ...]] = (),
    optimize: OptimizeMode = "auto",
) -> OpenedModel:
    """Fetch, load and warm up a model the way `serve`, `work` and `profile` all run it.

    A remote URI (s3://, gs://, hf://, https://) is fetched into `cache_dir` first and checked
    against `sha256` (`model_source.fetch_model`); the served name still comes from `uri`. The
    device is checked before anything loads (`resolve_device`).

    With `model_process` (the default) each of `instances` copies runs in its own process
    (`model_process.ProcessModel`); otherwise one copy loads on this process's torch, its
    intra-op pool set to `threads`; `cpus`, when given, pins each process to its entry
    (`model_process.own_cpus`). Before the warm-up, where the model runs, `optimize`
    (`optimize.optimize_graph`) may switch a TorchScript model on the CPU to its optimized
    graph. Blocking: call it off the event loop. Raises ModelLoadError with the fix when the
    model cannot load.
    """
    # Both build on this module (ProcessModel is a LoadedModel, a fetch error a load error).
    from inferstack.runtime.model_source import fetch_model

    served_name = name or model_name_from_uri(uri)
    if device != "auto":
        resolve_device(device)  # One clear line now, not a failure inside a model process.
    uri = fetch_model(uri, sha256=sha256, cache_dir=cache_dir)
    if model_process:
        from inferstack.runtime.model_process import ModelProcessConfig, ProcessModel

        config = ModelProcessConfig(
            uri, served_name, device, threads, tuple(warm_up_sizes), tuple(cpus), optimize
        )
        processes = ProcessModel.start(config, instances)
        return OpenedModel(
            processes, processes.device, processes.load_s, processes.warm_up_s, processes.graph
        )
    from inferstack.runtime.optimize import optimize_and_warm_up

    configure_torch_threads(threads)
    resolved = resolve_device(device)
    started = time.perf_counter()
    model = load_model(uri, name=served_name, device=resolved)
    load_s = time.perf_counter() - started
    graph, warm_up_s = optimize_and_warm_up(model, warm_up_sizes, optimize)
    return OpenedModel(model, resolved, load_s, warm_up_s, graph)
