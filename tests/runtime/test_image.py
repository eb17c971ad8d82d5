"""The runtime image, built for real and served from: `make image`, then the server in it.

Marked `image` and left out of `make test` (the build takes minutes: see the README); `make
test-image` runs it. The build is scripts/image.sh (buildah from a Debian base made here). The
server runs twice from the image's rootfs, as the image's user: under `buildah run`, and on the
same rootfs mounted read-only with a tmpfs on /tmp (what `readOnlyRootFilesystem` and an emptyDir
give a pod).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from inferstack.contract import sagemaker
from inferstack.contract.env import ENV_GRPC_PORT, ENV_PROTOCOL
from inferstack.contract.pods import RUN_AS_USER
from tests.integration.conftest import free_port
from tests.shared_data import require

pytestmark = pytest.mark.image

REPO = Path(__file__).resolve().parents[2]
IMAGE = "localhost/inferstack-runtime:test"
BUILDAH = ["buildah", "--storage-driver", "vfs"]
BUILD_TIMEOUT_S = 3600
READY_TIMEOUT_S = 180


@pytest.fixture(scope="module")
def image() -> str:
    """The image `make image` builds; INFERSTACK_TEST_IMAGE names one already built instead."""
    built = os.environ.get("INFERSTACK_TEST_IMAGE")
    if built:
        return built
    require(
        os.geteuid() == 0 or shutil.which("buildah") is not None,
        "the image test builds with buildah as root (scripts/image.sh installs it as root)",
    )
    subprocess.run(
        [str(REPO / "scripts" / "image.sh"), "build"],
        env={**os.environ, "IMAGE": IMAGE},
        check=True,
        timeout=BUILD_TIMEOUT_S,
    )
    return IMAGE


@dataclass(frozen=True)
class Served:
    url: str
    process: subprocess.Popen[bytes]
    root: Path
    """The server's root filesystem, as this machine sees it."""


def buildah(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BUILDAH, *arguments], capture_output=True, text=True, check=True)


def config(image: str) -> dict[str, Any]:
    inspected = json.loads(buildah("inspect", "--type", "image", image).stdout)
    result: dict[str, Any] = inspected["OCIv1"]["config"]
    return result


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while get(f"{url}/v2/health/ready") != 200:
        assert process.poll() is None, f"the server in the image exited {process.returncode}"
        assert time.monotonic() < deadline, f"not ready in {READY_TIMEOUT_S} s"
        time.sleep(0.5)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def container(image: str) -> Iterator[tuple[str, Path]]:
    """A working container of the image and its rootfs on this machine."""
    name = buildah("from", "--name", f"inferstack-test-{uuid.uuid4().hex[:8]}", image)
    container = name.stdout.strip()
    try:
        yield container, Path(buildah("mount", container).stdout.strip())
    finally:
        subprocess.run([*BUILDAH, "rm", container], capture_output=True, check=False)


