"""doit's dependency store (output/.doit.db) on a full or read-only disk.

doit keeps what it learns in memory and writes the store once, at the end of
a run; it also deletes a failed task's record as the task fails. When the
disk is full or read-only, sqlite raises and doit prints a traceback. The
store only says what is up to date: a store left unsaved is what a build
killed before its end leaves (sqlite's journal keeps the file whole), and the
next build redoes the work it does not record (tests/build/test_crash.py). So a
failed save becomes one clear message and a failed run, and a failed delete
is ignored: the failed task's old record does not match its new inputs, so
the task runs again next time anyway.
"""

from __future__ import annotations

import contextlib
import sqlite3
from typing import Any

from doit.dependency import SqliteDB

from toolchain.errors import WWError, report

_installed: list[bool] = []
_failed: list[str] = []


def task_failed(message: str) -> None:
    """A task failed with its own message: an unsaved store is then not worth a second one."""
    _failed.append(message)


def install() -> None:
    """Make doit's sqlite store fail without a traceback (once per process)."""
    if _installed:
        return
    _installed.append(True)
    dump, remove = SqliteDB.dump, SqliteDB.remove

    def safe_dump(self: Any) -> None:
        try:
            dump(self)
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

    def safe_remove(self: Any, task_id: str) -> None:
        with contextlib.suppress(sqlite3.OperationalError):
            remove(self, task_id)

    SqliteDB.dump = safe_dump
    SqliteDB.remove = safe_remove
