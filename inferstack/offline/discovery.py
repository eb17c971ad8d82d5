"""Where a stack's program and config are, found as the Pulumi CLI finds them.

`Pulumi.yaml` in the folder given or its nearest parent names the project, its program (`main`)
and where the stack files live (`stackConfigDir`); `Pulumi.<stack>.yaml` there holds the config,
which travels in the engine's form (`{"namespace:key": "string"}`, objects JSON-encoded).
`preview`, `check` and `simulate` resolve it from the same flags (`add_program_arguments`,
`locate_program`), so one stack means the same thing to all three.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class CaptureError(RuntimeError):
    """The program could not run: bad config, a spec error, or an exception in the program."""


@dataclass(frozen=True)
class ProjectSettings:
    """What `Pulumi.yaml` says about where the program and its stack configs live."""

    name: str
    program_dir: Path
    stack_config_dir: Path

    def stack_file(self, stack: str) -> Path:
        """The stack's config file, `Pulumi.<stack>.yaml` in `stackConfigDir`."""
        return self.stack_config_dir / f"Pulumi.{stack}.yaml"


def load_yaml_mapping(path: Path) -> dict[str, Any]:
    """A YAML file that must hold a mapping; `CaptureError` (one line, with the place) if not."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise CaptureError(f"cannot read {path}: {error}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise CaptureError(f"{where}: not valid YAML ({problem}); fix the file") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise CaptureError(
            f"{path}: expected a mapping of keys at the top, got {type(document).__name__}"
        )
    return document


def read_project(project_dir: Path) -> ProjectSettings:
    """Read `Pulumi.yaml` in `project_dir`: project name, `main` and `stackConfigDir`."""
    path = project_dir / "Pulumi.yaml"
    document = load_yaml_mapping(path)
    if "name" not in document:
        raise CaptureError(f"{path}: no `name`; add the project name (e.g. `name: inferstack`)")
    return ProjectSettings(
        name=str(document["name"]),
        program_dir=project_dir / str(document.get("main", ".")),
        stack_config_dir=project_dir / str(document.get("stackConfigDir", ".")),
    )


def engine_config(project: ProjectSettings, stack: str) -> dict[str, str]:
    """Stack config as the engine hands it to a program: `{"ns:key": "string"}`.

    Keys without a namespace belong to the project; objects and lists travel JSON-encoded.
    """
    path = project.stack_file(stack)
    if not path.exists():
        known = sorted(
            p.name[len("Pulumi.") : -len(".yaml")] for p in path.parent.glob("Pulumi.*.yaml")
        )
        raise CaptureError(f"no stack {stack!r}: {path} does not exist (stacks here: {known})")
    section = load_yaml_mapping(path).get("config") or {}
    if not isinstance(section, dict):
        raise CaptureError(f"{path}: `config` must be a mapping of keys to values")
    config: dict[str, str] = {}
    for key, value in section.items():
        full_key = key if ":" in key else f"{project.name}:{key}"
        if isinstance(value, dict) and "secure" in value:
            raise CaptureError(
                f"{path}: {full_key} is an encrypted secret; offline runs cannot decrypt it, "
                "set a plain placeholder in a separate stack file for previews"
            )
        config[full_key] = value if isinstance(value, str) else json.dumps(value)
    return config


def find_project_dir(start: Path) -> Path:
    """The nearest folder from `start` up that holds Pulumi.yaml, as the Pulumi CLI finds it."""
    for directory in (start, *start.parents):
        if (directory / "Pulumi.yaml").is_file():
            return directory
    raise CaptureError(
        f"no Pulumi.yaml in {start} or any parent; run from the project, or pass --project-dir "
        "or --program"
    )


def config_overrides(pairs: list[str], project: str) -> dict[str, str]:
    """`--config KEY=VALUE` pairs in engine form; a key without `ns:` belongs to the project."""
    overrides = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise CaptureError(f"--config {pair!r}: write KEY=VALUE, e.g. --config {project}:x=1")
        overrides[key if ":" in key else f"{project}:{key}"] = value
    return overrides


@dataclass(frozen=True)
class ProgramLocation:
    """Which program runs, in which project, with which config.

    What `preview`, `check` and `simulate` all resolve from the same flags.
    """

    project: ProjectSettings
    project_dir: Path
    program_dir: Path
    stack: str
    config: dict[str, str]
    """Engine form: the stack file's config with the `--config` overrides over it."""


def add_program_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags `preview`, `check` and `simulate` share to find the program and its config."""
    parser.add_argument(
        "--stack",
        default="dev",
        help="stack whose config (Pulumi.<stack>.yaml in stackConfigDir) the program runs with "
        "(default: dev)",
    )
    parser.add_argument(
        "--project-dir",
        type=Path,
        default=None,
        help="where to look for Pulumi.yaml, then in its parents (default: the current folder)",
    )
    parser.add_argument(
        "--program",
        type=Path,
        help="Pulumi program directory to run instead of the project's own (its Pulumi.yaml is "
        "the one in it or in the nearest parent)",
    )
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a config value over the stack's (repeatable; a key without `ns:` belongs to "
        "the project), as `pulumi preview --config` does",
    )


def locate_program(args: argparse.Namespace) -> ProgramLocation:
    """Resolve the flags of `add_program_arguments`; `CaptureError` names what is missing."""
    if args.program is not None:
        program_dir = args.program.resolve()
        if not (program_dir / "__main__.py").is_file():
            raise CaptureError(f"--program {args.program}: no __main__.py in it")
        project_dir = find_project_dir(program_dir)
    else:
        project_dir = find_project_dir((args.project_dir or Path.cwd()).resolve())
    project = read_project(project_dir)
    if args.program is None:
        program_dir = project.program_dir.resolve()
    has_stack_file = project.stack_file(args.stack).is_file()
    config = engine_config(project, args.stack) if has_stack_file or not args.program else {}
    config.update(config_overrides(args.config, project.name))
    return ProgramLocation(project, project_dir, program_dir, args.stack, config)


__all__ = [
    "CaptureError",
    "ProgramLocation",
    "ProjectSettings",
    "add_program_arguments",
    "config_overrides",
    "engine_config",
    "find_project_dir",
    "load_yaml_mapping",
    "locate_program",
    "read_project",
]
