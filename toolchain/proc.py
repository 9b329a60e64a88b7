"""The one way wwstatic runs a program: log the argv, raise on failure."""

from __future__ import annotations

import errno
import logging
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from toolchain.errors import WWError
from toolchain.fsutil import WRITE_HINTS

log = logging.getLogger("wwstatic")


class ProcError(WWError):
    """A program failed (or timed out): callers that explain failures read its stderr."""

    def __init__(self, message: str, *, hint: str, returncode: int | None, stderr: str) -> None:
        super().__init__(message, hint=hint)
        self.returncode = returncode  # None: killed after the timeout
        self.stderr = stderr


def run(
    argv: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    capture: bool = False,
    hint: str = "",
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run argv (with `env` as its whole environment, if given); return its stdout when
    `capture`; raise ProcError if it fails."""
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
            timeout=timeout,
        )
    except FileNotFoundError:
        raise WWError(f"{args[0]} is not installed", hint=hint) from None
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        raise ProcError(f"{args[0]} did not finish within {timeout:g} s", hint=hint,
                        returncode=None, stderr=err) from None
    if done.returncode != 0:
        tail = (done.stderr or "").strip().splitlines()[-5:]
        if not hint and "No space left on device" in (done.stderr or ""):
            hint = WRITE_HINTS[errno.ENOSPC]
        raise ProcError(
            f"{shlex.join(args)} failed with exit code {done.returncode}"
            + ("".join(f"\n  | {line}" for line in tail)),
            hint=hint, returncode=done.returncode, stderr=done.stderr or "",
        )
    return done.stdout if capture else ""
