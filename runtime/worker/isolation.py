"""Finding the message that kills the model process: the crashed batch again, one at a time.

When the model's process dies during a batch, every message in that batch failed the same way,
and at most one of them (usually) is what killed it. Releasing them all, or retrying them
together, charges each an attempt per crash: the culprit takes its batch-mates down with it on
every delivery, until all of them are dead-lettered or the pool crash-loops. Instead the worker
restarts the dead process and runs each message of the crashed batch alone, with nothing else
in the model: the innocent ones finish, and only the one that kills the process alone is
charged a failed attempt (retried with backoff, dead-lettered at `max_attempts`).

A model that raises (rather than dies) needs no restart: the dynamic batcher itself re-runs
the failed batch in halves and fails only the requests that fail alone (`batcher.py`), for the
worker as for the server.

`ModelGate` is what makes "alone" true: batches from the dynamic batcher share the model, and a
solo run or a restart waits for them to finish and keeps new ones out until it is done.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TypeVar

import numpy as np

from inferstack.runtime.model_process import ModelProcessDiedError

T = TypeVar("T")

Outputs = Mapping[str, np.ndarray]


class ModelGate:
    """Shared use of the model by batches; exclusive use by a solo run or a restart.

    `batch` is what the dynamic batcher calls (from its worker threads); `exclusive` runs a call
    once no batch is in the model, and holds new batches back until it returned. Both block, so
    both run off the event loop.
    """

    def __init__(self, predict_batch: Callable[[dict[str, np.ndarray]], Outputs]) -> None:
        self._predict = predict_batch
        self._changed = threading.Condition()
        self._running = 0
        self._exclusive = False

    def batch(self, inputs: dict[str, np.ndarray]) -> Outputs:
        """Run one batch, unless an exclusive call holds the model: then after it."""
        with self._changed:
            self._changed.wait_for(lambda: not self._exclusive)
            self._running += 1
        try:
            return self._predict(inputs)
        finally:
            with self._changed:
                self._running -= 1
                self._changed.notify_all()

    def exclusive(self, call: Callable[[], T]) -> T:
        """Run `call` with the model to itself: no batch in it, none let in until it returns."""
        with self._changed:
            self._changed.wait_for(lambda: not self._exclusive)
            self._exclusive = True
            self._changed.wait_for(lambda: self._running == 0)
        try:
            return call()
        finally:
            with self._changed:
                self._exclusive = False
                self._changed.notify_all()


def killed_the_model(outcome: object) -> bool:
    """Whether a batcher outcome is the model's process dying (not the model raising)."""
    if not isinstance(outcome, BaseException):
        return False
    return isinstance(outcome, ModelProcessDiedError) or isinstance(
        outcome.__cause__, ModelProcessDiedError
    )


__all__ = ["ModelGate", "killed_the_model"]
