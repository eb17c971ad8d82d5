"""A handler that returns its input: isolates the HTTP stack and codec cost in the benchmarks."""

from __future__ import annotations

import numpy as np

from inferstack.runtime.tensors import TensorSpec


class Echo:
    """`output = input` for a [-1, 512] FP32 tensor, with no compute."""

    inputs = [TensorSpec("input", "FP32", [-1, 512])]
    outputs = [TensorSpec("output", "FP32", [-1, 512])]

    def load(self) -> None:
        """Nothing to load."""

    def predict_batch(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"output": inputs["input"]}
