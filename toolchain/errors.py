"""User-facing errors: what is wrong, where, and what to do about it.

Every mistake a user can make (a bad cluster.yaml, a missing overlay, a template
error) is raised as a `WWError`. The CLI and the doit entry point turn it into a
message on stderr and an exit code; a traceback is shown only with --debug.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Loc:
    """A place in a source file, 1-based like editors show it."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class WWError(Exception):
    """An error the user can fix: message, optional location, optional hint."""

    def __init__(self, message: str, *, loc: Loc | None = None, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.loc = loc
        self.hint = hint

    def __str__(self) -> str:
        where = f"{self.loc}: " if self.loc else ""
        text = f"{where}error: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


def report(err: WWError) -> int:
    """Print `err` for a human and return the exit code to use."""
    print(f"wwstatic: {err}", file=sys.stderr)
    return 2
