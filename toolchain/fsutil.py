"""Atomic file writes: a reader sees the old file or the new one, never a part."""

from __future__ import annotations

import contextlib
import errno
import grp
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from toolchain.errors import WWError

# Write failures the build cannot work around, and what the user can do. The
# files being served are never touched by a failed write (atomic_open), so
# each hint can say the previous output still serves.
_SERVING = "the files being served are unchanged"
WRITE_HINTS = {
    errno.ENOSPC: f"free space on the file system of output/, then build again; {_SERVING}",
    errno.EDQUOT: f"free space within your disk quota, then build again; {_SERVING}",
    errno.EROFS: f"output/ is on a read-only file system: mount it read-write, then build again; {_SERVING}",
    errno.EACCES: f"build as the owner of output/ or fix its permissions (chown/chmod), then build again; "
                  f"{_SERVING}",
    errno.EPERM: f"the file or its directory may be immutable (lsattr; chattr -i) or owned by someone "
                 f"else; {_SERVING}",
}


def write_error(exc: OSError, path: Path | str | None = None) -> WWError | None:
    """A clear WWError for a file operation that failed for want of space or
    permission, else None.

    The file named is `path` when given (a write() to an open file does not
    carry its name, and a temporary file's name means nothing to a user), else
    the one the system call was about.
    """
    if exc.errno not in WRITE_HINTS:
        return None
    file = path if path is not None else exc.filename
    what = os.strerror(exc.errno).lower()
    return WWError(f"cannot write {file}: {what}" if file is not None else f"cannot write: {what}",
                   hint=WRITE_HINTS[exc.errno])


def make_dirs(path: Path, mode: int = 0o755) -> None:
    """`mkdir -p`, each directory it creates `mode` whatever the umask.

    nginx and the TFTP server run as other users: under a umask of 077 a plain
    mkdir would make output/ and everything under it unreadable to them (files
    get their mode explicitly, see atomic_open).
    """
    if path.is_dir():
        return
    make_dirs(path.parent, mode)
    try:
        path.mkdir()
    except FileExistsError:
        return
    os.chmod(path, mode)


# How every temporary file and directory a build makes is named: a dot (web server
# rules serve no dot-file) and `.tmp`. gc.remove_temporaries() finds what a killed
# build left by this name, so anything making a temporary goes through these.
TEMP_PREFIX = "."
TEMP_SUFFIX = ".tmp"


def is_temporary(name: str) -> bool:
    """Whether a file name is one temp_dir() or atomic_open() makes."""
    return name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX) and len(name) > len(TEMP_SUFFIX)


def temp_dir(parent: Path | None, what: str) -> tempfile.TemporaryDirectory[str]:
    """A scratch directory in `parent`, removed when done (or by gc after a kill)."""
    return tempfile.TemporaryDirectory(dir=parent, prefix=f"{TEMP_PREFIX}{what}-", suffix=TEMP_SUFFIX)


@contextlib.contextmanager
def atomic_open(path: Path, mode: int = 0o644, gid: int | None = None) -> Iterator[BinaryIO]:
    """Write to a temporary file beside `path`, renamed over it on success.

    The temporary name starts with a dot and ends with `.tmp` so web server
    rules and cleanup can tell it apart; on error it is removed. It is created
    0600 and gets `mode` (and group `gid`) only when complete, so a secret is
    never readable by others, not even while it is written.
    """
    try:
        make_dirs(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    except OSError as exc:
        raise (write_error(exc, path) or exc) from None
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            if gid is not None:
                os.fchown(f.fileno(), -1, gid)
            os.fchmod(f.fileno(), mode)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        # Not an error about another file (a source being read): that one names itself.
        if isinstance(exc, OSError) and exc.filename in (None, tmp) and (err := write_error(exc, path)):
            raise err from None
        raise


def write_atomic(path: Path, data: bytes | str, mode: int = 0o644, gid: int | None = None) -> None:
    if isinstance(data, str):
        data = data.encode()
    with atomic_open(path, mode, gid) as f:
        f.write(data)


def write_if_changed(path: Path, data: bytes | str) -> bool:
    """write_atomic() unless `path` already holds `data` (its mtime then stays); True if written."""
    if isinstance(data, str):
        data = data.encode()
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    write_atomic(path, data)
    return True


def copy_atomic(src: Path, dst: Path, mode: int = 0o644) -> None:
    """Copy a file's bytes (following symlinks) atomically."""
    with src.open("rb") as fin, atomic_open(dst, mode) as fout:
        while chunk := fin.read(1 << 20):
            fout.write(chunk)


# --- secrets in output/ -------------------------------------------------------

SECRET_MODE = 0o640
WEB_GROUPS = ("www-data", "nginx", "http")  # Debian, Fedora/EL, Arch


def web_server_gid() -> int | None:
    """The group nginx's workers run as: $WWSTATIC_WEB_GROUP, else the distribution's.

    None when there is none (a build machine without a web server): then a
    secret file is readable by its owner alone, until it is copied to a server.
    """
    names = [os.environ["WWSTATIC_WEB_GROUP"]] if os.environ.get("WWSTATIC_WEB_GROUP") else WEB_GROUPS
    for name in names:
        with contextlib.suppress(KeyError):
            return grp.getgrnam(name).gr_gid
    return None


def publish_mode(secret: bool) -> tuple[int, int | None]:
    """(mode, gid) for a file in output/: a file holding a node's secrets is
    0640 and group of the web server (never world-readable); others are 0644.

    Use as `write_cpio(..., mode=mode, gid=gid)` or `write_atomic(path, data, *publish_mode(s))`.
    """
    if not secret:
        return 0o644, None
    gid = web_server_gid()
    return (SECRET_MODE, gid) if gid is not None else (0o600, None)
