"""The simulator's one error for bad input: which input, what is wrong, how to fix it."""

from __future__ import annotations


class SimulateError(ValueError):
    """A simulation input is unusable; the message names the input and the fix."""

    def __init__(self, where: str, message: str) -> None:
        self.where = where
        self.message = message
        super().__init__(f"{where}: {message}")
