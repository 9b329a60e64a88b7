"""doit run in the test's own process: hundreds of builds in a test, without a
Python start-up and the package's imports for each."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path

from doit.cmd_base import ModuleTaskLoader
from doit.doit_cmd import DoitMain


def _forget() -> None:
    """Clear what the build works out once per run (functools caches of toolchain.build)."""
    for name, module in list(sys.modules.items()):
        if name.startswith("toolchain.build") and module is not None:
            for value in vars(module).values():
                if callable(getattr(value, "cache_clear", None)):
                    value.cache_clear()


def build(project: Path, *tasks: str) -> tuple[int, str]:
    """`doit [tasks]` in `project`: its exit code and what it printed (nothing reaches the terminal)."""
    old = Path.cwd()
    out = io.StringIO()
    os.chdir(project)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            # Imported here, with `project` as the directory: the task module reads it.
            from toolchain.build import tasks as creators
            _forget()
            try:
                code = DoitMain(ModuleTaskLoader(vars(creators))).run(list(tasks))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.chdir(old)
        _forget()
    return code, out.getvalue()
