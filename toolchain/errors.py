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


class WWErrors(WWError):
    """Several errors found in one pass (all mistakes of a file, in file order)."""

    def __init__(self, errors: list[WWError]) -> None:
        # The same mistake made once in a profile shows up for every node using
        # it: report it once, saying how many more it affects.
        seen: dict[tuple[str, int, int, str], WWError] = {}
        extra: dict[tuple[str, int, int, str], int] = {}
        for e in errors:
            key = (e.loc.file, e.loc.line, e.loc.col, e.hint) if e.loc else ("", 0, 0, e.message)
            if key in seen:
                extra[key] = extra.get(key, 0) + 1
            else:
                seen[key] = e
        for key, n in extra.items():
            seen[key].message += f" (and {n} more like it)"
        self.errors = [seen[k] for k in sorted(seen)]
        first = self.errors[0]
        super().__init__(first.message, loc=first.loc, hint=first.hint)

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


def report(err: WWError) -> int:
    """Print `err` (every error it holds) for a human; return the exit code to use."""
    for one in err.errors if isinstance(err, WWErrors) else [err]:
        print(f"wwstatic: {one}", file=sys.stderr)
    if isinstance(err, WWErrors) and len(err.errors) > 1:
        print(f"wwstatic: {len(err.errors)} errors; nothing was built", file=sys.stderr)
    return 1
