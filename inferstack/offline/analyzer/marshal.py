"""Marshal captured properties the way the engine marshals them for analyzers.

The engine calls `MarshalProperties` with KeepUnknowns, KeepSecrets and SkipInternalKeys, and
without KeepResources or KeepOutputValues (`pkg/resource/plugin/analyzer_plugin.go`), so:
resource references become the referenced ID (the URN for components; an unknown ID in preview
stays unknown), output values collapse to their plain, secret or unknown form, unknowns become
the string sentinel, secrets keep their signature wrapper, and top-level `__*` keys are dropped.
"""

from __future__ import annotations

from typing import Any, Final

from google.protobuf import struct_pb2

SIG_KEY: Final = "4dabf18193072939515e22adb298388d"
SECRET_SIG: Final = "1b47061264138c4ac30d75fd1eb44270"
RESOURCE_REF_SIG: Final = "5cf8f73096256a8f31e491e813e4eb8e"
OUTPUT_VALUE_SIG: Final = "d0e6a833031e9bbcd3f4e8bde6ca49a4"
UNKNOWN_STRING: Final = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
"""The engine re-marshals every unknown, whatever its type, as the string sentinel."""


def _secret(value: Any) -> dict[str, Any]:
    return {SIG_KEY: SECRET_SIG, "value": value}


def marshal_value(value: Any) -> Any:
    """One property value in the form an analyzer receives it."""
    if isinstance(value, list):
        return [marshal_value(item) for item in value]
    if not isinstance(value, dict):
        return value
    signature = value.get(SIG_KEY)
    if signature == RESOURCE_REF_SIG:
        ref_id = value.get("id")
        if ref_id is None:  # a component: no ID, the engine uses the URN
            return value.get("urn", UNKNOWN_STRING)
        return ref_id if ref_id != "" else UNKNOWN_STRING
    if signature == OUTPUT_VALUE_SIG:
        if "value" not in value:
            return UNKNOWN_STRING
        inner = marshal_value(value["value"])
        return _secret(inner) if value.get("secret") else inner
    if signature == SECRET_SIG:
        return _secret(marshal_value(value.get("value")))
    if signature is not None:  # assets and archives travel as they are
        return value
    return {key: marshal_value(item) for key, item in value.items()}


def marshal_properties(properties: dict[str, Any]) -> dict[str, Any]:
    """A resource's property map as the engine sends it to an analyzer."""
    return {
        key: marshal_value(value) for key, value in properties.items() if not key.startswith("__")
    }


def to_struct(properties: dict[str, Any]) -> struct_pb2.Struct:
    """A protobuf Struct of the properties (every number becomes a double, as on the wire)."""
    struct = struct_pb2.Struct()
    struct.update(properties)
    return struct
