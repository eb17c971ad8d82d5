"""The documentation site's generated sections: the config reference and the policy rules.

MkDocs runs this module as a hook (`hooks:` in mkdocs.yml). A page line that reads
`<!-- generated: NAME -->` is replaced, at build time, by the markdown `GENERATORS[NAME]` builds
from the code itself: the pydantic models of the stack config (every field with its type,
default and description) and the policy rules (each one's why and fix, read from its module
docstring). Nothing on those pages is written twice, so the site cannot drift from the code.
"""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from inferstack.offline.stack_config import config_models as reader_models
from inferstack.policies.rules import ALL_RULES

MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.MULTILINE)

EXTRA_FILES: dict[str, str] = {"img/simulate-dev.png": "benchmarks/simulate-dev.png"}
"""Files outside docs/ the pages show: site path -> path in the repository."""

_SCALARS: dict[object, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    type(None): "null",
    Any: "any",
}
_BOUNDS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))


def config_roots() -> dict[str, type[BaseModel]]:
    """Each stack-config key a user writes, and the model that reads it.

    The one table the config reader and `inferstack schema` use, so the reference documents
    exactly what is read.
    """
    return reader_models()


def config_models() -> list[tuple[list[str], type[BaseModel]]]:
    """Every model the stack config reaches, once each, with every path it sits at."""
    seen: dict[type[BaseModel], list[str]] = {}

    def visit(model: type[BaseModel], where: str) -> None:
        first = model not in seen
        seen.setdefault(model, []).append(where)
        if not first:
            return
        for name, info in model.model_fields.items():
            suffix = "[]" if get_origin(info.annotation) is list else ""
            for nested in _models_in(info.annotation):
                visit(nested, f"{where}.{name}{suffix}")

    for key, model in config_roots().items():
        visit(model, key)
    return [(paths, model) for model, paths in seen.items()]


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for argument in get_args(annotation):
        yield from _models_in(argument)


def anchor(model: type[BaseModel]) -> str:
    """The heading id MkDocs gives the model's section (its lowercased class name)."""
    return model.__name__.lower()


def type_name(annotation: Any) -> str:
    """A field's type as a YAML writer reads it: `integer`, `"auto"`, `list of integer`, a link."""
    origin = get_origin(annotation)
    arguments = get_args(annotation)
    if origin is typing.Annotated:
        return type_name(arguments[0])
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(argument) for argument in arguments)
    if origin is Literal:
        return " or ".join(f"`{json.dumps(value)}`" for value in arguments)
    if origin is list or (origin is tuple and arguments[1:] == (Ellipsis,)):
        return f"list of {type_name(arguments[0])}"
    if origin is tuple:
        return "[" + ", ".join(type_name(argument) for argument in arguments) + "]"
    if origin is dict:
        return f"map of {type_name(arguments[0])} to {type_name(arguments[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{anchor(annotation)})"
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    return f"`{getattr(annotation, '__name__', annotation)}`"


def bounds(info: FieldInfo) -> str:
    """The field's numeric bounds (`>= 1, <= 4096`), empty when it has none."""
    found = [
        f"{symbol} {getattr(item, attribute):g}"
        for item in info.metadata
        for attribute, symbol in _BOUNDS
        if getattr(item, attribute, None) is not None
    ]
    return ", ".join(found)


def default_text(info: FieldInfo) -> str:
    """The default as it would be written in YAML, or `required`."""
    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True, validated_data={})
    if isinstance(value, BaseModel):
        return "its defaults"
    if isinstance(value, str) and value:
        return f"`{value}`"
    return f"`{json.dumps(value)}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def model_section(paths: list[str], model: type[BaseModel]) -> str:
    """One model: its docstring, where it sits in the config, and a row per field."""
    doc = " ".join((model.__doc__ or "").split("\n\n")[0].split())
    rows = ["| field | type | default | description |", "|---|---|---|---|"]
    for name, info in model.model_fields.items():
        kind = type_name(info.annotation)
        if limits := bounds(info):
            kind += f" ({limits})"
        rows.append(
            f"| `{name}` | {_cell(kind)} | {_cell(default_text(info))} "
            f"| {_cell(info.description or '')} |"
        )
    where = ", ".join(f"`{path}`" for path in paths)
    return f"### {model.__name__}\n\n{where}: {doc}\n\n" + "\n".join(rows) + "\n"


def config_reference() -> str:
    """Each stack-config key, then every model below it as a table of its fields."""
    roots = {model: key for key, model in config_roots().items()}
    parts: list[str] = []
    for paths, model in config_models():
        if model in roots:
            key = roots[model]
            parts.append(f"## `{key}`\n\nThe value of `{key}`, and the sections below it.\n")
        parts.append(model_section(paths, model))
    return "\n".join(parts)


def _rule_tunables(schema: dict[str, Any]) -> str:
    rows = ["| setting | type | default | description |", "|---|---|---|---|"]
    for key, field in schema.items():
        kind = field.get("type", "any")
        kind = " or ".join(kind) if isinstance(kind, list) else kind
        rows.append(
            f"| `{key}` | {kind} | `{json.dumps(field.get('default'))}` "
            f"| {_cell(str(field.get('description', '')))} |"
        )
    return "\n".join(rows)


def policy_rules() -> str:
    """Every rule of the pack, in pack order: what it blocks, why, the fix and its settings."""
    summary = ["| policy | level | blocks |", "|---|---|---|"]
    sections = []
    for rule in ALL_RULES:
        link = f"[`{rule.name}`](#{rule.name})"
        summary.append(f"| {link} | {rule.enforcement} | {rule.description} |")
        section = (
            f"### {rule.name}\n\n{rule.description} ({rule.enforcement}, severity "
            f"{rule.severity}, judged {'per resource' if rule.kind == 'resource' else 'per stack'})"
            f"\n\n**Why.** {rule.why}\n\n**Fix.** {rule.remediation}\n"
        )
        if rule.config_schema:
            schema = {key: dict(value) for key, value in rule.config_schema.items()}
            section += f"\nSettings (policy pack config):\n\n{_rule_tunables(schema)}\n"
        sections.append(section)
    return "\n".join(summary) + "\n\n" + "\n".join(sections)


GENERATORS: dict[str, Callable[[], str]] = {
    "config-reference": config_reference,
    "policy-rules": policy_rules,
}


def render(markdown: str) -> str:
    """`markdown` with every generated-section marker replaced by its section."""
    return MARKER.sub(lambda match: GENERATORS[match.group(1)](), markdown)


def on_page_markdown(markdown: str, **_: Any) -> str:
    """MkDocs hook: fill in the generated sections of each page."""
    return render(markdown)


def on_files(files: Any, config: Any, **_: Any) -> Any:
    """MkDocs hook: add the repository files the pages show (the simulator's plot)."""
    from mkdocs.structure.files import File

    root = Path(config["config_file_path"]).resolve().parent
    for site_path, source in EXTRA_FILES.items():
        files.append(File.generated(config, site_path, abs_src_path=str(root / source)))
    return files
