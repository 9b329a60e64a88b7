"""Images: a root directory in, a kernel and an initrd archive out."""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from .archive import Compression, Entry, write_cpio
from .errors import WWError

if TYPE_CHECKING:  # model imports overlay, which reads images: no import cycle at run time
    from .model import Image

# Where distributions keep kernels, in Warewulf's order of preference.
KERNEL_GLOBS = ("boot/vmlinuz-*", "boot/Image-*", "lib/modules/*/vmlinuz", "usr/lib/modules/*/vmlinuz")


def _version_key(text: str) -> list[tuple[int, str]]:
    return [(int(p), "") if p.isdigit() else (-1, p) for p in re.split(r"(\d+)", text)]


def find_kernel(root: Path, version: str = "") -> Path:
    """The newest kernel in `root` (or the one whose version starts with `version`)."""
    found: list[tuple[str, Path]] = []
    for pattern in KERNEL_GLOBS:
        for path in root.glob(pattern):
            ver = path.parent.name if path.name == "vmlinuz" else path.name.split("-", 1)[1]
            if "+debug" in ver or "rescue" in ver:
                continue
            if version and not ver.startswith(version):
                continue
            found.append((ver, path))
    if not found:
        raise WWError(f"no kernel found in image root {root}",
                      hint="install a kernel package into the image (/boot/vmlinuz-*)")
    return max(found, key=lambda vp: _version_key(vp[0]))[1]


def excluded(rel: str, patterns: tuple[str, ...]) -> bool:
    path = "/" + rel
    return any(fnmatch.fnmatchcase(path, p) or fnmatch.fnmatchcase(path, p.rstrip("/") + "/*")
               for p in patterns)


def walk_root(root: Path, exclude: tuple[str, ...] = ()) -> Iterator[Entry]:
    """Every entry under `root`, sorted by path bytes, with owners and modes as on disk."""
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        base = root / rel_dir if rel_dir else root
        try:
            names = sorted(os.listdir(base))
        except OSError as exc:
            raise WWError(f"cannot read {base}: {exc.strerror}") from None
        subdirs = []
        for name in names:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if excluded(rel, exclude):
                continue
            full = os.path.join(base, name)
            st = os.lstat(full)
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                yield Entry(rel, mode, st.st_uid, st.st_gid)
                subdirs.append(rel)
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
        # Depth-first in sorted order: push subdirectories reversed.
        stack.extend(reversed(subdirs))


def tree_digest(root: Path, exclude: tuple[str, ...] = ()) -> str:
    """A digest of the tree's metadata (path, type, mode, owner, size, mtime, link).

    Cheap enough to decide "nothing changed" without reading file contents.
    """
    h = hashlib.sha256()
    for e in walk_root(root, exclude):
        st_mtime = 0
        if e.source:
            st_mtime = os.lstat(e.source).st_mtime_ns
        h.update(f"{e.path}\0{e.mode}\0{e.uid}\0{e.gid}\0{e.size}\0{st_mtime}\0{e.target}\n".encode())
    return h.hexdigest()


def build_image(root: Path, out: Path, exclude: tuple[str, ...] = (),
                compression: Compression = Compression.GZIP, owner_root: bool = False) -> int:
    """Archive `root`; `owner_root` makes every entry owned by 0:0 (roots built unprivileged)."""
    if not root.is_dir():
        raise WWError(f"image root {root} is not a directory",
                      hint="point `root:` at an unpacked image (a chroot)")
    entries = walk_root(root, exclude)
    if owner_root:
        entries = (dataclasses.replace(e, uid=0, gid=0) for e in entries)
    return write_cpio(entries, out, compression)


# --- reading one file of an image (for templates' include_image) --------------

def image_root(project: Path, img: Image) -> Path:
    """Where the unpacked root of `img` lives on the build host."""
    if img.builder == "demo":
        return project / "output" / "work" / "images" / img.name / "rootfs"
    return Path(img.root)


def read_image_file(project: Path, img: Image, path: str) -> bytes:
    """The bytes of `path` inside image `img`, following symlinks inside the image.

    Other image sources (tar, OCI) plug in here; a template only ever calls this.
    """
    root = image_root(project, img)
    if not root.is_dir():
        hint = ("build it first: doit demo" if img.builder == "demo"
                else "unpack the image there, or fix `root:` in cluster.yaml")
        raise WWError(f"image {img.name} is not available at {root}", hint=hint)
    rel = path.lstrip("/")
    target = root / rel
    for _ in range(40):  # resolve symlinks against the image root, not the host's /
        if not target.is_symlink():
            break
        link = os.readlink(target)
        target = root / link.lstrip("/") if link.startswith("/") else target.parent / link
    try:
        resolved = target.resolve()
        if resolved != root.resolve() and root.resolve() not in resolved.parents:
            raise FileNotFoundError
        return resolved.read_bytes()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        raise WWError(f"image {img.name} has no file /{rel}",
                      hint=f"install it into the image ({root}) or do not include it") from None