@pytest.fixture(scope="module")
def served(image: str, container: tuple[str, Path]) -> Iterator[Served]:
    """The image's entrypoint under `buildah run`, as the image's user, /tmp a tmpfs."""
    name, rootfs = container
    port = free_port()
    process = subprocess.Popen(
        [
            *BUILDAH, "run", "--isolation", "chroot", "--network", "host",
            "--mount", "type=tmpfs,destination=/tmp",
            "--env", f"INFERSTACK_PORT={port}", "--env", "INFERSTACK_HOST=127.0.0.1",
            "--env", f"{ENV_GRPC_PORT}={free_port()}",
            name, "--", *config(image)["Entrypoint"],
        ],
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        yield Served(url, process, rootfs)
    finally:
        stop(process)


@pytest.fixture(scope="module")
def served_read_only(
    image: str, container: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """The same rootfs bound read-only, /tmp a tmpfs (readOnlyRootFilesystem plus an emptyDir),
    entered as the image's user with the image's environment and entrypoint.

    `buildah run` cannot take a read-only rootfs (it writes its mount points into it), so this
    one is a mount namespace and chroot: what a runtime does, less cgroups and seccomp.
    """
    _, rootfs = container
    settings = config(image)
    root = tmp_path_factory.mktemp("read-only-root")
    subprocess.run(["mount", "--bind", str(rootfs), str(root)], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", str(root)], check=True)
    port = free_port()
    # Each server its own gRPC port too: the default 8001 would collide between the two.
    environment = [
        *settings["Env"],
        f"INFERSTACK_PORT={port}",
        "INFERSTACK_HOST=127.0.0.1",
        f"{ENV_GRPC_PORT}={free_port()}",
    ]
    inside = " && ".join(
        [
            f"mount -t proc proc {root}/proc",
            f"mount -t tmpfs tmpfs {root}/tmp",
            f"mount --rbind /dev {root}/dev",
            # No `exec`: the shell stays the namespace's first process. `--kill-child` kills
            # that process when unshare ends, and the kernel then kills every process in the
            # namespace; a server exec'd in its place would lose the kill signal when chroot
            # changes its user (prctl(2): PR_SET_PDEATHSIG is cleared on a credential change)
            # and outlive the test.
            f"chroot --userspec={settings['User']} {root} /usr/bin/env -i "
            + " ".join(shlex.quote(item) for item in [*environment, *settings["Entrypoint"]]),
        ]
    )
    process = subprocess.Popen(
        ["unshare", "--mount", "--pid", "--fork", "--kill-child", "sh", "-c", inside]
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        yield Served(url, process, root)
    finally:
        stop(process)
        subprocess.run(["umount", "--lazy", str(root)], check=False)


def infer(url: str) -> dict[str, Any]:
    body = json.dumps(
        {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 512], "data": [0.5] * 512}]}
    ).encode()
    request = urllib.request.Request(
        f"{url}/v2/models/mlp/infer", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


def server_uids(served: Served) -> set[str]:
    """Real, effective, saved and filesystem UIDs of the server and its model processes: those
    whose environment carries this server's INFERSTACK_PORT (each run has its own port)."""
    marker = f"INFERSTACK_PORT={urllib.parse.urlsplit(served.url).port}".encode()
    uids: set[str] = set()
    for process in Path("/proc").glob("[0-9]*"):
        try:
            if marker not in (process / "environ").read_bytes().split(b"\0"):
                continue
            status = (process / "status").read_text().splitlines()
        except OSError:
            continue
        uids.update(next(line for line in status if line.startswith("Uid:")).split()[1:])
    return uids


def test_the_image_declares_its_non_root_user(image: str) -> None:
    assert config(image)["User"] == f"{RUN_AS_USER}:{RUN_AS_USER}"


@pytest.mark.parametrize("mode", ["served", "served_read_only"])
def test_the_image_serves_ready_and_one_v2_inference_as_its_user(
    mode: str, request: pytest.FixtureRequest
) -> None:
    served: Served = request.getfixturevalue(mode)
    answer = infer(served.url)
    assert answer["model_name"] == "mlp"
    (output,) = answer["outputs"]
    assert output["shape"][0] == 1
    assert len(output["data"]) == output["shape"][1]
    # The server and its model processes run as the image's user, never root.
    assert server_uids(served) == {str(RUN_AS_USER)}


def test_the_read_only_root_refuses_writes(
    served_read_only: Served, container: tuple[str, Path]
) -> None:
    with pytest.raises(OSError, match="Read-only file system"):
        (served_read_only.root / "opt" / "inferstack" / "probe").write_text("x")
    assert get(f"{served_read_only.url}/v2/health/ready") == 200


def test_the_image_answers_sagemakers_container_contract(
    image: str, container: tuple[str, Path]
) -> None:
    """SageMaker runs `docker run <image> serve` and talks to port 8080: the image's entrypoint
    with that argument and `protocol: sagemaker` answers /ping, then an invocation (a v2 body)
    exactly as /v2 infer does."""
    name, _ = container
    process = subprocess.Popen(
        [
            *BUILDAH, "run", "--isolation", "chroot", "--network", "host",
            "--mount", "type=tmpfs,destination=/tmp",
            "--env", f"{ENV_PROTOCOL}={sagemaker.PROTOCOL_VALUE}",
            "--env", "INFERSTACK_HOST=127.0.0.1", "--env", f"{ENV_GRPC_PORT}=0",
            name, "--", *config(image)["Entrypoint"], "serve",
        ],
    )  # fmt: skip
    url = f"http://127.0.0.1:{sagemaker.PORT}"
    try:
        wait_ready(url, process)
        assert get(f"{url}{sagemaker.PING_PATH}") == 200
        body = json.dumps(
            {
                "inputs": [
                    {"name": "input", "datatype": "FP32", "shape": [1, 512], "data": [0.5] * 512}
                ]
            }
        ).encode()
        request = urllib.request.Request(
            f"{url}{sagemaker.INVOCATIONS_PATH}",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
        assert answer["model_name"] == "mlp"
        assert answer["outputs"] == infer(url)["outputs"]
    finally:
        stop(process)
