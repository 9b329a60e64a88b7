"""doit's dependency store (output/.doit.db): one build at a time, and clear errors on a bad disk.

How doit 0.36 picks a store: `DOIT_CONFIG["backend"]` is a *name*, looked up
in `DoitCmdBase.get_backends()`, which knows dbm, json and sqlite3 plus the
plugins of category BACKEND: those of a `[BACKEND]` section of the project's
doit.cfg/pyproject.toml, and the `doit.BACKEND` entry points of installed
packages. A class cannot be given directly. wwstatic's pyproject.toml
declares the entry point `wwstatic` -> `Store`, so every project gets it from
the installed package, with no configuration file of its own, and with
`python -m doit` as with `wwstatic build`. A plain `sqlite3` project of
someone else's in the same environment is not affected, unlike a patch.

The lock: doit opens the store (`Dependency(...)` in `DoitCmdBase.execute`)
after importing dodo.py and before it calls any task creator, so opening the
store is the first thing a build does, before it writes anything (the
creators already write the model cache in output/.state). The store takes
output/.lock there and holds it until it saves the store, doit's last step
(or the process ends). This holds for
every doit command that opens the store: `doit list` and `doit info` run the
creators too, so they wait for a running build as well (or stop at once with
WWSTATIC_LOCK_WAIT=0) rather than read a half-written output/. `doit help`
opens no store and takes no lock; importing the task module does nothing.

On a full or read-only disk: doit keeps what it learns in memory and writes
the store once, at the end of a run; it also deletes a failed task's record
as the task fails. sqlite then raises and doit would print a traceback. The
store only says what is up to date: a store left unsaved is what a build
killed before its end leaves (sqlite's journal keeps the file whole), and the
next build redoes the work it does not record (tests/build/test_crash.py). So
a failed save becomes one clear message and a failed run, and a failed
delete is ignored: the failed task's old record does not match its new
inputs, so the task runs again next time anyway.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Any

from doit.dependency import SqliteDB

from toolchain.build import lock
from toolchain.errors import WWError, report

# The name DOIT_CONFIG selects; pyproject.toml's [project.entry-points."doit.BACKEND"] maps it here.
BACKEND = "wwstatic"
# WWSTATIC_LOCK_WAIT=0: stop at once when another build holds the lock, instead of waiting.
LOCK_WAIT = "WWSTATIC_LOCK_WAIT"

_failed: list[str] = []


def task_failed(message: str) -> None:
    """A task failed with its own message: an unsaved store is then not worth a second one."""
    _failed.append(message)


class Store(SqliteDB):  # type: ignore[misc]  # doit ships no type information
    """doit's sqlite3 store, opened under the build lock, failing without a traceback."""

    desc = "wwstatic: sqlite3 under output/.lock, clear errors on a full or read-only disk"

    def __init__(self, name: str, codec: Any, *, module_name: str | None = None) -> None:
        lock.acquire(Path(name).parent, wait=os.environ.get(LOCK_WAIT, "1") != "0")
        super().__init__(name, codec, module_name=module_name)

    def dump(self) -> None:
        """Save the store, the last thing doit does in a run; then let the next build in."""
        try:
            super().dump()
        except sqlite3.OperationalError as exc:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            # doit.runner.finish() calls this last: exit here. When a task
            # failed (on the same full disk, most likely), its message is the one.
            if _failed:
                raise SystemExit(1) from None
            raise SystemExit(report(WWError(
                f"cannot save the build's state in {self.name}: {exc}",
                hint="free space on (or make writable) the file system of output/, then build again; "
                     "the next build redoes what this one could not record"))) from None
        finally:
            # A build run in-process (tests, benchmarks) may be followed by another.
            lock.release(Path(self.name).parent)

    def remove(self, task_id: str) -> None:
        with contextlib.suppress(sqlite3.OperationalError):
            super().remove(task_id)
