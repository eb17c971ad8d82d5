"""The documentation site: its generated sections cover the code, and every page is reachable.

The config reference and the policy rules are generated at build time by
docs/_hooks/generated.py (`make docs` builds the site strictly in CI); these tests hold the
generator to the models and rules it reads, without a build.
"""

from __future__ import annotations

import re
import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from inferstack.offline.stack_config import config_models
from inferstack.policies.rules import ALL_RULES
from tests.shared_data import REPO

DOCS = REPO / "docs"
HOOK = DOCS / "_hooks" / "generated.py"


def generator() -> SimpleNamespace:
    """The hook module's names (it lives in docs/, outside every package)."""
    return SimpleNamespace(**runpy.run_path(str(HOOK)))


def section(markdown: str, heading: str) -> str:
    """The text under `### heading` up to the next heading of that level."""
    start = markdown.index(f"### {heading}\n")
    end = markdown.find("\n### ", start + 1)
    return markdown[start : end if end != -1 else None]


def test_every_field_of_every_config_model_is_in_the_reference() -> None:
    docs = generator()
    reference = docs.config_reference()
    models = [model for _paths, model in docs.config_models()]
    assert len(models) >= 10
    for model in models:
        text = section(reference, model.__name__)
        rows = {
            match.group(1): match.group(0)
            for match in re.finditer(r"^\| `([a-z_0-9]+)` \|.*$", text, re.MULTILINE)
        }
        assert set(rows) == set(model.model_fields), model.__name__
        for name, info in model.model_fields.items():
            cells = [cell.strip() for cell in rows[name].strip("|").split(" | ")]
            field_type, default, description = cells[1], cells[2], cells[3]
            assert field_type, f"{model.__name__}.{name} has no type"
            assert default, f"{model.__name__}.{name} has no default"
            assert description, f"{model.__name__}.{name} has no description"
            assert description == " ".join((info.description or "").split()).replace("|", "\\|")


def test_every_model_a_field_links_to_has_its_section() -> None:
    docs = generator()
    reference = docs.config_reference()
    for anchor in re.findall(r"\]\(#([a-z]+)\)", reference):
        assert re.search(rf"^### {anchor}$", reference, re.MULTILINE | re.IGNORECASE), anchor


def test_the_reference_covers_every_key_the_config_reader_reads() -> None:
    docs = generator()
    reference = docs.config_reference()
    roots = docs.config_roots()
    assert set(roots) == set(config_models())
    assert set(roots) >= {"inferstack:service", "inferstack:kubernetes", "inferstack:aws"}
    for key, model in roots.items():
        assert f"## `{key}`" in reference
        assert f"### {model.__name__}" in reference


def test_every_rule_is_on_the_policies_page_with_its_why_and_fix() -> None:
    rules = generator().policy_rules()
    for rule in ALL_RULES:
        text = section(rules, rule.name)
        assert f"**Why.** {rule.why}" in text
        assert f"**Fix.** {rule.remediation}" in text
        for setting in rule.config_schema:
            assert f"| `{setting}` |" in text


def test_the_pages_carry_the_generated_markers_and_nothing_else_generated() -> None:
    docs = generator()
    markers = {
        page.relative_to(DOCS).as_posix(): docs.MARKER.findall(page.read_text())
        for page in DOCS.rglob("*.md")
    }
    assert {page: names for page, names in markers.items() if names} == {
        "reference.md": ["config-reference"],
        "policies.md": ["policy-rules"],
    }
    assert set(docs.GENERATORS) == {"config-reference", "policy-rules"}


def test_every_page_is_in_the_navigation() -> None:
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    assert config["strict"] is True

    def pages(nav: object) -> list[str]:
        if isinstance(nav, str):
            return [nav]
        if isinstance(nav, list):
            return [page for item in nav for page in pages(item)]
        if isinstance(nav, dict):
            return [page for value in nav.values() for page in pages(value)]
        return []

    listed = pages(config["nav"])
    assert sorted(listed) == sorted(
        page.relative_to(DOCS).as_posix()
        for page in DOCS.rglob("*.md")
        if not page.relative_to(DOCS).as_posix().startswith("_")
    )
    for extra in generator().EXTRA_FILES.values():
        assert (REPO / extra).is_file()


def test_the_readme_is_a_front_page() -> None:
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) < 250
    for command in ("make demo", "make test"):
        assert command in readme
    for target in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (REPO / target).is_file(), target
    assert "CC-BY 4.0" in readme


REPOSITORY_PATH = re.compile(r"^(?:benchmarks|scripts|stacks|runtime|tests)/[\w./-]+$")


@pytest.mark.parametrize("page", sorted(DOCS.rglob("*.md")), ids=lambda p: p.name)
def test_no_page_names_a_missing_repository_file(page: Path) -> None:
    """Files of a checkout that a page's inline code names (commands included) exist."""
    for span in re.findall(r"`([^`\n]+)`", page.read_text()):
        for word in span.split():
            if REPOSITORY_PATH.match(word):
                assert (REPO / word).exists(), f"{page.name} names {word}"
