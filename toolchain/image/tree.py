"""An image's files as archive entries: walking a root directory, excludes,
the fast "did anything change" fingerprint, and finding the kernel.

Every source (directory, tarball, OCI layers) ends up as one list of `Entry`
in the same order, so the same files give the same archive whatever they came
from: depth first, names sorted, parents before children.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from toolchain.archive import Entry
from toolchain.errors import WWError

# Where distributions keep kernels, in Warewulf's order of preference. With a
# merged /usr, lib/ is a symlink and the modules directory is under usr/lib.
KERNEL_GLOBS = ("boot/vmlinuz-*", "boot/Image-*", "lib/modules/*/vmlinuz", "usr/lib/modules/*/vmlinuz")
MODULE_DIRS = ("lib/modules", "usr/lib/modules")
DIR_MODE = stat.S_IFDIR | 0o755


def sort_key(path: str) -> tuple[str, ...]:
    """Depth-first order with sorted names: `a`, `a/b`, `a-c` (not `a-c` before `a/b`)."""
    return tuple(path.split("/"))


def matcher(patterns: Iterable[str]) -> Callable[[str], bool]:
    """A test of relative paths against exclude globs written as image paths.

    `/boot/*` leaves out what is in /boot (the directory stays); `/boot` leaves
    out the directory and everything under it. One compiled regular expression
    for all patterns: the walk calls this for every file of the image.
    """
    parts = []
    for p in patterns:
        p = "/" + p.strip("/") if p.strip("/") else "/"
        parts.append(fnmatch.translate(p))
        parts.append(fnmatch.translate(p.rstrip("/") + "/*"))
    if not parts:
        return lambda rel: False
    rx = re.compile("|".join(parts))
    return lambda rel: rx.match("/" + rel) is not None


def walk_root(root: Path, exclude: tuple[str, ...] = ()) -> Iterator[Entry]:
    """Every entry under `root`, in archive order, with owners and modes as on disk."""
    is_excluded = matcher(exclude)

    def walk(rel_dir: str) -> Iterator[Entry]:
        base = os.path.join(root, rel_dir) if rel_dir else str(root)
        try:
            names = sorted(os.listdir(base))
        except OSError as exc:
            raise WWError(f"cannot read {base}: {exc.strerror}") from None
        for name in names:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if is_excluded(rel):
                continue
            full = os.path.join(base, name)
            st = os.lstat(full)
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                yield Entry(rel, mode, st.st_uid, st.st_gid)
                yield from walk(rel)
            elif stat.S_ISREG(mode):
                key = (st.st_dev, st.st_ino) if st.st_nlink > 1 else None
                yield Entry(rel, mode, st.st_uid, st.st_gid, source=full, size=st.st_size,
                            link_key=key)
            elif stat.S_ISLNK(mode):
                yield Entry(rel, mode, st.st_uid, st.st_gid, target=os.readlink(full))
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                yield Entry(rel, mode, st.st_uid, st.st_gid, rdev=st.st_rdev)
            elif stat.S_ISFIFO(mode):
                yield Entry(rel, mode, st.st_uid, st.st_gid)
            # sockets are runtime state, never part of an image

    return walk("")


def dir_fingerprint(root: Path, exclude: tuple[str, ...] = ()) -> str:
    """A digest of every path's metadata (type, mode, owner, size, mtime, inode).

    Decides "nothing changed" without reading a byte of content: one lstat per
    file through scandir. A tool that rewrites a file changes its mtime or its
    inode (a rename over it); keeping both would take a deliberate `touch -d`.
    """
    is_excluded = matcher(exclude)
    h = hashlib.sha256()
    stack = [(str(root), "")]
    while stack:
        base, rel_dir = stack.pop()
        try:
            with os.scandir(base) as it:
                items = sorted(it, key=lambda d: d.name)
        except OSError as exc:
            raise WWError(f"cannot read {base}: {exc.strerror}") from None
        lines = []
        for d in items:
            rel = f"{rel_dir}/{d.name}" if rel_dir else d.name
            if is_excluded(rel):
                continue
            st = d.stat(follow_symlinks=False)
            lines.append(f"{rel}\0{st.st_mode}\0{st.st_uid}\0{st.st_gid}\0{st.st_size}"
                         f"\0{st.st_mtime_ns}\0{st.st_ino}\n")
            if stat.S_ISDIR(st.st_mode):
                stack.append((d.path, rel))
        h.update("".join(lines).encode(errors="surrogateescape"))
    return h.hexdigest()


def complete(entries: dict[str, Entry]) -> list[Entry]:
    """Entries in archive order, with any missing parent directory added.

    The kernel's initramfs unpacker does not create parents, and a tarball may
    leave them out. A hard-link group left with one member is no link at all.
    """
    for path in list(entries):
        parent = path.rpartition("/")[0]
        while parent and parent not in entries:
            entries[parent] = Entry(parent, DIR_MODE)
            parent = parent.rpartition("/")[0]
    counts: dict[object, int] = {}
    for e in entries.values():
        if e.link_key is not None:
            counts[e.link_key] = counts.get(e.link_key, 0) + 1
    out = []
    for path in sorted(entries, key=sort_key):
        e = entries[path]
        if e.link_key is not None and counts[e.link_key] == 1:
            e = dataclasses.replace(e, link_key=None)
        out.append(e)
    return out


# --- kernels -------------------------------------------------------------------

def _version_key(text: str) -> list[tuple[int, str]]:
    return [(int(p), "") if p.isdigit() else (-1, p) for p in re.split(r"(\d+)", text)]


def kernel_version(path: str) -> str:
    """The version in a kernel's path: boot/vmlinuz-<ver> or lib/modules/<ver>/vmlinuz."""
    name = path.rsplit("/", 1)[-1]
    return path.rsplit("/", 2)[-2] if name == "vmlinuz" else name.split("-", 1)[1]


