"""Load a cluster.yaml written by a test, and look at the errors it gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolchain.errors import Loc, WWError, WWErrors
from toolchain.model.load import load_cluster
from toolchain.model.types import Cluster


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, text: str, keep_sources: bool = False) -> Cluster:
    return load_cluster(write(tmp_path, text), keep_sources=keep_sources)


def errors_of(tmp_path: Path, text: str) -> list[WWError]:
    """Load `text`, which must fail; every error reported, in file order."""
    path = write(tmp_path, text)
    with pytest.raises(WWError) as info:
        load_cluster(path)
    err = info.value
    return list(err.errors) if isinstance(err, WWErrors) else [err]


def show(errors: list[WWError]) -> str:
    return "\n".join(str(e) for e in errors)


def expect_error(tmp_path: Path, text: str, line: int, col: int, message: str,
                 *, single: bool = True) -> WWError:
    """Load `text`; it must fail at line:col with `message` in the message and some hint.

    With `single`, that must be the only error reported (the test is about one
    mistake); without, other errors may come along with it.
    """
    errors = errors_of(tmp_path, text)
    file = str(tmp_path / "cluster.yaml")
    here = [e for e in errors if e.loc == Loc(file, line, col) and message in e.message]
    assert len(here) == 1, f"no error at {line}:{col} with {message!r}; got:\n{show(errors)}"
    err = here[0]
    assert err.hint, f"no hint in: {err}"
    assert f"{file}:{line}:{col}: error: " in str(err)
    assert f"hint: {err.hint}" in str(err)
    if single:
        assert len(errors) == 1, f"one mistake, several errors:\n{show(errors)}"
    return err
