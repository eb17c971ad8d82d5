"""The GPU types a spec may name: one table, with each type's memory and driver device name.

Every other GPU table derives its names from this one: the spec's (`components.planning.gpus`,
what a spec is validated against), the profiler's and the profile's (which spec GPU type a run
measured on, from what torch sees in `torch.cuda.get_device_name`), and sizing's warning for
every pool whose GPU type is not the one a profile was measured on. The per-cloud machine tables
(`components.planning.clouds`) say which of these each cloud offers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class GpuModel:
    """One GPU type: the name a spec uses, its memory, and how its driver names it."""

    name: str
    memory_gib: int
    device_pattern: str
    """Pattern over the driver's device name, upper-cased, '-' and '_' as spaces (e.g. "Tesla
    T4", "NVIDIA A10G", "NVIDIA A100-SXM4-40GB", "NVIDIA H100 80GB HBM3")."""


GPU_MODELS: Final[dict[str, GpuModel]] = {
    gpu.name: gpu
    for gpu in (
        GpuModel("nvidia-t4", 16, r"\bT4\b"),
        GpuModel("nvidia-a10g", 24, r"\bA10G\b"),
        GpuModel("nvidia-l4", 24, r"\bL4\b"),
        GpuModel("nvidia-l40s", 48, r"\bL40S\b"),
        GpuModel("nvidia-a100-40gb", 40, r"\bA100\b.*\b40GB\b"),
        GpuModel("nvidia-a100-80gb", 80, r"\bA100\b.*\b80GB\b"),
        GpuModel("nvidia-h100-80gb", 80, r"\bH100\b.*\b(80GB|PCIE|SXM5?)\b"),
    )
}
"""Known GPU types, by the name a spec uses."""
GPU_TYPE_NAMES: Final = tuple(GPU_MODELS)
DEVICE_NAME_PATTERNS: Final[dict[str, str]] = {
    name: gpu.device_pattern for name, gpu in GPU_MODELS.items()
}
"""Spec GPU type -> pattern over the driver's device name (see `GpuModel.device_pattern`)."""


def gpu_type_of_device(device_name: str) -> str | None:
    """The spec GPU type of a device the driver names `device_name`; None when none matches."""
    normalised = re.sub(r"[-_]", " ", device_name.upper())
    matches = [
        gpu for gpu, pattern in DEVICE_NAME_PATTERNS.items() if re.search(pattern, normalised)
    ]
    return matches[0] if len(matches) == 1 else None


__all__ = [
    "DEVICE_NAME_PATTERNS",
    "GPU_MODELS",
    "GPU_TYPE_NAMES",
    "GpuModel",
    "gpu_type_of_device",
]
