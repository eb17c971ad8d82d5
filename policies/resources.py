"""What a rule sees: a resource's type, name, URN and wire-form properties, as plain data.

Rules never touch `pulumi_policy` objects. The pack adapter (`inferstack.policies.pack`) unwraps
the SDK's unknown-checking proxies into plain dicts and lists, replacing each preview-unknown value
with `UNKNOWN`, so a rule can test for it instead of catching `UnknownValueError` (which, in a
stack policy, would abort the whole policy for every resource).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final


class _Unknown:
    """A value the engine cannot know during preview (e.g. an ID or ARN computed by the cloud)."""

    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"

    def __bool__(self) -> bool:
        return False


UNKNOWN: Final = _Unknown()


@dataclass(frozen=True)
class Resource:
    """One registered resource as a policy sees it.

    `props` holds the wire (camelCase) property names; numbers are floats, as on the wire.
    `dependencies` and `property_dependencies` hold URNs and are only filled for stack policies.
    """

    type: str
    name: str
    urn: str
    props: Mapping[str, Any]
    parent: str = ""
    dependencies: tuple[str, ...] = ()
    property_dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def get(self, path: str, default: Any = None) -> Any:
        """The property at a dotted path (`spec.template.spec`), or `default` when absent."""
        return get_path(self.props, path, default)

    def depends_on(self, urn: str) -> bool:
        """True when any input of this resource was computed from the resource `urn`."""
        return urn in self.dependencies or any(
            urn in urns for urns in self.property_dependencies.values()
        )


@dataclass(frozen=True)
class Finding:
    """One violation: what is wrong and how to fix it, attributed to a resource URN ("" = stack)."""

    message: str
    urn: str = ""


def get_path(value: Any, path: str, default: Any = None) -> Any:
    """Walk a dotted path through mappings; absent keys and non-mappings give `default`.

    Keys are split on dots, so keys that contain dots (labels, annotations) are read with
    `mapping_of(...)` plus a plain lookup instead.
    """
    current = value
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return default
        current = current[part]
    return current


def mapping_of(value: Any) -> Mapping[str, Any]:
    """`value` if it is a mapping, else an empty one (absent or unknown sections read as empty)."""
    return value if isinstance(value, Mapping) else {}


def list_of(value: Any) -> Sequence[Any]:
    """`value` if it is a list, else an empty one (absent or unknown lists read as empty)."""
    return value if isinstance(value, list | tuple) else ()


def as_number(value: Any) -> float | None:
    """A number from a wire value: floats, ints and decimal strings; None when absent or unknown."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def is_true(value: Any) -> bool:
    """A wire boolean that may arrive as a bool or as a string (annotations, labels)."""
    if isinstance(value, bool):
        return value
    return isinstance(value, str) and value.strip().lower() == "true"


def format_number(value: float) -> str:
    """A float as the user wrote it: `2.0` prints as `2`."""
    return f"{value:g}"
