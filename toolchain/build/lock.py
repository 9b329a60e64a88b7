"""One build at a time per output/: a lock file, waited for with a message."""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path
from typing import TextIO

from toolchain.errors import report
from toolchain.fsutil import make_dirs, write_error

# The locks this process holds, by output directory: an in-process caller (the
# tests) may build several projects, each under its own lock.
_held: dict[Path, TextIO] = {}


def held(out: Path) -> bool:
    """Whether this process holds the build lock of `out`."""
    return out.absolute() in _held


def acquire(out: Path, wait: bool = True) -> None:
    """Hold output/.lock until release() or the end of this process; say so if another build has it.

    flock is released by the kernel when the holder dies, even by SIGKILL, so a
    killed build never leaves a stale lock behind.
    """
    key = out.absolute()
    if (had := _held.get(key)) is not None:
        try:
            same = os.stat(key / ".lock").st_ino == os.fstat(had.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return
        # output/ was removed and made again (a clean build in the same process):
        # a lock on the removed file guards nothing.
        had.close()
        del _held[key]
    try:
        make_dirs(out)
        f = (out / ".lock").open("a+")
    except OSError as exc:
        # An output/ the build cannot write: say so before doit tries its store there.
        if (err := write_error(exc, out.absolute() / ".lock")) is None:
            raise
        sys.exit(report(err))
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "?"
        if not wait:
            f.close()
            sys.exit(f"wwstatic: another build (PID {holder}) is running in {out}; "
                     "try again when it has finished")
        print(f"wwstatic: another build (PID {holder}) is running in {out}; waiting for it",
              file=sys.stderr, flush=True)
        fcntl.flock(f, fcntl.LOCK_EX)
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    _held[key] = f


def release(out: Path) -> None:
    """Let the next build of `out` in: closing the file drops the flock."""
    f = _held.pop(out.absolute(), None)
    if f is not None:
        f.close()
