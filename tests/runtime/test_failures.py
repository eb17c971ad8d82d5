"""Whose fault a model failure is, and the one line a client or a log gets about it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inferstack.runtime.batcher import ModelError
from inferstack.runtime.failures import SUMMARY_CHARS, summary, transient
from inferstack.runtime.model_process import ModelProcessDiedError, ModelProcessError
from inferstack.runtime.models import load_model
from inferstack.runtime.server.routes import ModelUnavailableError
from tests.runtime import embedding_model


def test_a_torchscript_error_becomes_its_last_line_without_source_or_paths(tmp_path: Path):
    path = embedding_model.build(tmp_path / "embedder.pt")
    model = load_model(str(path))
    bad = np.array([[1, 2, embedding_model.OUT_OF_RANGE, 3]], dtype=np.int64)
    with pytest.raises(RuntimeError) as caught:
        model.predict_batch({"tokens": bad})
    assert "Traceback of TorchScript" in str(caught.value)  # What a client used to receive.
    assert str(tmp_path) in str(caught.value) or ".py" in str(caught.value)
    assert summary(caught.value) == "RuntimeError: index out of range in self"
    assert not transient(caught.value)


def test_the_model_process_text_keeps_the_childs_exception_type():
    carried = ModelProcessError(
        "RuntimeError: The following operation failed in the TorchScript interpreter.\n"
        "Traceback of TorchScript (most recent call last):\n"
        '  File "/opt/models/m.py", line 3, in forward\n'
        "IndexError: index 7 is out of bounds"
    )
    assert summary(carried) == "IndexError: index 7 is out of bounds"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("cannot open /srv/models/weights.bin for reading", "<path> for reading"),
        ("bad shape in C:\\models\\m.pt", "bad shape in <path>"),
        ("ratio 3/4 is fine and so is 'a/b'", "ratio 3/4 is fine and so is 'a/b'"),
    ],
)
def test_paths_are_removed_and_other_slashes_kept(message: str, expected: str):
    assert summary(ValueError(message)).endswith(expected)


def test_a_long_message_is_cut():
    text = summary(ValueError("x" * 10_000))
    assert len(text) == SUMMARY_CHARS
    assert text.endswith("...")


@pytest.mark.parametrize(
    "error",
    [
        MemoryError(),
        RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        ModelProcessError("OutOfMemoryError: CUDA out of memory."),
        ModelProcessError(
            "RuntimeError: [enforce fail at alloc_cpu.cpp:83] DefaultCPUAllocator: "
            "can't allocate memory: you tried to allocate 1 bytes. Out of memory"
        ),
        ModelProcessDiedError("the model process 12 exited (code -9) during a batch"),
        ModelUnavailableError("the model process of 'm' exited"),
    ],
)
def test_out_of_memory_and_a_lost_process_are_transient(error: Exception):
    assert transient(error)


def test_transient_follows_the_cause():
    wrapped = ModelError("model 'm' failed on a batch of 3 rows")
    wrapped.__cause__ = ModelProcessDiedError("exited")
    assert transient(wrapped)
    assert not transient(ModelError("model 'm' returned 2 rows for output 'y'"))
