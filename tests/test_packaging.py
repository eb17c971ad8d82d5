"""The distribution ships every package folder and the data files the code reads."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAPPED_FOLDERS = {
    "inferstack": "inferstack",
    "components": "inferstack.components",
    "runtime": "inferstack.runtime",
    "policies": "inferstack.policies",
}


def pyproject() -> dict:  # type: ignore[type-arg]
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_every_package_folder_is_listed() -> None:
    listed = set(pyproject()["tool"]["setuptools"]["packages"])
    found = set()
    for folder, package in MAPPED_FOLDERS.items():
        for init in (REPO / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO / folder)
            found.add(".".join([package, *relative.parts]))
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"


def test_package_dir_maps_the_top_level_folders() -> None:
    mapping = pyproject()["tool"]["setuptools"]["package-dir"]
    assert {package: folder for folder, package in MAPPED_FOLDERS.items()} == mapping


def test_shipped_data_files_exist() -> None:
    assert (REPO / "components" / "planning" / "prices" / "gpu-prices.json").is_file()
    assert (REPO / "inferstack" / "profiles" / "builtin-mlp.cpu.json").is_file()
