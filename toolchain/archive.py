"""Reproducible cpio newc archives (the initrd format) written with libarchive.

Entries are filled in by hand instead of read from disk so the bytes depend
only on what we put in: paths sorted by the caller, inodes renumbered from 1
(64-bit inode numbers do not fit newc and break hard links, Warewulf #2091),
owners from the entry (not the building user), mtimes fixed, and no timestamp
in the gzip header.

libarchive's own gzip filter runs on one core, about half as fast as pigz on
two, and images are gigabytes: when pigz (or the zstd program) is installed,
libarchive writes the plain cpio stream into it through a pipe. Both compress
the same bytes to the same output whatever their thread count, so the archive
stays byte-identical from one build to the next.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import stat
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import libarchive
import libarchive.ffi as laffi
from libarchive.entry import ArchiveEntry
from libarchive.exception import ArchiveError

from toolchain.errors import WWError
from toolchain.fsutil import WRITE_HINTS, atomic_open
from toolchain.progress import Progress

# libarchive-c has no setters for these; bind them from the same library.
_lib = laffi.libarchive
_lib.archive_entry_set_ino64.argtypes = [ctypes.c_void_p, ctypes.c_int64]
_lib.archive_entry_set_nlink.argtypes = [ctypes.c_void_p, ctypes.c_uint]
_lib.archive_entry_set_symlink_utf8.argtypes = [ctypes.c_void_p, ctypes.c_char_p]

NEWC_MAX_SIZE = 0xFFFFFFFF  # newc stores sizes in 8 hex digits
FIXED_MTIME = 0


class Compression(StrEnum):
    GZIP = "gzip"
    ZSTD = "zstd"
    NONE = "none"


@dataclass(frozen=True)
class Entry:
    path: str                  # relative to the archive root, no leading slash
    mode: int                  # st_mode: file type and permission bits
    uid: int = 0
    gid: int = 0
    data: bytes | None = None  # regular file content, or...
    source: str | None = None  # ...a file on disk to copy it from
    size: int = 0              # size of `source`
    target: str = ""           # symlink target
    rdev: int = 0
    link_key: object = None    # entries with the same key are hard links
    offset: int = 0            # where the data starts in `source` (a spool of tar contents)


def _filter(compression: Compression, level: int | None) -> tuple[str | None, str]:
    if compression is Compression.GZIP:
        opts = "gzip:!timestamp" + (f",gzip:compression-level={level}" if level else "")
        return "gzip", opts
    if compression is Compression.ZSTD:
        return "zstd", f"zstd:compression-level={level or 3},zstd:threads=2"
    return None, ""


def is_secret(entries: Iterable[Entry]) -> bool:
    """Whether an archive holds a file that others may not read on the node.

    Such a file (a host key, a password) makes the whole archive secret on
    the server too: see fsutil.publish_mode().
    """
    return any(stat.S_ISREG(e.mode) and not e.mode & stat.S_IROTH for e in entries)


def _program(compression: Compression, level: int | None) -> list[str] | None:
    """The external compressor for `compression`, if installed (else libarchive's filter)."""
    if compression is Compression.GZIP and shutil.which("pigz"):
        # -n: no file name and no time in the header.
        return ["pigz", "-n", f"-{level or 6}", f"-p{os.cpu_count() or 1}", "-c"]
    if compression is Compression.ZSTD and shutil.which("zstd"):
        # -T0 (one worker per core) gives the same bytes as any -T<n>; only
        # --single-thread would differ.
        return ["zstd", "-q", "--no-progress", f"-{level or 3}", "-T0", "-c"]
    return None


def _as_os_error(exc: Exception) -> Exception:
    """A failed write of libarchive's, as the OSError atomic_open turns into a clear message."""
    num = getattr(exc, "errno", None)
    if isinstance(num, int) and num in WRITE_HINTS:
        return OSError(num, os.strerror(num))
    return exc


def _compressor_error(argv: list[str], code: int, err: str) -> Exception:
    # pigz and zstd say "No space left on device" when the disk is full: report
    # that as atomic_open reports it, with the file's name and a hint.
    for num in WRITE_HINTS:
        if os.strerror(num) in err:
            return OSError(num, os.strerror(num))
    return WWError(f"{argv[0]} failed with exit code {code}: {err}", hint="is the output disk full?")


@contextlib.contextmanager
def _cpio_writer(fileno: int, compression: Compression, level: int | None,
                 external: bool) -> Iterator[libarchive.write.ArchiveWrite]:
    argv = _program(compression, level) if external else None
    if argv is None:
        filt, opts = _filter(compression, level)
        try:
            with libarchive.fd_writer(fileno, "cpio_newc", filt, options=opts) as arch:
                yield arch
        except ArchiveError as exc:
            raise _as_os_error(exc) from None
        return
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=fileno, stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stderr is not None
    try:
        with libarchive.fd_writer(proc.stdin.fileno(), "cpio_newc") as arch:
            yield arch
    except BaseException as exc:
        # A broken pipe: the compressor stopped first (a full disk); its message says why.
        died = None
        if isinstance(exc, ArchiveError):
            with contextlib.suppress(subprocess.TimeoutExpired):
                died = proc.wait(timeout=5)
        proc.kill()
        proc.wait()
        if died:
            raise _compressor_error(argv, died, proc.stderr.read().decode(errors="replace").strip()) from None
        if isinstance(exc, ArchiveError):
            raise _as_os_error(exc) from None
        raise
    finally:
        proc.stdin.close()
    err = proc.stderr.read().decode(errors="replace").strip()
    proc.stderr.close()
    if proc.wait() != 0:
        raise _compressor_error(argv, proc.returncode, err)


def write_cpio(entries: Iterable[Entry], out: Path, compression: Compression = Compression.GZIP,
               level: int | None = None, mode: int = 0o644, gid: int | None = None,
               what: str = "") -> int:
    """Write `entries` in the given order to `out` atomically; return the entry count.

    With `what` (a name for messages: an image), a build that takes more than a
    few seconds shows its progress on stderr (see progress.py), and the stream is
    compressed by pigz or zstd on every core when installed. Small archives
    (overlays, thousands of them) stay in-process: starting a compressor would
    cost more than compressing.
    """
    count = 0
    links: dict[object, tuple[int, bool]] = {}
    total = 0
    if what:
        entries = list(entries)
        total = sum(e.size for e in entries)
    progress = Progress(what, total)
    with atomic_open(out, mode, gid) as f, _cpio_writer(f.fileno(), compression, level, bool(what)) as arch:
        for e in entries:
            count += 1
            _write_entry(arch, e, count, links)
            if what:
                progress.add(e.size)
    progress.done()
    return count


def _write_entry(arch: libarchive.write.ArchiveWrite, e: Entry, ino: int,
                 links: dict[object, tuple[int, bool]]) -> None:
    size = len(e.data) if e.data is not None else e.size
    is_reg = stat.S_ISREG(e.mode)
    if size > NEWC_MAX_SIZE:
        raise WWError(f"{e.path} is {size} bytes; an initrd (cpio newc) cannot hold a file over 4 GiB",
                      hint="exclude it from the image or serve it from NFS")
    entry = ArchiveEntry(header_codec="utf-8")
    entry.pathname = e.path
    entry.mode = e.mode
    entry.uid, entry.gid = e.uid, e.gid
    entry.mtime = FIXED_MTIME
    has_data = is_reg
    if e.link_key is not None:
        # Hard links share an inode; the first carries the data, the rest are
        # empty (the kernel's initramfs unpacker and GNU cpio both accept this).
        if e.link_key in links:
            ino, _ = links[e.link_key]
            has_data = False
        else:
            links[e.link_key] = (ino, True)
        _lib.archive_entry_set_nlink(entry._entry_p, 2)
    else:
        _lib.archive_entry_set_nlink(entry._entry_p, 2 if stat.S_ISDIR(e.mode) else 1)
    _lib.archive_entry_set_ino64(entry._entry_p, ino)
    if stat.S_ISLNK(e.mode):
        _lib.archive_entry_set_symlink_utf8(entry._entry_p, e.target.encode())
    if stat.S_ISCHR(e.mode) or stat.S_ISBLK(e.mode):
        entry.rdev = e.rdev
    entry.size = size if has_data else 0
    laffi.write_header(arch._pointer, entry._entry_p)
    if has_data:
        if e.data is not None:
            if e.data:
                laffi.write_data(arch._pointer, e.data, len(e.data))
        else:
            assert e.source is not None
            _copy_data(arch, e.source, e.offset, size)
    laffi.write_finish_entry(arch._pointer)


def _copy_data(arch: libarchive.write.ArchiveWrite, source: str, offset: int, size: int) -> None:
    left = size
    with open(source, "rb") as f:
        if offset:
            f.seek(offset)
        while left > 0:
            chunk = f.read(min(left, 1 << 20))
            if not chunk:
                raise WWError(f"{source} shrank while it was being archived",
                              hint="do not change the image while it is built; build again")
            laffi.write_data(arch._pointer, chunk, len(chunk))
            left -= len(chunk)
