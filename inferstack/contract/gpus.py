"""GPU types by the name a spec uses, and how to recognise each from the name its driver reports.

The profiler records which spec GPU type it measured on from what torch sees
(`torch.cuda.get_device_name`), refuses an `--accelerator` that contradicts it, and sizing warns
for every pool whose GPU type is not the one a profile was measured on: all three read this table.
The spec's GPU table (`components.planning.gpus`) has the same names (a test ties them).
"""

from __future__ import annotations

import re
from typing import Final

DEVICE_NAME_PATTERNS: Final[dict[str, str]] = {
    "nvidia-t4": r"\bT4\b",
    "nvidia-a10g": r"\bA10G\b",
    "nvidia-l4": r"\bL4\b",
    "nvidia-l40s": r"\bL40S\b",
    "nvidia-a100-40gb": r"\bA100\b.*\b40GB\b",
    "nvidia-a100-80gb": r"\bA100\b.*\b80GB\b",
    "nvidia-h100-80gb": r"\bH100\b.*\b(80GB|PCIE|SXM5?)\b",
}
"""Spec GPU type -> pattern over the driver's device name, upper-cased, '-' and '_' as spaces
(e.g. "Tesla T4", "NVIDIA A10G", "NVIDIA A100-SXM4-40GB", "NVIDIA H100 80GB HBM3")."""
GPU_TYPE_NAMES: Final = tuple(DEVICE_NAME_PATTERNS)


def gpu_type_of_device(device_name: str) -> str | None:
    """The spec GPU type of a device the driver names `device_name`; None when none matches."""
    normalised = re.sub(r"[-_]", " ", device_name.upper())
    matches = [
        gpu for gpu, pattern in DEVICE_NAME_PATTERNS.items() if re.search(pattern, normalised)
    ]
    return matches[0] if len(matches) == 1 else None
