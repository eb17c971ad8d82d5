"""The runtime Containerfile keeps its contract: base by build argument, non-root, the server as
entrypoint, a health check on the ready endpoint, and only runtime dependencies."""

from __future__ import annotations

import re
from pathlib import Path

CONTAINERFILE = Path(__file__).resolve().parents[2] / "runtime" / "Containerfile"


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
    assert not users[-1].startswith(("0", "root"))
    assert ("ENTRYPOINT", '["inferstack", "serve"]') in final
    health = next(rest for keyword, rest in final if keyword == "HEALTHCHECK")
    assert "/v2/health/ready" in health


def test_only_runtime_extras_are_installed():
    installs = [
        rest for keyword, rest in instructions() if keyword == "RUN" and "pip install" in rest
    ]
    assert any('".[runtime,worker]"' in rest for rest in installs)
    assert not any("dev" in rest or "infra" in rest for rest in installs)
    assert any('"torch==${TORCH_VERSION}"' in rest for rest in installs)
