"""The two image flavours and the baked model: names from the contract, the build script and the
Containerfile agree with it, the CUDA lock pins a CUDA torch build with hashes; then (marked
`image`, run by `make test-image`) a model baked into an image for real, and the CUDA image's
torch asked what it is.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from inferstack.contract.images import (
    FLAVOURS,
    GPU_FLAVOUR,
    image_flavour,
    parse_image,
    runtime_image,
)
from inferstack.contract.model_uris import BAKED_MODEL_DIR, baked_model_uri
from tests.shared_data import require

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "image.sh"
GPU_LOCK = REPO / "runtime" / "requirements-gpu.lock"
BUILDAH = ["buildah", "--storage-driver", "vfs"]


def test_the_published_names_say_the_flavour() -> None:
    assert runtime_image("cuda") == "ghcr.io/inferstack/runtime:0.1.0-cuda"
    assert runtime_image("cpu", "0.2.0") == "ghcr.io/inferstack/runtime:0.2.0-cpu"
    assert GPU_FLAVOUR == "cuda"
    for reference, flavour in [
        ("ghcr.io/inferstack/runtime:0.1.0-cuda", "cuda"),
        ("ghcr.io/inferstack/runtime:0.1.0-cuda@sha256:" + "a" * 64, "cuda"),
        ("localhost/inferstack-runtime:cpu", "cpu"),
        ("ghcr.io/inferstack/runtime:0.1.0", None),
        ("ghcr.io/x/cudatools:1", None),
        ("not an image", None),
    ]:
        assert image_flavour(reference) == flavour, reference


def test_the_build_script_tags_and_bakes_by_the_contract() -> None:
    text = SCRIPT.read_text()
    defaults = dict(re.findall(r"^(IMAGE|GPU_IMAGE)=\$\{\w+:-([^}]+)\}$", text, re.MULTILINE))
    assert {image_flavour(defaults["IMAGE"]), image_flavour(defaults["GPU_IMAGE"])} == set(FLAVOURS)
    assert image_flavour(defaults["GPU_IMAGE"]) == GPU_FLAVOUR
    assert f"BAKED_MODEL_DIR={BAKED_MODEL_DIR}\n" in text
    containerfile = (REPO / "runtime" / "Containerfile").read_text()
    assert "ARG LOCK=runtime/requirements.lock" in containerfile
    assert "COPY ${LOCK} /tmp/requirements.lock" in containerfile


def _requirements(lock: str) -> dict[str, str]:
    """name -> the requirement's whole entry (pin line, hashes, `# via`)."""
    entries: dict[str, str] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", lock):
        match = re.match(r"([A-Za-z0-9._-]+)==", block)
        if match:
            entries[match.group(1).lower()] = block
    return entries


def test_the_cuda_lock_pins_torchs_cuda_build_and_its_nvidia_libraries_with_hashes() -> None:
    entries = _requirements(GPU_LOCK.read_text())
    torch = entries["torch"]
    assert torch.startswith("torch==2.13.0 ")  # PyPI's Linux wheel: the CUDA build, no +cpu
    nvidia = sorted(name for name in entries if name.startswith(("nvidia-", "cuda-")))
    assert any(name.startswith("nvidia-cudnn") for name in nvidia), nvidia
    assert any(name.startswith("nvidia-nccl") for name in nvidia), nvidia
    for name, entry in entries.items():
        assert "--hash=sha256:" in entry, f"{name} has no hash"
    # Everything but torch's CUDA side is the CPU image's versions.
    cpu = _requirements((REPO / "runtime" / "requirements.lock").read_text())
    for name, entry in cpu.items():
        if name != "torch" and name in entries:
            assert entry.split()[0] == entries[name].split()[0], name


# ---------------------------------------------------------------------------------------------
# With buildah (root): `make test-image`


def _needs_buildah() -> None:
    require(
        os.geteuid() == 0 and shutil.which("buildah") is not None,
        "baking a model needs buildah as root (scripts/image.sh installs it as root)",
    )


@pytest.mark.image
def test_a_baked_model_is_in_the_image_named_by_its_settings(tmp_path: Path) -> None:
    _needs_buildah()
    base = os.environ.get("INFERSTACK_TEST_IMAGE", "localhost/inferstack-base:bookworm")
    model = tmp_path / "topic.pt"
    model.write_bytes(b"a model's bytes " * 1000)
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    target = "localhost/inferstack-bake-test:1"
    result = subprocess.run(
        [str(SCRIPT), "bake", "--model", "topic.pt"],
        cwd=tmp_path,
        env={**os.environ, "IMAGE": base, "MODEL_IMAGE": target},
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    assert f"model.uri: {baked_model_uri('topic.pt')}, model.sha256: {digest}" in result.stdout
    try:
        env = subprocess.run(
            [*BUILDAH, "inspect", "--type", "image", "--format", "{{.Docker.Config.Env}}", target],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert f"INFERSTACK_MODEL={BAKED_MODEL_DIR}/topic.pt" not in env
        assert f"INFERSTACK_MODEL=file://{BAKED_MODEL_DIR}/topic.pt" in env
        assert f"INFERSTACK_MODEL_SHA256={digest}" in env
        container = subprocess.run(
            [*BUILDAH, "from", "--quiet", target], capture_output=True, text=True, check=True
        ).stdout.strip()
        try:
            inside = subprocess.run(
                [*BUILDAH, "run", "--isolation", "chroot", container, "--",
                 "sha256sum", f"{BAKED_MODEL_DIR}/topic.pt"],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
        finally:
            subprocess.run([*BUILDAH, "rm", container], capture_output=True, check=False)
        assert inside.split()[0] == digest
    finally:
        subprocess.run([*BUILDAH, "rmi", target], capture_output=True, check=False)


@pytest.mark.image
def test_the_cuda_images_torch_is_a_cuda_build_and_serves_on_cpu_when_told() -> None:
    """INFERSTACK_TEST_GPU_IMAGE names a CUDA image `make image-gpu` built."""
    image = os.environ.get("INFERSTACK_TEST_GPU_IMAGE", "")
    require(bool(image), "set INFERSTACK_TEST_GPU_IMAGE to the image `make image-gpu` built")
    _needs_buildah()
    assert image_flavour(image) == GPU_FLAVOUR
    container = subprocess.run(
        [*BUILDAH, "from", "--quiet", image], capture_output=True, text=True, check=True
    ).stdout.strip()
    probe = (
        "import torch; from inferstack.runtime.models import load_model; import numpy as np; "
        "m = load_model('builtin://mlp', device='cpu'); "
        "out = m.predict_batch({'input': np.ones((2, 512), np.float32)})['output']; "
        "print(torch.__version__, torch.version.cuda, out.shape)"
    )
    try:
        result = subprocess.run(
            [*BUILDAH, "run", "--isolation", "chroot", "--user", "65532:65532", container, "--",
             "python3", "-c", probe],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    finally:
        subprocess.run([*BUILDAH, "rm", container], capture_output=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    version, cuda, *shape = result.stdout.split()
    assert version.startswith("2.13.0+cu")  # e.g. 2.13.0+cu130: PyPI's Linux wheel
    assert cuda != "None"
    assert " ".join(shape) == "(2, 512)"
    assert parse_image(image).repository
