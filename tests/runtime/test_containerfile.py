"""The runtime Containerfile keeps its contract: base by build argument, non-root, the server as
entrypoint, a health check on the ready endpoint, and only runtime dependencies, each pinned with
its hashes in runtime/requirements.lock."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from inferstack.contract.pods import RUN_AS_USER

REPO = Path(__file__).resolve().parents[2]
CONTAINERFILE = REPO / "runtime" / "Containerfile"
LOCK = REPO / "runtime" / "requirements.lock"


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", CONTAINERFILE.read_text())
    result = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def test_base_image_is_a_build_argument_used_by_every_stage():
    steps = instructions()
    assert steps[0][0] == "ARG"
    assert steps[0][1].startswith("BASE_IMAGE=")
    froms = [rest for keyword, rest in steps if keyword == "FROM"]
    assert froms
    assert all(rest.startswith("${BASE_IMAGE}") for rest in froms)


def test_final_stage_runs_the_server_as_non_root_with_a_ready_healthcheck():
    steps = instructions()
    final = steps[max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM") :]
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users
    # The pods' runAsUser: one UID for the image and the manifests.
    assert users[-1] == f"{RUN_AS_USER}:{RUN_AS_USER}"
    assert ("ENTRYPOINT", '["inferstack", "serve"]') in final
    health = next(rest for keyword, rest in final if keyword == "HEALTHCHECK")
    assert "/v2/health/ready" in health


def test_every_dependency_comes_from_the_hashed_lock():
    installs = [
        rest for keyword, rest in instructions() if keyword == "RUN" and "pip install" in rest
    ]
    locked = [rest for rest in installs if "requirements.lock" in rest]
    assert locked
    assert all("--require-hashes" in rest and "--no-deps" in rest for rest in locked)
    assert any('--find-links "${TORCH_FIND_LINKS}"' in rest for rest in locked)
    # The project itself resolves nothing: its extras are the lock's contents.
    project = [rest for rest in installs if rest not in locked]
    assert project
    assert all("--no-deps" in rest and "--no-index" in rest for rest in project)
    assert not any("dev" in rest or "infra" in rest for rest in installs)


def test_the_lock_pins_the_runtime_and_worker_extras_with_hashes():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    extras = pyproject["project"]["optional-dependencies"]
    wanted = {
        canonical(Requirement(line).name)
        for extra in ("runtime", "worker")
        for line in extras[extra]
        if not line.startswith("inferstack")
    } | {canonical(Requirement(line).name) for line in pyproject["project"]["dependencies"]}
    pins = locked_pins()
    assert wanted - set(pins) == set(), "run `make lock`"
    for extra in ("runtime", "worker"):
        for line in extras[extra]:
            requirement = Requirement(line)
            if requirement.name == "inferstack":
                continue
            version = pins[canonical(requirement.name)]
            assert requirement.specifier.contains(version, prereleases=True), (
                f"{requirement} does not admit the locked {version}: run `make lock`"
            )
    assert "inferstack" not in pins


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_pins() -> dict[str, str]:
    """name -> version of every pin in the lock, each checked to carry at least one hash."""
    text = re.sub(r"\\\n", " ", LOCK.read_text())
    pins = {}
    for line in text.splitlines():
        if not line or line.startswith((" ", "#")):
            continue
        requirement, _, hashes = line.partition(" --hash=")
        name, _, version = requirement.partition("==")
        assert hashes, f"{name} has no hash in {LOCK.name}"
        pins[canonical(name)] = version.split(";")[0].strip()
    return pins
