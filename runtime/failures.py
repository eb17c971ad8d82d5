"""What a model failure means for its callers: whose fault it is, and one line that says so.

A model that raises on a batch may have been given one bad row (a token id outside the
embedding's vocabulary, say) or may have failed whatever the batch held (out of memory, its
process died). The batcher re-runs a failed batch in parts to tell the two apart
(`batcher.py`); this module decides which failures are worth that, and how a failure is told to
a client or written to a log.

- `transient`: the failure is the machine's, not the input's (out of memory, a dead or lost
  model process): the callers may retry, on this replica later or on another one (503 with
  Retry-After), and re-running parts of the batch would only fail again.
- anything else the model raises may be the input's fault: the batcher isolates it.

`summary` is what a client or a log line gets: the exception's type and its last line, with
file paths removed. TorchScript errors carry the model's serialized and original source,
file paths included, in their message ("Traceback of TorchScript ..."); a client must never see
those (they name the image's layout), and a poison message must not cost a log page per attempt.
"""

from __future__ import annotations

import re
from typing import Final

SUMMARY_CHARS: Final = 300
"""Longest summary: a message longer than this is cut (a model may put a tensor in one)."""

_MEMORY_WORDS: Final = ("out of memory", "outofmemory", "cannot allocate memory")
_MEMORY_TYPES: Final = frozenset({"MemoryError", "OutOfMemoryError"})
_TYPE_PREFIX: Final = re.compile(r"^(?P<type>[A-Za-z_][\w.]*(?:Error|Exception)): ")
_PATH: Final = re.compile(r"""(?<![\w.])(?:[A-Za-z]:)?(?:/|\\)[^\s'",:()]+""")
"""An absolute path (POSIX or Windows), ended by whitespace, a quote, a colon or parentheses."""


class TransientModelError(Exception):
    """Marks a failure that is not the input's: the model process is gone or out of memory.

    The batcher raises nothing of this type itself; exceptions that subclass it (or whose cause
    does) are treated as transient by `transient`.
    """


def transient(error: BaseException) -> bool:
    """Whether `error` (or its cause) is a failure of the machine rather than of the input."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, TransientModelError | MemoryError):
            return True
        name = type(current).__name__
        text = str(current)
        first_type = _TYPE_PREFIX.match(text)
        if name in _MEMORY_TYPES or (first_type and first_type["type"] in _MEMORY_TYPES):
            return True
        lowered = _last_line(text).lower()
        if any(word in lowered for word in _MEMORY_WORDS):
            return True
        current = current.__cause__
    return False


def summary(error: BaseException) -> str:
    """One line for a client or a log: `Type: last line of the message`, paths removed.

    A message that already starts with an exception type (a model process sends its child's
    error as text) keeps that type instead of the carrier's.
    """
    text = _last_line(str(error))
    if not _TYPE_PREFIX.match(text):
        text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    text = _PATH.sub("<path>", text)
    if len(text) > SUMMARY_CHARS:
        text = text[: SUMMARY_CHARS - 3] + "..."
    return text


def _last_line(text: str) -> str:
    """The line that says what went wrong: the last non-empty one of a traceback, else the
    whole message on one line."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    if len(lines) > 1 and any(line.startswith("Traceback") for line in lines):
        return lines[-1]
    return " ".join(lines)


__all__ = ["SUMMARY_CHARS", "TransientModelError", "summary", "transient"]
