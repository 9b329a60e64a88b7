"""Removing blobs no pointer names any more, after a grace period.

A node may be half-way through its boot with an old iPXE script when a build
replaces it: the script still names the old kernel and initrds, so they must
stay until no boot that started before the build can still ask for them. Each
file no longer named is recorded with the time it was first seen unnamed, and
removed once it has stayed unnamed for the whole grace period. A file that is
named again (a change undone) leaves the list.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .fsutil import write_atomic

DEFAULT_GRACE = 3600  # seconds; a boot storm of big images can take many minutes


@dataclass(frozen=True)
class GcResult:
    pending: int    # unnamed, waiting for the grace period
    removed: list[str]


def collect(http: Path, files: Iterable[str], named: set[str], state: Path, grace: float,
            now: float | None = None) -> GcResult:
    """Record unnamed files among `files` (relative to `http`) and remove expired ones."""
    now = time.time() if now is None else now
    try:
        since: dict[str, float] = json.loads(state.read_text())
    except (FileNotFoundError, ValueError):
        since = {}
    keep: dict[str, float] = {}
    removed: list[str] = []
    for rel in sorted(files):
        if rel in named:
            continue
        # A dot-file is a temporary file of a build that was killed: nobody reads it.
        limit = min(grace, 600) if rel.rpartition("/")[2].startswith(".") else grace
        first = since.get(rel, now)
        if now - first >= limit:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(http / rel)
            removed.append(rel)
        else:
            keep[rel] = first
    for rel in removed:
        # Drop directories left empty (a removed node's).
        parent = (http / rel).parent
        while parent != http and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    write_atomic(state, json.dumps(keep, sort_keys=True, indent=0))
    return GcResult(len(keep), removed)


def next_due(state: Path, grace: float) -> float | None:
    """When the earliest pending file expires, or None if nothing is pending."""
    try:
        since: dict[str, float] = json.loads(state.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return min(since.values()) + grace if since else None
