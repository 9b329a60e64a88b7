"""Reproducible cpio newc archives (the initrd format) written with libarchive.

Entries are filled in by hand instead of read from disk so the bytes depend
only on what we put in: paths sorted by the caller, inodes renumbered from 1
(64-bit inode numbers do not fit newc and break hard links, Warewulf #2091),
owners from the entry (not the building user), mtimes fixed, and no timestamp
in the gzip header.
"""

from __future__ import annotations

import ctypes
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import libarchive
import libarchive.ffi as laffi
from libarchive.entry import ArchiveEntry

from .errors import WWError
from .fsutil import atomic_open

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


def write_cpio(entries: Iterable[Entry], out: Path, compression: Compression = Compression.GZIP,
               level: int | None = None, mode: int = 0o644, gid: int | None = None) -> int:
    """Write `entries` in the given order to `out` atomically; return the entry count."""
    filt, opts = _filter(compression, level)
    count = 0
    links: dict[object, tuple[int, bool]] = {}
    with (atomic_open(out, mode, gid) as f,
          libarchive.fd_writer(f.fileno(), "cpio_newc", filt, options=opts) as arch):
        for e in entries:
            count += 1
            _write_entry(arch, e, count, links)
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
            _copy_data(arch, e.source, size)
    laffi.write_finish_entry(arch._pointer)


def _copy_data(arch: libarchive.write.ArchiveWrite, source: str, size: int) -> None:
    left = size
    with open(source, "rb") as f:
        while left > 0:
            chunk = f.read(min(left, 1 << 20))
            if not chunk:
                raise WWError(f"{source} shrank while it was being archived",
                              hint="do not change the image while it is built; build again")
            laffi.write_data(arch._pointer, chunk, len(chunk))
            left -= len(chunk)
