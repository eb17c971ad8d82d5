"""`inferstack schema`: the JSON Schema of a stack file, so that an editor validates it as you type.

Built from the models that read the config (`inferstack.offline.stack_config`: the spec's
pydantic model, the Kubernetes options' and each target's), never written by hand, so the
schema and the reader cannot disagree: a key the reader refuses is one the editor flags. Point
the YAML language server at it with `# yaml-language-server: $schema=./inferstack.schema.json`
on the first line of `Pulumi.<stack>.yaml`. Keys of other namespaces (a provider's `aws:region`,
the project's own) pass; an unknown `inferstack:*` key is an error, as is an unknown field
anywhere below one.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any, Final

from pydantic.json_schema import models_json_schema

from inferstack.offline.stack_config import (
    AVAILABLE_TARGETS,
    NAMESPACE,
    TARGET_KEY,
    config_models,
)

DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID: Final = "https://inferstack.dev/schemas/stack-config.json"


def _config_section(models: dict[str, Any]) -> dict[str, Any]:
    target = f"{NAMESPACE}:{TARGET_KEY}"
    properties: dict[str, Any] = {
        target: {
            "description": "Where the service runs: the target whose component builds it.",
            "enum": list(AVAILABLE_TARGETS),
            "default": AVAILABLE_TARGETS[0],
        }
    }
    properties.update(models)
    known = "|".join(re.escape(key.removeprefix(f"{NAMESPACE}:")) for key in properties)
    return {
        "type": "object",
        "description": "Stack config: the `inferstack:*` keys, and any other namespace's.",
        "properties": properties,
        # Any key outside the namespace passes (providers, the project); inside it, only these.
        # `not: {}` rather than `false`: validators then report the key itself as the place.
        "patternProperties": {
            f"^{NAMESPACE}:(?!({known})$)": {
                "not": {},
                "description": f"not an inferstack key; use one of {', '.join(properties)}",
            }
        },
    }


def stack_file_schema() -> dict[str, Any]:
    """The JSON Schema of a `Pulumi.<stack>.yaml`, from the config's pydantic models."""
    models = config_models()
    keys, document = models_json_schema(
        [(model, "validation") for model in models.values()],
        ref_template="#/$defs/{model}",
    )
    references = {key: keys[(model, "validation")] for key, model in models.items()}
    return {
        "$schema": DIALECT,
        "$id": SCHEMA_ID,
        "title": "inferstack stack config (Pulumi.<stack>.yaml)",
        "type": "object",
        "properties": {"config": _config_section(references)},
        "$defs": document.get("$defs", {}),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `inferstack schema`."""
    parser.add_argument(
        "--indent", type=int, default=2, help="spaces per level of the JSON (default 2)"
    )


def run(args: argparse.Namespace) -> int:
    """Print the schema as JSON on stdout."""
    json.dump(stack_file_schema(), sys.stdout, indent=args.indent, sort_keys=True)
    sys.stdout.write("\n")
    return 0


__all__ = ["stack_file_schema"]
