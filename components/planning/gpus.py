"""The GPU types a spec may name, as the contract's one table defines them.

The machines that carry each one live in the per-cloud tables (`clouds`), so that validation,
pricing and the cloud components agree on what `nvidia-l4` means.
"""

from __future__ import annotations

from typing import Final

from inferstack.contract.gpus import GPU_MODELS, GpuModel

GpuType = GpuModel
"""A GPU model a replica may ask for (the contract's `GpuModel`)."""

GPU_TYPES: Final[dict[str, GpuType]] = GPU_MODELS
"""Known GPU types, by the name a spec uses."""


def gpu_type(name: str) -> GpuType:
    """Look up a GPU type by its spec name; raises KeyError for an unknown name."""
    return GPU_TYPES[name]


__all__ = ["GPU_TYPES", "GpuType", "gpu_type"]
