"""Model loaders: built-in MLP, TorchScript, torch.export and Python handlers."""

from __future__ import annotations

import io
import json
import pickle
import zipfile

import numpy as np
import pytest
import torch

from inferstack.runtime.models import (
    MLP_WIDTHS,
    SIGNATURE_FILE,
    ModelLoadError,
    load_model,
    model_name_from_uri,
    warm_up,
)
from inferstack.runtime.tensors import TensorSpec

SIGNATURE = {
    "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, 6]}],
    "outputs": [{"name": "scores", "datatype": "FP32", "shape": [-1, 2]}],
}


class Small(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.linear(x))


def reference(x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return Small()(torch.from_numpy(x)).numpy()


# Building the TorchScript fixtures uses the deprecated torch.jit API on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

X = np.linspace(-1, 1, 18, dtype=np.float32).reshape(3, 6)


@pytest.mark.parametrize(
    ("uri", "name"),
    [
        ("builtin://mlp", "mlp"),
        ("/models/resnet50.pt", "resnet50"),
        ("file:///models/bert base.pt2", "bert-base"),
        ("acme.handlers:SentimentModel", "sentimentmodel"),
    ],
)
def test_model_name_from_uri(uri, name):
    assert model_name_from_uri(uri) == name


def test_builtin_mlp_is_deterministic_and_batch_first():
    first, second = load_model("builtin://mlp"), load_model("builtin://mlp")
    assert first.name == "mlp"
    assert first.inputs == [TensorSpec("input", "FP32", [-1, MLP_WIDTHS[0]])]
    assert first.outputs == [TensorSpec("output", "FP32", [-1, MLP_WIDTHS[-1]])]
    inputs = first.example_inputs(4)
    out = first.predict_batch(inputs)["output"]
    assert out.shape == (4, 512)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, second.predict_batch(inputs)["output"])
    assert np.isfinite(out).all()
    assert out.std() > 0.01  # Not collapsed to a constant by the weight scale.
    assert warm_up(first, [1, 2]) > 0


def test_torchscript_with_embedded_signature(tmp_path):
    path = tmp_path / "small.pt"
    torch.jit.save(
        torch.jit.script(Small()), str(path), _extra_files={SIGNATURE_FILE: json.dumps(SIGNATURE)}
    )
    model = load_model(str(path))
    assert model.name == "small"
    assert [spec.name for spec in model.inputs] == ["features"]
    np.testing.assert_allclose(model.predict_batch({"features": X})["scores"], reference(X))


def test_torchscript_with_a_signature_beside_it(tmp_path):
    path = tmp_path / "small.pt"
    torch.jit.save(torch.jit.script(Small()), str(path))
    (tmp_path / "small.pt.signature.json").write_text(json.dumps(SIGNATURE))
    model = load_model(f"file://{path}")
    np.testing.assert_allclose(model.predict_batch({"features": X})["scores"], reference(X))


def test_torchscript_without_signature_says_how_to_add_one(tmp_path):
    path = tmp_path / "small.pt"
    torch.jit.save(torch.jit.script(Small()), str(path))
    with pytest.raises(ModelLoadError, match="has no signature.*_extra_files.*signature.json"):
        load_model(str(path))


def test_exported_program_reads_its_signature_from_the_graph(tmp_path):
    program = torch.export.export(
        Small(), (torch.from_numpy(X),), dynamic_shapes={"x": {0: torch.export.Dim("batch")}}
    )
    path = tmp_path / "small.pt2"
    torch.export.save(program, str(path))
    model = load_model(str(path))
    assert model.inputs == [TensorSpec("x", "FP32", [-1, 6])]
    assert model.outputs == [TensorSpec("output", "FP32", [-1, 2])]
    five = np.ones((5, 6), dtype=np.float32)
    np.testing.assert_allclose(model.predict_batch({"x": five})["output"], reference(five))


def test_exported_program_with_a_fixed_batch_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "fixed.pt2"
    torch.export.save(torch.export.export(Small(), (torch.from_numpy(X),)), str(path))
    with pytest.raises(ModelLoadError, match=r"batch dimension of x is fixed at 3.*Dim\('batch'\)"):
        load_model(str(path))


def test_handler_class_is_loaded_and_declares_its_tensors():
    model = load_model("tests.runtime.handlers:Doubler")
    assert model.name == "doubler"
    assert [spec.name for spec in model.outputs] == ["y", "total"]
    x = np.array([[1, 2, 3]], dtype=np.float32)
    result = model.predict_batch({"x": x})
    np.testing.assert_array_equal(result["y"], x * 2)
    np.testing.assert_array_equal(result["total"], [6.0])


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("builtin://resnet", "the built-in model is builtin://mlp"),
        ("model.onnx", "is not understood; use builtin://mlp"),
        ("/nowhere/model.pt", "does not exist"),
        ("/nowhere/model.pt2", "does not exist"),
        ("no_such_module_xyz:Model", "cannot import handler module"),
        ("tests.runtime.handlers:Missing", "has no class 'Missing'"),
        ("tests.runtime.handlers:NoPredict", r"has no predict_batch\(\) method"),
    ],
)
def test_bad_uris_say_what_to_do(uri, message):
    with pytest.raises(ModelLoadError, match=message):
        load_model(uri)


def test_not_a_torchscript_archive(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"not a zip")
    with pytest.raises(ModelLoadError, match="is not a TorchScript archive"):
        load_model(str(path))


class _Payload:
    """A pickle that, once unpickled, creates a file: code run by loading a model."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.marker, "w"))


def _pickled_weight(name: str, data: bytes, marker: str) -> bytes:
    if name.endswith("model_weights_config.json"):
        config = json.loads(data)
        next(iter(config["config"].values()))["use_pickle"] = True
        return json.dumps(config).encode()
    if name.endswith("data/weights/weight_0"):
        return pickle.dumps(_Payload(marker))
    return data


def _pickled_sample_inputs(name: str, data: bytes, marker: str) -> bytes:
    if name.endswith("data/sample_inputs/model.pt"):
        # Not loadable with weights_only=True: torch.export.load then retries without it.
        buffer = io.BytesIO()
        torch.save(((_Payload(marker),), {}), buffer)
        return buffer.getvalue()
    return data


@pytest.mark.parametrize(
    "edit", [_pickled_weight, _pickled_sample_inputs], ids=["weight", "sample-inputs"]
)
def test_a_pt2_archive_that_carries_pickles_is_refused_before_anything_is_unpickled(tmp_path, edit):
    program = torch.export.export(
        Small(), (torch.from_numpy(X),), dynamic_shapes={"x": {0: torch.export.Dim("batch")}}
    )
    clean, tampered = tmp_path / "clean.pt2", tmp_path / "tampered.pt2"
    torch.export.save(program, str(clean))
    marker = tmp_path / "code-ran"
    with zipfile.ZipFile(clean) as source, zipfile.ZipFile(tampered, "w") as target:
        for info in source.infolist():
            target.writestr(info, edit(info.filename, source.read(info.filename), str(marker)))
    with pytest.raises(ModelLoadError, match="pickled"):
        load_model(str(tampered))
    assert not marker.exists()
    load_model(str(clean))  # An archive torch.export.save wrote still loads.
