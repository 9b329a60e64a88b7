"""Digests that name blobs and decide what is up to date."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).parent


def digest(*parts: str) -> str:
    """sha256 of the parts, each ended by NUL so ("ab", "c") differs from ("a", "bc")."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()


@cache
def code_digest(*globs: str) -> str:
    """A digest of the toolchain files matching `globs` (relative to the package).

    Part of every blob name, so a wwstatic upgrade that changes how bytes are made
    also changes the names, and a served name never changes its bytes. Paths are
    relative, so the checkout's location does not matter.
    """
    h = hashlib.sha256()
    for path in sorted({p for g in globs for p in PACKAGE.glob(g) if p.is_file()}):
        if "__pycache__" in path.parts:
            continue
        h.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()


# What each kind of output is made by.
def archive_code() -> str:
    return code_digest("archive.py", "fsutil.py")


def image_code() -> str:
    return digest(archive_code(), code_digest("image*.py", "demo.py"))


def overlay_code() -> str:
    return digest(archive_code(), code_digest("overlay*.py", "template*.py", "model.py"))
