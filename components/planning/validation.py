"""From pydantic's validation errors to the project's `Problem`s: one field path, one fix each.

The spec and every target's options are pydantic models that refuse unknown keys; this module
turns what pydantic reports into the messages a user reads (`inferstack:aws.region: ...`), so
that every parser names fields the same way and lists every problem at once.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from inferstack.errors import Problem, SpecError

if TYPE_CHECKING:
    from inferstack.components.planning.spec import InferenceServiceSpec

_UNION_LABELS = frozenset({"int", "float", "str", "literal['auto']", "bool", "none"})
_VALIDATOR_STEPS = ("function-after", "function-before", "function-wrap", "function-plain")

_TYPE_MESSAGES = {
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping of options",
    "model_attributes_type": "expected a mapping of options",
    "list_type": "expected a list",
    "tuple_type": "expected a list",
    "string_type": "expected a string",
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
}


class StrictModel(BaseModel):
    """Base of every user-written section: unknown keys are errors, values never change."""

    # Attribute docstrings are the fields' descriptions: `inferstack schema` and the
    # documentation's configuration reference show them, so each is written once.
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class TargetOptions(Protocol):
    """A target's options: judged against the spec by the one `problems(spec)` signature."""

    def problems(self, spec: InferenceServiceSpec) -> list[Problem]:
        """What the target cannot build for `spec` with these options, each with its fix."""
        ...


Options = TypeVar("Options", bound=StrictModel)


def field_path(location: tuple[int | str, ...]) -> str:
    """`realtime.scaling.max_replicas`, `spikes[0].cron`: pydantic's location, as users write it."""
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.startswith(_VALIDATOR_STEPS) or part in _UNION_LABELS:
            continue  # pydantic's names for validator steps and union members, not fields
        else:
            path += f".{part}" if path else part
    return path


def _model_at(root: type[BaseModel], location: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class that holds the field at `location` (for its list of known keys)."""
    model: type[BaseModel] | None = root
    for part in location:
        if model is None or isinstance(part, int) or part not in model.model_fields:
            continue
        model = _model_in(model.model_fields[part].annotation)
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        for member in typing.get_args(annotation):
            if found := _model_in(member):
                return found
    return None


def _literal_choices(expected: str) -> str:
    return expected.replace("'", "")


def option_message(detail: Mapping[str, Any], root: type[BaseModel]) -> str:
    """The message for one of pydantic's error details on an options model, with the fix."""
    kind = detail["type"]
    if kind == "extra_forbidden":
        holder = _model_at(root, tuple(detail["loc"][:-1]))
        known = ", ".join(sorted(holder.model_fields)) if holder else ""
        return f"unknown option; known options are {known}"
    if kind == "literal_error":
        return f"use {_literal_choices(str(detail['ctx']['expected']))} (got {detail['input']!r})"
    if kind in _TYPE_MESSAGES:
        return f"{_TYPE_MESSAGES[kind]}, got {type(detail['input']).__name__}"
    if kind == "missing":
        return "required option is missing; add it"
    return str(detail["msg"]).removeprefix("Value error, ")


def problems_from(
    error: ValidationError, prefix: str, message: Callable[[Mapping[str, Any]], str]
) -> list[Problem]:
    """Every problem of `error`, each at `prefix.path`, in the user's words (no duplicates)."""
    problems: dict[tuple[str, str], Problem] = {}
    for detail in error.errors(include_url=False):
        path = field_path(tuple(detail["loc"]))
        full_path = ".".join(part for part in (prefix, path) if part) or "(spec)"
        text = message(detail)
        problems.setdefault((full_path, text), Problem(full_path, text))
    return list(problems.values())


def parse_options(
    model: type[Options],
    data: Mapping[str, Any] | None,
    *,
    source: str,
    spec: InferenceServiceSpec | None = None,
) -> Options:
    """`model` from a config mapping, or `SpecError` listing every problem as `source.field`.

    Unknown keys come first: a misspelt key usually explains the other problems. With `spec`,
    a refusal also lists what `problems(spec)` finds in the values that were valid, so one run
    shows everything to fix (a valid result is left for the caller to judge).
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        message = f"expected a mapping of options, got {type(data).__name__}"
        raise SpecError([Problem(source, message)], source=source)
    try:
        return model.model_validate(dict(data))
    except ValidationError as error:
        problems = problems_from(error, source, lambda detail: option_message(detail, model))
        problems.sort(key=lambda problem: not problem.message.startswith("unknown option"))
        if spec is not None:
            problems += _problems_of_the_rest(model, data, error, spec, problems)
        raise SpecError(problems, source=source) from None


def _problems_of_the_rest(
    model: type[Options],
    data: Mapping[str, Any],
    error: ValidationError,
    spec: InferenceServiceSpec,
    found: list[Problem],
) -> list[Problem]:
    """`problems(spec)` of the options without the keys that failed (their defaults instead).

    Built without validation (the kept values passed theirs), so `problems` reads only what a
    failed key cannot have broken: `problems` must tolerate an empty default.
    """
    failed = {detail["loc"][0] for detail in error.errors() if detail["loc"]}
    partial = model.model_construct(**{k: v for k, v in data.items() if k not in failed})
    if not hasattr(partial, "problems"):
        return []
    judged: TargetOptions = partial
    seen = {problem.path for problem in found}
    return [problem for problem in judged.problems(spec) if problem.path not in seen]


__all__ = [
    "StrictModel",
    "TargetOptions",
    "field_path",
    "option_message",
    "parse_options",
    "problems_from",
]
