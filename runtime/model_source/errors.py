"""What a fetch can end with: a retryable cause, a final one, and the error a command reports."""

from __future__ import annotations

from inferstack.runtime.models import ModelLoadError


class ModelFetchError(ModelLoadError):
    """A model URI that could not be fetched: the message names the URI (redacted), the cause
    and the fix. A ModelLoadError, so every command reports it as a model that cannot load."""


class FetchFailure(Exception):
    """One attempt's failure as a backend reports it: the cause, and the fix when there is one."""

    transient: bool = False

    def __init__(self, cause: str, fix: str | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.fix = fix


class TransientFailure(FetchFailure):
    """Worth another attempt: a connection error, throttling, a server error."""

    transient = True


class FinalFailure(FetchFailure):
    """Waiting will not change it: access denied, no such object, no credentials."""
