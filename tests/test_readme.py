"""The examples of the README and of the documentation (docs/**/*.md) run as shown.

Every ```yaml block is a stack config that the real stack program previews; every ```python
block runs as a Pulumi program under the SDK's mocks, or, when it is a fragment, has a test twin
named in `TWINS`; the fit-traffic transcript is what the command prints on the shared trace.
A block that appears on two pages (the worked example) runs once.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from inferstack.components.planning.spec import parse_spec
from inferstack.offline.capture import capture_program, service_outputs
from tests.shared_data import REPO, azure_trace

PAGES = (REPO / "README.md", *sorted((REPO / "docs").rglob("*.md")))
"""Every page a user reads: the README and the documentation site's sources."""


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its info string and its text."""

    page: Path
    line: int
    label: str
    text: str

    def __str__(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def page_blocks(page: Path) -> list[Block]:
    """The fenced blocks of one page, in order."""
    found: list[Block] = []
    current: list[str] | None = None
    label, start = "", 0
    for number, line in enumerate(page.read_text().splitlines(keepends=True), start=1):
        if line.startswith("```"):
            if current is None:
                current, label, start = [], line[3:].strip(), number
            else:
                found.append(Block(page, start, label, "".join(current)))
                current = None
        elif current is not None:
            current.append(line)
    return found


def blocks(language: str) -> list[Block]:
    """The blocks of every page whose info string is `language` ("" for unlabelled ones)."""
    return [block for page in PAGES for block in page_blocks(page) if block.label == language]


def distinct(found: list[Block]) -> list[Block]:
    """The first block of each distinct text: a block repeated on two pages runs once."""
    first: dict[str, Block] = {}
    for block in found:
        first.setdefault(block.text, block)
    return list(first.values())


def worked_example() -> dict[str, object]:
    [example] = distinct([b for b in blocks("yaml") if "inferstack:service" in b.text])
    document: dict[str, object] = yaml.safe_load(example.text)
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
    "tritonclient.grpc as triton": (
        "tests/runtime/test_grpc_conformance.py",
        "test_the_grpc_pages_example_runs_as_written",
        "a client, not a Pulumi program: its twin runs the block against `inferstack serve`",
    ),
}
"""Python blocks that do not run alone, by a line they contain: (test file, test, why)."""


def twin_of(block: Block) -> tuple[str, str, str] | None:
    return next((twin for line, twin in TWINS.items() if line in block.text), None)


def test_the_pages_have_the_blocks_this_file_runs() -> None:
    assert {b.page.name for b in blocks("yaml")} >= {"README.md", "getting-started.md"}
    assert len(distinct(blocks("yaml"))) == 1
    assert [block for block in blocks("python") if twin_of(block) is None]
    assert [b for b in blocks("") if b.text.startswith("$ inferstack fit-traffic")]


@pytest.mark.parametrize("block", [b for b in blocks("python") if twin_of(b) is not None], ids=str)
def test_a_python_block_that_cannot_run_alone_has_a_named_twin(block: Block) -> None:
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


@pytest.mark.parametrize(
    "block", distinct([b for b in blocks("python") if twin_of(b) is None]), ids=str
)
def test_python_blocks_run_as_written(tmp_path: Path, block: Block) -> None:
    # The component snippet reads `service.yaml`: the worked example's spec, as its page says.
    config = worked_example()["config"]
    assert isinstance(config, dict)
    (tmp_path / "service.yaml").write_text(yaml.safe_dump(config["inferstack:service"]))
    (tmp_path / "Pulumi.yaml").write_text("name: readme\nruntime: python\n")
    (tmp_path / "__main__.py").write_text(block.text)
    capture = capture_program(tmp_path, stack="readme", config={})
    [service] = service_outputs(capture)
    assert service.sizing is not None
    assert service.cost is not None
    assert {r.type for r in capture.resources} >= {"kubernetes:apps/v1:Deployment"}


@pytest.mark.parametrize(
    "transcript",
    distinct([b for b in blocks("") if b.text.startswith("$ inferstack fit-traffic")]),
    ids=str,
)
def test_the_fit_traffic_transcript_is_what_the_command_prints(transcript: Block) -> None:
    trace = azure_trace()
    command, _, shown = transcript.text.partition("\n")
    result = subprocess.run(
        [sys.executable, "-m", "inferstack.cli", *command.split()[2:]],
        cwd=trace.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == shown
