"""The README's examples run as shown.

Every ```yaml block is a stack config that the real stack program previews; every ```python
block runs as a Pulumi program under the SDK's mocks, or, when it is a fragment, has a test twin
named in `TWINS`; the fit-traffic transcript is what the command prints on the shared trace.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from inferstack.components.planning.spec import parse_spec
from inferstack.offline.capture import capture_program, service_outputs

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()
AZURE_TRACE = REPO.parent / "shared" / "traces" / "azure-llm-2023-code.csv"


def blocks(language: str) -> list[str]:
    """The fenced blocks whose info string is `language` ("" for unlabelled ones), in order."""
    found: list[str] = []
    current: list[str] | None = None
    label = ""
    for line in README.splitlines(keepends=True):
        if line.startswith("```"):
            if current is None:
                current, label = [], line[3:].strip()
            else:
                if label == language:
                    found.append("".join(current))
                current = None
        elif current is not None:
            current.append(line)
    return found


def worked_example() -> dict[str, object]:
    [example] = [b for b in blocks("yaml") if "inferstack:service" in b]
    document: dict[str, object] = yaml.safe_load(example)
    return document


TWINS = {
    "GcpInferenceStack(": (
        "tests/components/gcp/test_gcp_prod_stack.py",
        "test_preview_lists_every_resource",
        "a fragment (`spec` and `profile` as in the Kubernetes snippet); its twin previews the "
        "same GcpInferenceStack call through stacks/ on stacks/Pulumi.gcp-prod.yaml",
    ),
    "AwsInferenceStack(": (
        "tests/components/aws/test_stack.py",
        "test_every_kubernetes_object_validates_strictly",
        "a fragment (`spec` and `profile` as in the Kubernetes snippet); its twin builds "
        "AwsInferenceStack from a plan and AwsOptions in a test program",
    ),
}
"""Python blocks that do not run alone, by a line they contain: (test file, test, why)."""


def twin_of(block: str) -> tuple[str, str, str] | None:
    return next((twin for line, twin in TWINS.items() if line in block), None)


def test_the_readme_has_the_blocks_this_file_runs() -> None:
    assert len(blocks("yaml")) == 1
    assert [block for block in blocks("python") if twin_of(block) is None]


@pytest.mark.parametrize("block", [b for b in blocks("python") if twin_of(b) is not None])
def test_a_python_block_that_cannot_run_alone_has_a_named_twin(block: str) -> None:
    twin = twin_of(block)
    assert twin is not None
    path, name, _why = twin
    assert f"def {name}(" in (REPO / path).read_text()


def test_the_worked_example_previews_and_is_the_dev_stack(tmp_path: Path) -> None:
    example = worked_example()
    (tmp_path / "Pulumi.yaml").write_text(
        yaml.safe_dump({"name": "inferstack", "runtime": "python", "main": str(REPO / "stacks")})
    )
    (tmp_path / "Pulumi.readme.yaml").write_text(yaml.safe_dump(example))
    capture = capture_program(REPO / "stacks", stack="readme", project_dir=tmp_path)
    [service] = service_outputs(capture)
    assert service.name == "embedder"
    dev = yaml.safe_load((REPO / "stacks" / "Pulumi.dev.yaml").read_text())["config"]
    config = example["config"]
    assert isinstance(config, dict)
    assert parse_spec(config["inferstack:service"]) == parse_spec(dev["inferstack:service"])
    assert config["inferstack:kubernetes"] == dev["inferstack:kubernetes"]


@pytest.mark.parametrize("block", [b for b in blocks("python") if twin_of(b) is None])
def test_python_blocks_run_as_written(tmp_path: Path, block: str) -> None:
    # The component snippet reads `service.yaml`: the worked example's spec, as its comment says.
    config = worked_example()["config"]
    assert isinstance(config, dict)
    (tmp_path / "service.yaml").write_text(yaml.safe_dump(config["inferstack:service"]))
    (tmp_path / "Pulumi.yaml").write_text("name: readme\nruntime: python\n")
    (tmp_path / "__main__.py").write_text(block)
    capture = capture_program(tmp_path, stack="readme", config={})
    [service] = service_outputs(capture)
    assert service.sizing is not None
    assert service.cost is not None
    assert {r.type for r in capture.resources} >= {"kubernetes:apps/v1:Deployment"}


def test_the_fit_traffic_transcript_is_what_the_command_prints() -> None:
    if not AZURE_TRACE.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{AZURE_TRACE} is missing in CI")
        pytest.skip(f"{AZURE_TRACE} not present beside the checkout")
    [transcript] = [b for b in blocks("") if b.startswith("$ inferstack fit-traffic")]
    command, _, shown = transcript.partition("\n")
    result = subprocess.run(
        [sys.executable, "-m", "inferstack.cli", *command.split()[2:]],
        cwd=AZURE_TRACE.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == shown
