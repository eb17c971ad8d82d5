"""The one error type a user sees for bad input: a list of problems, each with its field and fix."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: where (a dotted field path), what, and how to fix it."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class SpecError(ValueError):
    """Raised before any resource exists when a spec, profile or config is unusable.

    Carries every problem found, not only the first, so one run shows the user everything to fix.
    """

    def __init__(self, problems: list[Problem], *, source: str = "spec") -> None:
        self.problems = problems
        self.source = source
        lines = "\n".join(f"  - {problem}" for problem in problems)
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"invalid {source}: {len(problems)} {noun}\n{lines}")
