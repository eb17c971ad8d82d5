"""`tune --write`: set the winning values in the stack file, keeping its comments and layout.

A round-trip YAML library (ruamel.yaml) edits the document in place, so comments, key order,
flow mappings and quoting survive; only the changed values are touched. The result is read back
through `from_values` before the file is replaced, so a write never leaves a stack that does not
load.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from inferstack.errors import SpecError
from inferstack.offline.simulate import SimulateError
from inferstack.offline.stack_config import from_values

NAMESPACE = "inferstack:"
SERVICE_CONFIG_KEY = f"{NAMESPACE}service"


def _yaml(text: str) -> Any:
    """A round-trip loader and dumper that writes lists indented as `text` has them."""
    from ruamel.yaml import YAML  # deferred: only --write needs it
    from ruamel.yaml.util import load_yaml_guess_indent

    _, sequence, offset = load_yaml_guess_indent(text)
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap the user's long lines
    yaml.indent(mapping=2, sequence=sequence or 2, offset=offset or 0)
    return yaml


def edited_text(text: str, fields: Mapping[tuple[str, ...], object]) -> str:
    """The stack file's text with each spec path set to its value."""
    yaml = _yaml(text)
    document = yaml.load(text)
    try:
        node = document["config"][SERVICE_CONFIG_KEY]
    except (KeyError, TypeError):
        raise SimulateError(
            "--write", f"the stack file has no config.{SERVICE_CONFIG_KEY} mapping to edit"
        ) from None
    for path, value in fields.items():
        target = node
        for key in path[:-1]:
            if key not in target:
                target[key] = {}
            target = target[key]
        target[path[-1]] = _plain(value)
    out = io.StringIO()
    yaml.dump(document, out)
    return out.getvalue()


def _plain(value: object) -> object:
    """Whole floats as ints (2.0 -> 2), as a person writes them."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def write_changes(
    stack_file: Path,
    fields: Mapping[tuple[str, ...], object],
    project_dir: Path,
    now: datetime,
) -> None:
    """Apply `fields` to the stack file, once the edited stack is known to load."""
    text = edited_text(stack_file.read_text(encoding="utf-8"), fields)
    config = yaml.safe_load(text).get("config") or {}
    values = {
        key.removeprefix(NAMESPACE): value
        for key, value in config.items()
        if key.startswith(NAMESPACE)
    }
    try:
        from_values(values, project_dir=project_dir, now=now)
    except SpecError as error:
        raise SimulateError(
            "--write", f"the edited stack would not load, so it is left as it was: {error}"
        ) from None
    stack_file.write_text(text, encoding="utf-8")
