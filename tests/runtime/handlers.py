"""Python handler classes that the tests serve through `package.module:Class` URIs."""

from __future__ import annotations

import os

import numpy as np

from inferstack.runtime.tensors import TensorSpec

GATE_VALUE = 42.0
"""An input row starting with this value blocks the gated handler until the test opens it."""


class Doubler:
    """`y = 2x` plus the row sum, declared with plain dicts as a user would."""

    inputs = [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}]
    outputs = [
        {"name": "y", "datatype": "FP32", "shape": [-1, 3]},
        {"name": "total", "datatype": "FP32", "shape": [-1]},
    ]

    def __init__(self) -> None:
        self.loaded = False

    def load(self) -> None:
        self.loaded = True

    def predict_batch(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        assert self.loaded, "predict_batch before load"
        x = inputs["x"]
        return {"y": x * 2, "total": x.sum(axis=1)}


class Gated:
    """Echoes its input; a batch whose first value is GATE_VALUE announces itself on the
    `INFERSTACK_TEST_ENTERED` FIFO and then blocks reading the `INFERSTACK_TEST_GATE` FIFO.

    Lets a test hold a request inside the model of a real server process without sleeping.
    """

    inputs = [TensorSpec("input", "FP32", [-1, 4])]
    outputs = [TensorSpec("output", "FP32", [-1, 4])]

    def load(self) -> None:
        self.entered = os.environ["INFERSTACK_TEST_ENTERED"]
        self.gate = os.environ["INFERSTACK_TEST_GATE"]

    def predict_batch(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = inputs["input"]
        if x[0, 0] == GATE_VALUE:
            with open(self.entered, "wb") as entered:
                entered.write(b"1")
            with open(self.gate, "rb") as gate:
                gate.read(1)
        return {"output": x}


class NoPredict:
    """A handler that forgot predict_batch."""

    inputs = [TensorSpec("x", "FP32", [-1])]
    outputs = [TensorSpec("y", "FP32", [-1])]

    def load(self) -> None:
        pass


class Picky:
    """Echoes `x`, but raises on a batch whose first value is negative (a model bug)."""

    inputs = [TensorSpec("x", "FP32", [-1, 2])]
    outputs = [TensorSpec("y", "FP32", [-1, 2])]

    def load(self) -> None:
        pass

    def predict_batch(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = inputs["x"]
        if x[0, 0] < 0:
            raise ValueError(f"negative input {x[0, 0]}")
        return {"y": x}


class Strings:
    """BYTES in, BYTES and INT64 out: object arrays have to cross process boundaries too."""

    inputs = [TensorSpec("text", "BYTES", [-1])]
    outputs = [TensorSpec("upper", "BYTES", [-1]), TensorSpec("length", "INT64", [-1])]

    def load(self) -> None:
        pass

    def predict_batch(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        text = inputs["text"]
        return {
            "upper": np.array([item.upper() for item in text], dtype=np.object_),
            "length": np.array([len(item) for item in text], dtype=np.int64),
        }


class Pid:
    """Answers each row with the id of the process it ran in."""

    inputs = [TensorSpec("x", "FP32", [-1])]
    outputs = [TensorSpec("pid", "INT64", [-1])]

    def load(self) -> None:
        pass

    def predict_batch(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"pid": np.full(len(inputs["x"]), os.getpid(), dtype=np.int64)}


CRASH_VALUE = 66.0
"""A row starting with this value kills the `Crasher` handler's process."""
BREAK_RELOAD_ENV = "INFERSTACK_TEST_CRASHER_BREAK_RELOAD"
"""When set to a path: a crash creates that file, and a load while it exists fails, so the model
process cannot be restarted after its first crash."""


class Crasher:
    """`output = 2 * input` for rows of four, except that a row starting with CRASH_VALUE kills
    the process (as a segfault or the OOM killer would: no exception, no cleanup)."""

    inputs = [TensorSpec("input", "FP32", [-1, 4])]
    outputs = [TensorSpec("output", "FP32", [-1, 4])]

    def load(self) -> None:
        marker = os.environ.get(BREAK_RELOAD_ENV)
        if marker and os.path.exists(marker):
            raise RuntimeError("this model cannot be loaded again after its crash")

    def predict_batch(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = inputs["input"]
        if bool(np.any(batch[:, 0] == CRASH_VALUE)):
            marker = os.environ.get(BREAK_RELOAD_ENV)
            if marker:
                open(marker, "w").close()  # noqa: SIM115 - an empty marker file.
            os._exit(3)
        return {"output": batch * 2}
