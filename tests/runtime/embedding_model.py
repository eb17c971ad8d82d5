"""A small TorchScript model with an embedding, built by the tests that need one.

`tokens` INT64 [-1, 4] -> `embedding` FP32 [-1, 8]: the mean of the four tokens' embedding
vectors over a vocabulary of VOCABULARY ids. A token id outside 0..VOCABULARY-1 makes
`torch.embedding` raise inside the TorchScript interpreter ("index out of range in self", with
the model's serialized and original source, file paths included, in the message): the
per-row failure of a real user model, which the failure-isolation tests feed it.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import numpy as np

VOCABULARY: Final = 100
TOKENS: Final = 4
WIDTH: Final = 8
OUT_OF_RANGE: Final = VOCABULARY + 7
"""A token id the embedding has no row for."""
SIGNATURE: Final = {
    "inputs": [{"name": "tokens", "datatype": "INT64", "shape": [-1, TOKENS]}],
    "outputs": [{"name": "embedding", "datatype": "FP32", "shape": [-1, WIDTH]}],
}


def build(path: Path) -> Path:
    """Script the model and save it, its signature inside, at `path` (a `.pt` file)."""
    import torch

    class Embedder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            generator = torch.Generator().manual_seed(7)
            self.table = torch.nn.Embedding(VOCABULARY, WIDTH)
            with torch.no_grad():
                self.table.weight.copy_(torch.randn(VOCABULARY, WIDTH, generator=generator))

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            return self.table(tokens).mean(dim=1)

    with warnings.catch_warnings():  # TorchScript is deprecated, and what users still ship.
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(Embedder())
        torch.jit.save(
            scripted, str(path), _extra_files={"inferstack_signature.json": json.dumps(SIGNATURE)}
        )
    return path


def tokens(row: int) -> list[int]:
    """A valid row of token ids, different per `row`."""
    return [(row * 3 + offset) % VOCABULARY for offset in range(TOKENS)]


def request(row: list[int], request_id: str) -> bytes:
    """A v2 JSON request with one row of token ids."""
    document = {
        "id": request_id,
        "inputs": [{"name": "tokens", "datatype": "INT64", "shape": [1, TOKENS], "data": row}],
    }
    return json.dumps(document).encode()


def expected(path: Path, rows: Sequence[list[int]]) -> np.ndarray:
    """What the saved model answers for `rows`, computed in this process."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = torch.jit.load(str(path))
    with torch.no_grad():
        return np.asarray(model(torch.tensor(list(rows), dtype=torch.int64)).numpy())
