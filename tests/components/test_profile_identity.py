"""Profiles that know what they measured: sizing refuses another model's, warns per pool on
other hardware, and old (format 1) files still load."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from inferstack.components.planning.gpus import GPU_TYPES
from inferstack.components.planning.sizing import size_service
from inferstack.contract.gpus import GPU_TYPE_NAMES, gpu_type_of_device
from inferstack.errors import SpecError
from inferstack.profile import Profile, builtin_profile, file_digest, parse_profile, resolve_profile
from tests.components.factories import PROFILE, make_spec


def profile(**changes: Any) -> Profile:
    data = copy.deepcopy(PROFILE)
    for key, value in changes.items():
        if key == "hardware":
            data["hardware"] = value
        else:
            data[key] = value
    return parse_profile(data)


CPU_LABELLED_A10G = {"kind": "cpu", "device": "AMD EPYC", "accelerator": "nvidia-a10g"}


def test_a_profile_of_another_model_is_refused_with_the_fix() -> None:
    other = profile(model="file:///models/other.pt")
    with pytest.raises(SpecError) as caught:
        size_service(make_spec(), other)
    [problem] = caught.value.problems
    assert problem.path == "model.profile"
    assert "the profile measured file:///models/other.pt, not builtin://mlp" in problem.message
    assert "inferstack profile --model builtin://mlp --out FILE" in problem.message
    assert "model.accept_profile_of: 'file:///models/other.pt'" in problem.message


def test_accepting_another_models_profile_by_name_sizes_with_a_warning() -> None:
    other = profile(model="file:///models/other.pt")
    spec = make_spec(model__accept_profile_of="file:///models/other.pt")
    sizing = size_service(spec, other)
    assert sizing.realtime is not None
    assert any(
        w.startswith("model.accept_profile_of: sized from a profile of") for w in sizing.warnings
    )
    # Accepting a different model than the profile's is still a refusal.
    with pytest.raises(SpecError, match="the profile measured"):
        size_service(make_spec(model__accept_profile_of="file:///models/third.pt"), other)


def test_a_cpu_profile_labelled_as_a_gpu_warns_for_every_pool() -> None:
    # The case: measured on CPU, `--accelerator nvidia-a10g`, a batch pool on an L4.
    cpu = profile(hardware=CPU_LABELLED_A10G)
    spec = make_spec(realtime__gpu__type="nvidia-a10g")
    assert cpu.measured_gpu_type is None
    warnings = size_service(spec, cpu).warnings
    assert [w.split(":")[0] for w in warnings] == ["realtime", "batch"]
    assert "measured on cpu: AMD EPYC, not on the pool's nvidia-a10g" in warnings[0]
    assert "not on the pool's nvidia-l4" in warnings[1]


def test_a_gpu_profile_warns_only_for_the_pool_on_other_hardware() -> None:
    l4 = profile()  # measured on an NVIDIA L4
    spec = make_spec(batch__gpu__type="nvidia-a10g")
    assert size_service(spec, l4).warnings == [
        "batch: sized from a profile measured on gpu: NVIDIA L4 (nvidia-l4), not on the pool's "
        "nvidia-a10g: its numbers are indicative; measure on a nvidia-a10g with "
        "`inferstack profile`"
    ]
    assert size_service(make_spec(), l4).warnings == []


def test_the_driver_name_decides_over_an_old_label() -> None:
    mislabelled = profile(
        hardware={"kind": "gpu", "device": "Tesla T4", "accelerator": "nvidia-l4"}
    )
    assert mislabelled.measured_gpu_type == "nvidia-t4"
    assert len(size_service(make_spec(), mislabelled).warnings) == 2


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        ("Tesla T4", "nvidia-t4"),
        ("NVIDIA A10G", "nvidia-a10g"),
        ("NVIDIA L4", "nvidia-l4"),
        ("NVIDIA L40S", "nvidia-l40s"),
        ("NVIDIA A100-SXM4-40GB", "nvidia-a100-40gb"),
        ("NVIDIA A100 80GB PCIe", "nvidia-a100-80gb"),
        ("NVIDIA H100 80GB HBM3", "nvidia-h100-80gb"),
        ("NVIDIA H100 PCIe", "nvidia-h100-80gb"),
        ("NVIDIA H200", None),
        ("NVIDIA GeForce RTX 4090", None),
    ],
)
def test_driver_names_map_to_spec_gpu_types(device: str, expected: str | None) -> None:
    assert gpu_type_of_device(device) == expected


def test_the_contract_lists_the_spec_gpu_types() -> None:
    assert set(GPU_TYPE_NAMES) == set(GPU_TYPES)


def test_format_1_files_still_load_and_unknown_formats_say_upgrade() -> None:
    shipped = builtin_profile("builtin://mlp")
    assert shipped.format_version == 1
    assert (shipped.model_digest, shipped.signature) == (None, None)
    with pytest.raises(SpecError, match="format_version 5 is not one this inferstack reads"):
        parse_profile({**PROFILE, "format_version": 5})


def test_format_2_refuses_a_cpu_profile_naming_a_gpu() -> None:
    with pytest.raises(SpecError, match="measured on a CPU; remove it"):
        parse_profile({**PROFILE, "format_version": 2, "hardware": CPU_LABELLED_A10G})
    with pytest.raises(SpecError, match="'nvidia-h200' is not a spec GPU type"):
        parse_profile(
            {
                **PROFILE,
                "format_version": 2,
                "hardware": {"kind": "gpu", "device": "NVIDIA H200", "accelerator": "nvidia-h200"},
            }
        )


def test_a_model_file_changed_since_it_was_profiled_is_refused(tmp_path: Path) -> None:
    model = tmp_path / "model.pt"
    model.write_bytes(b"weights v1")
    uri = f"file://{model}"
    data = {
        **PROFILE,
        "format_version": 2,
        "model": uri,
        "model_digest": file_digest(model),
        "model_digest_of": "file",
    }
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(data))
    assert resolve_profile(uri, str(path)).model_digest == file_digest(model)
    model.write_bytes(b"weights v2")
    with pytest.raises(SpecError, match="has changed since it was profiled"):
        resolve_profile(uri, str(path))