def _kernels(paths: Iterable[str]) -> list[tuple[str, str]]:
    """(version, path) of the bootable kernels among image paths (no debug or rescue kernels)."""
    found: list[tuple[str, str]] = []
    for path in paths:
        for pattern in KERNEL_GLOBS:
            if path.count("/") == pattern.count("/") and fnmatch.fnmatchcase(path, pattern):
                ver = kernel_version(path)
                if "+debug" not in ver and "rescue" not in ver:
                    found.append((ver, path))
    return found


def pick_kernel(paths: Iterable[str], version: str = "") -> str | None:
    """The newest non-debug kernel among image paths (or the newest of `version`)."""
    found = [(v, p) for v, p in _kernels(paths) if v.startswith(version)]
    if not found:
        return None
    return max(found, key=lambda vp: _version_key(vp[0]))[1]


def no_kernel(where: str, version: str, paths: Iterable[str] = ()) -> WWError:
    """No kernel (of `version`) in an image; the message names the versions it has (of `paths`)."""
    what = f"no kernel {version}*" if version else "no kernel"
    have = sorted({v for v, _ in _kernels(paths)}, key=_version_key)
    has = f"; it has {', '.join(have)}" if have else ""
    return WWError(f"{what} found in {where} (looked for /boot/vmlinuz-*, /lib/modules/*/vmlinuz){has}",
                   hint="install a kernel package into the image, set `kernel.version` to one "
                        "it has, or take the kernel of another image with `kernel.from`")


def find_kernel(root: Path, version: str = "") -> Path:
    """The newest kernel in root directory `root` (or the one whose version starts with `version`)."""
    paths = [str(p.relative_to(root)) for pattern in KERNEL_GLOBS for p in root.glob(pattern)]
    found = pick_kernel(paths, version)
    if found is None:
        raise no_kernel(f"image root {root}", version, paths)
    return root / found


def resolve(entries: dict[str, Entry], path: str) -> Entry | None:
    """The entry at `path`, following symlinks inside the image (a few hops)."""
    for _ in range(8):
        e = entries.get(path)
        if e is None or not stat.S_ISLNK(e.mode):
            return e
        base = "" if e.target.startswith("/") else path.rpartition("/")[0]
        path = os.path.normpath(os.path.join("/", base, e.target)).lstrip("/")
    return None


def module_entries(entries: dict[str, Entry], version: str) -> list[Entry]:
    """The kernel modules of `version` as a layer at lib/modules/<version>.

    Written under lib/ whatever the source used: in an image with a merged /usr
    the kernel's unpacker follows the lib -> usr/lib symlink, and in one without
    it lands where kmod looks.
    """
    for base in MODULE_DIRS:
        prefix = f"{base}/{version}"
        d = entries.get(prefix)
        if d is not None and stat.S_ISDIR(d.mode):
            break
    else:
        return []
    out = {"lib": Entry("lib", DIR_MODE), "lib/modules": Entry("lib/modules", DIR_MODE)}
    for path, e in entries.items():
        if path == prefix or path.startswith(prefix + "/"):
            new = f"lib/modules/{version}{path[len(prefix):]}"
            out[new] = dataclasses.replace(e, path=new)
    return complete(out)
