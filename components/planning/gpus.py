"""The GPU types a spec may name.

The machines that carry each one live in the per-cloud tables (`clouds`), so that validation,
pricing and the cloud components agree on what `nvidia-l4` means.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GpuType:
    """A GPU model a replica may ask for."""

    name: str
    memory_gib: int


GPU_TYPES: dict[str, GpuType] = {
    gpu.name: gpu
    for gpu in (
        GpuType("nvidia-t4", 16),
        GpuType("nvidia-a10g", 24),
        GpuType("nvidia-l4", 24),
        GpuType("nvidia-l40s", 48),
        GpuType("nvidia-a100-40gb", 40),
        GpuType("nvidia-a100-80gb", 80),
        GpuType("nvidia-h100-80gb", 80),
    )
}
"""Known GPU types, by the name a spec uses."""


def gpu_type(name: str) -> GpuType:
    """Look up a GPU type by its spec name; raises KeyError for an unknown name."""
    return GPU_TYPES[name]
