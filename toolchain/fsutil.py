"""Atomic file writes: a reader sees the old file or the new one, never a part."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def atomic_open(path: Path, mode: int = 0o644) -> Iterator[BinaryIO]:
    """Write to a temporary file beside `path`, renamed over it on success.

    The temporary name starts with a dot and ends with `.tmp` so web server
    rules and cleanup can tell it apart; on error it is removed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_atomic(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    if isinstance(data, str):
        data = data.encode()
    with atomic_open(path, mode) as f:
        f.write(data)


def copy_atomic(src: Path, dst: Path, mode: int = 0o644) -> None:
    """Copy a file's bytes (following symlinks) atomically."""
    with src.open("rb") as fin, atomic_open(dst, mode) as fout:
        while chunk := fin.read(1 << 20):
            fout.write(chunk)
