"""The one way wwstatic runs a program: log the argv, raise on failure."""

from __future__ import annotations

import logging
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from .errors import WWError

log = logging.getLogger("wwstatic")


def run(
    argv: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    capture: bool = False,
    hint: str = "",
    env: Mapping[str, str] | None = None,
) -> str:
    """Run argv (with `env` as its whole environment, if given); return its stdout when
    `capture`; raise WWError if it fails."""
    args = [str(a) for a in argv]
    log.debug("run: %s", shlex.join(args))
    try:
        done = subprocess.run(
            args,
            cwd=cwd,
            env=None if env is None else dict(env),
            check=False,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE,
            text=True,
        )
    except FileNotFoundError:
        raise WWError(f"{args[0]} is not installed", hint=hint) from None
    if done.returncode != 0:
        tail = (done.stderr or "").strip().splitlines()[-5:]
        raise WWError(
            f"{shlex.join(args)} failed with exit code {done.returncode}"
            + ("".join(f"\n  | {line}" for line in tail)),
            hint=hint,
        )
    return done.stdout if capture else ""
