"""The GPU types a spec may name, and the cloud machine that carries each one.

One table, so that validation, pricing and the cloud components agree on what `nvidia-l4` means.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GpuType:
    """A GPU model and the smallest machine per cloud that carries it."""

    name: str
    memory_gib: int
    aws_instance_type: str
    aws_gpus_per_instance: int
    gcp_machine_type: str
    gcp_accelerator: str
    gcp_gpus_per_machine: int


GPU_TYPES: dict[str, GpuType] = {
    gpu.name: gpu
    for gpu in (
        GpuType("nvidia-t4", 16, "g4dn.xlarge", 1, "n1-standard-8", "nvidia-tesla-t4", 1),
        GpuType("nvidia-a10g", 24, "g5.xlarge", 1, "g2-standard-8", "nvidia-l4", 1),
        GpuType("nvidia-l4", 24, "g6.xlarge", 1, "g2-standard-8", "nvidia-l4", 1),
        GpuType("nvidia-l40s", 48, "g6e.xlarge", 1, "g2-standard-8", "nvidia-l4", 1),
        GpuType("nvidia-a100-40gb", 40, "p4d.24xlarge", 8, "a2-highgpu-1g", "nvidia-tesla-a100", 1),
        GpuType(
            "nvidia-a100-80gb", 80, "p4de.24xlarge", 8, "a2-ultragpu-1g", "nvidia-a100-80gb", 1
        ),
        GpuType("nvidia-h100-80gb", 80, "p5.48xlarge", 8, "a3-highgpu-1g", "nvidia-h100-80gb", 1),
    )
}
"""Known GPU types. A10G and L40S have no GCP twin; GCP pricing falls back to the L4 machine."""


def gpu_type(name: str) -> GpuType:
    """Look up a GPU type by its spec name; raises KeyError for an unknown name."""
    return GPU_TYPES[name]
