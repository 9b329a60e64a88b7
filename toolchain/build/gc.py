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
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolchain.build import lock
from toolchain.fsutil import is_temporary, write_atomic

DEFAULT_GRACE = 3600  # seconds; a boot storm of big images can take many minutes
# A temporary file is nobody's once its writer is gone; this long covers a slow
# writer that holds no lock (`wwstatic preview` generating a host key).
TEMP_GRACE = 600


@dataclass(frozen=True)
class GcResult:
    pending: int    # unnamed, waiting for the grace period
    removed: list[str]


def _load(state: Path) -> dict[str, Any]:
    try:
        doc = json.loads(state.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def collect(http: Path, named: set[str], state: Path, grace: float,
            scan: Callable[[], Iterable[str]], written: Iterable[str] = (),
            now: float | None = None, temporaries_due: float | None = None) -> GcResult:
    """Record files no longer named and remove those unnamed for `grace` seconds.

    The files to look at are those the last build named and this one does not,
    plus those already waiting and those builds `written` since the last
    collection (a killed build may have left them unnamed); `scan()` (a walk of the served tree, which also
    finds temporary files of killed builds) runs only on the first collection
    and once per grace period, so that a one-node change does not walk 10,000
    directories.
    """
    now = time.time() if now is None else now
    doc = _load(state)
    since: dict[str, float] = doc.get("since", {})
    before = _load_named(state)
    if before is None or now - float(doc.get("scanned", 0)) >= grace or _rescan(state).exists():
        candidates = set(scan())
        scanned = now
    else:
        written = set(written)
        candidates = (set(before) - named) | set(since) | written | _beside(http, written)
        scanned = float(doc.get("scanned", 0))
    _rescan(state).unlink(missing_ok=True)
    keep: dict[str, float] = {}
    removed: list[str] = []
    for rel in sorted(candidates - named):
        if not (http / rel).exists():
            continue
        # A temporary file of a build that was killed: nobody reads it.
        limit = min(grace, TEMP_GRACE) if is_temporary(rel.rpartition("/")[2]) else grace
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
    names = sorted(named)
    # Killed between these writes, the next collection looks at more files, never fewer.
    _summary(state).unlink(missing_ok=True)
    write_atomic(state, json.dumps({"since": keep, "scanned": scanned}, sort_keys=True, indent=0))
    write_atomic(_named(state), "".join(f"{n}\n" for n in names))
    # What up_to_date() reads, small: the full record of 10,000 nodes takes a while to load.
    write_atomic(_summary(state), json.dumps({"key": _sorted_key(names),
                                              "first": min(keep.values()) if keep else None,
                                              "temporaries": temporaries_due}))
    return GcResult(len(keep), removed)


def _beside(http: Path, written: set[str]) -> set[str]:
    """The temporaries of `written` files (atomic_open's, beside each) a killed build left."""
    found: set[str] = set()
    for parent in {Path(rel).parent for rel in written}:
        names = {Path(rel).name for rel in written if Path(rel).parent == parent}
        with contextlib.suppress(OSError):
            for entry in os.scandir(http / parent):
                if is_temporary(entry.name) and entry.name[1:].rpartition(".")[0].rpartition(".")[0] in names:
                    found.add((parent / entry.name).as_posix())
    return found


def _rescan(state: Path) -> Path:
    # Made when a publish was cut short: its pointers' temporaries are known only to a walk.
    return state.with_name(state.name + ".rescan")


def rescan(state: Path) -> None:
    """Make the next collection walk the whole served tree."""
    _rescan(state).touch()


def _summary(state: Path) -> Path:
    return state.with_name(state.name + ".summary")


def _named(state: Path) -> Path:
    # One path a line, not JSON: 40,000 names at 10,000 nodes load in milliseconds.
    return state.with_name(state.name + ".named")


def _load_named(state: Path) -> set[str] | None:
    try:
        return set(_named(state).read_text().split("\n")) - {""}
    except FileNotFoundError:
        return None


def unpend(state: Path, named: set[str]) -> None:
    """Forget the waiting time of files about to be named again (call before pointers are written).

    Otherwise a build killed between writing its pointers and collecting would
    leave them waiting since an older build, and a later collection could remove
    them before a node that read those pointers is done with them. They are kept
    among the files last named, so a collection that finds them unnamed again
    records them afresh, even if this build is killed before it publishes.
    """
    summary = _load(_summary(state))
    if summary and summary.get("first") is None:
        return  # nothing waits: nothing to forget (and no need to read the whole record)
    doc = _load(state)
    since: dict[str, float] = doc.get("since", {})
    again = [k for k in since if k in named]
    if again:
        _summary(state).unlink(missing_ok=True)  # makes the next build collect
        with _named(state).open("a") as f:
            f.write("".join(f"{k}\n" for k in again))
        doc["since"] = {k: v for k, v in since.items() if k not in named}
        write_atomic(state, json.dumps(doc, sort_keys=True, indent=0))


def _sorted_key(names: list[str]) -> str:
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


def named_key(names: Iterable[str]) -> str:
    return _sorted_key(sorted(names))


def up_to_date(state: Path, named: Iterable[str], grace: float, now: float | None = None) -> bool:
    """Whether collecting now would change nothing: the same files are named as at the
    last collection (asked of gc's own record, not of doit's store, which a killed
    build may not have saved), no waiting file is due, and no temporary file a
    killed build left outside the served tree is."""
    doc = _load(_summary(state))
    if doc.get("key") != named_key(named) or _rescan(state).exists():
        return False
    now = time.time() if now is None else now
    first = doc.get("first")
    temporaries = doc.get("temporaries")
    if temporaries is not None and float(temporaries) <= now:
        return False
    return first is None or float(first) + grace > now


def served_files(http: Path, dirs: Iterable[str]) -> Iterable[str]:
    """Files under the given directories of output/http, relative to it."""
    for top in dirs:
        for dirpath, _dirnames, filenames in os.walk(http / top):
            rel = Path(dirpath).relative_to(http).as_posix()
            for f in filenames:
                yield f"{rel}/{f}"


def remove_temporaries(out: Path, roots: Iterable[Path], grace: float, now: float | None = None,
                       skip: Iterable[Path] = ()) -> tuple[list[Path], float | None]:
    """Remove the temporary files and directories (fsutil.is_temporary) under `roots`
    (but not under `skip`) that a killed process left: those unchanged for
    min(grace, TEMP_GRACE) seconds.

    Only the holder of `out`'s build lock does so, as no other build can be
    writing them then; called without it, this removes nothing. Returns what it
    removed, and when the oldest of those it left (younger) falls due.
    """
    if not lock.held(out):
        return [], None
    now = time.time() if now is None else now
    limit = min(grace, TEMP_GRACE)
    removed: list[Path] = []
    due: float | None = None
    skipped = {s.absolute() for s in skip}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            base = Path(dirpath)
            dirnames[:] = [d for d in dirnames if (base / d).absolute() not in skipped]
            for name in [*dirnames, *filenames]:
                path = base / name
                if not is_temporary(name):
                    continue
                try:
                    mtime = path.lstat().st_mtime
                    if now - mtime < limit:
                        due = min(due, mtime + limit) if due is not None else mtime + limit
                        continue
                    if name in dirnames:
                        shutil.rmtree(path)
                    else:
                        path.unlink()
                except FileNotFoundError:
                    continue
                removed.append(path)
            dirnames[:] = [d for d in dirnames if not is_temporary(d)]
    return removed, due
