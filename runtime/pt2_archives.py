"""What a `.pt2` archive may hold before `torch.export.load` opens it: tensors and JSON, no code.

`torch.export.load` unpickles parts of an archive without `weights_only`: a weight or constant
whose config says `use_pickle`, a custom or opaque object constant, and the sample inputs when
they do not load with `weights_only=True` (it then retries without). An unpickled object runs
whatever code it names, in the model process, before any check of ours. So the archive is read
as a zip first and refused when any of those is present; what `torch.export.save` writes for a
module of plain tensors (raw weight bytes, JSON configs, sample inputs of tensors) passes.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any, Final

_PLAIN_PAYLOADS: Final = ("weight_", "tensor_")
"""File-name prefixes of weights and tensor constants stored as raw bytes (torch's
WEIGHT_FILENAME_PREFIX and TENSOR_CONSTANT_FILENAME_PREFIX); custom and opaque objects use
others."""
_FIX: Final = (
    "export a module whose parameters, buffers and constants are plain tensors, or serve it "
    "as a Python handler (module:Class) if it must run code"
)


def code_in_archive(path: Path) -> str | None:
    """Why the `.pt2` archive at `path` would run code when loaded, or None when it would not."""
    import torch

    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as error:
        return f"{path} is not a .pt2 archive ({error}); save one with torch.export.save"
    with archive:
        names = archive.namelist()
        if not any(name.rsplit("/", 1)[-1] == "archive_format" for name in names):
            return (
                f"{path} predates the .pt2 archive format (torch 2.7), whose loader unpickles "
                "it; load and re-save it with a current torch.export.save where it is trusted"
            )
        for name in names:
            if name.endswith(("_weights_config.json", "_constants_config.json")):
                problem = _pickled_payload(json.loads(archive.read(name)))
                if problem is not None:
                    return f"{path}: {problem} stored pickled, which runs code when loaded; {_FIX}"
            elif "/data/sample_inputs/" in name:
                try:
                    torch.load(io.BytesIO(archive.read(name)), weights_only=True)
                except Exception:
                    return (
                        f"{path}: its sample inputs ({name}) hold pickled objects beyond tensors, "
                        f"which run code when loaded; {_FIX}"
                    )
    return None


def _pickled_payload(config: Any) -> str | None:
    """The first weight or constant of a payload config that is not raw tensor bytes."""
    entries = config.get("config", {}) if isinstance(config, dict) else {}
    for fqn, meta in entries.items():
        plain = isinstance(meta, dict) and not meta.get("use_pickle", False)
        if not plain or not str(meta.get("path_name", "")).startswith(_PLAIN_PAYLOADS):
            return repr(fqn)
    return None


__all__ = ["code_in_archive"]
