"""Images: a source (root directory, tarball, OCI image) in; a kernel, an initrd
archive and optionally a kernel modules layer out.

The whole tree is read once, kernel and all; excludes apply to the archive
only, so a kernel in an excluded /boot is still found and served.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from toolchain.archive import Compression, Entry, write_cpio
from toolchain.errors import WWError
from toolchain.fsutil import atomic_open, write_atomic
from toolchain.image.tarsource import Spool, oci_identity, read_oci, read_tarball
from toolchain.image.tree import (
    dir_fingerprint,
    find_kernel,
    kernel_version,
    matcher,
    module_entries,
    no_kernel,
    pick_kernel,
    resolve,
    walk_root,
)

if TYPE_CHECKING:  # model imports overlay, which reads images: no import cycle at run time
    from toolchain.model.types import Image


__all__ = ["Source", "build", "build_image", "find_kernel", "fingerprint", "read_image_file", "walk_root"]


@dataclass(frozen=True)
class Source:
    kind: str                 # "root" (a directory), "tarball" or "oci"
    path: Path
    ref: str = ""             # OCI: which image of the layout
    owner_root: bool = False  # every entry owned by 0:0 (roots built unprivileged)

    def __str__(self) -> str:
        return f"{self.kind} {self.path}" + (f" ({self.ref})" if self.ref else "")


@dataclass(frozen=True)
class Built:
    entries: int
    kernel_version: str


def _check(src: Source) -> None:
    if src.kind == "root" and not src.path.is_dir():
        raise WWError(f"image root {src.path} is not a directory",
                      hint="point `root:` at an unpacked image (a chroot)")


@contextlib.contextmanager
def open_tree(src: Source, work: Path | None = None) -> Iterator[dict[str, Entry]]:
    """Every entry of the source by path, in archive order (kept until the block ends)."""
    _check(src)
    if src.kind == "root":
        entries = list(walk_root(src.path))
        spool = None
    else:
        if work is not None:
            work.mkdir(parents=True, exist_ok=True)
        spool = Spool(work)
        try:
            entries = (read_tarball(src.path, spool) if src.kind == "tarball"
                       else read_oci(src.path, spool, src.ref, work=work))
        except BaseException:
            spool.close()
            raise
    try:
        if src.owner_root:
            entries = [dataclasses.replace(e, uid=0, gid=0) for e in entries]
        yield {e.path: e for e in entries}
    finally:
        if spool is not None:
            spool.close()


def kernel_entry(tree: dict[str, Entry], where: str, version: str = "") -> Entry:
    path = pick_kernel(tree, version)
    found = resolve(tree, path) if path else None
    if path is None or found is None or not stat.S_ISREG(found.mode):
        raise no_kernel(where, version)
    return dataclasses.replace(found, path=path)


def copy_entry(e: Entry, dst: Path) -> None:
    """Write an entry's content to a file, atomically."""
    with atomic_open(dst) as out:
        if e.data is not None:
            out.write(e.data)
            return
        assert e.source is not None
        with open(e.source, "rb") as f:
            f.seek(e.offset)
            left = e.size
            while left > 0:
                chunk = f.read(min(left, 1 << 20))
                if not chunk:
                    raise WWError(f"{e.source} shrank while it was being read")
                out.write(chunk)
                left -= len(chunk)


def build(src: Source, *, image: Path, kernel: Path, name: str = "",
          exclude: tuple[str, ...] = (), compression: Compression = Compression.GZIP,
          version: str = "", kernel_src: Source | None = None, modules: Path | None = None,
          work: Path | None = None) -> Built:
    """Archive `src` into `image` and copy its kernel to `kernel`.

    With `kernel_src`, the kernel is taken from that source instead, and its
    modules become a separate layer written to `modules`.
    """
    what = f"image {name}" if name else ""
    with open_tree(src, work) as tree:
        if kernel_src is None:
            kentry = kernel_entry(tree, str(src), version)
            copy_entry(kentry, kernel)
        is_excluded = matcher(exclude)
        count = write_cpio((e for e in tree.values() if not is_excluded(e.path)), image,
                           compression, what=what)
    if kernel_src is not None:
        with open_tree(kernel_src, work) as ktree:
            kentry = kernel_entry(ktree, str(kernel_src), version)
            ver = kernel_version(kentry.path)
            layer = module_entries(ktree, ver)
            if not layer:
                raise WWError(f"{kernel_src} has kernel {ver} but no /lib/modules/{ver}",
                              hint="install the kernel's modules into that image too")
            copy_entry(kentry, kernel)
            assert modules is not None
            write_cpio(layer, modules, compression, what=f"modules of {name}" if name else "")
    return Built(count, kernel_version(kentry.path))


def build_image(root: Path, out: Path, exclude: tuple[str, ...] = (),
                compression: Compression = Compression.GZIP, owner_root: bool = False) -> int:
    """Archive root directory `root` (no kernel); `owner_root` makes every entry 0:0."""
    src = Source("root", root, owner_root=owner_root)
    _check(src)
    entries = walk_root(root, exclude)
    if owner_root:
        entries = (dataclasses.replace(e, uid=0, gid=0) for e in entries)
    return write_cpio(entries, out, compression)


# --- "did anything change" -------------------------------------------------------

class DigestCache:
    """Content digests of big files, reused while the file's stat is the same.

    The stat alone decides "unchanged" at once; the digest saves a rebuild when
    a tarball is replaced by an identical copy (downloaded again, say).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.data: dict[str, list[str]] = json.loads(path.read_text())
        except (OSError, ValueError):
            self.data = {}

    def digest(self, file: Path) -> str:
        st = file.stat()
        key = f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"
        name = str(file.resolve())
        cached = self.data.get(name)
        if cached and cached[0] == key:
            return cached[1]
        h = hashlib.sha256()
        with file.open("rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        self.data[name] = [key, h.hexdigest()]
        write_atomic(self.path, json.dumps(self.data, sort_keys=True, indent=1) + "\n")
        return h.hexdigest()


def fingerprint(src: Source, cache: DigestCache) -> str:
    """What the source is now, cheaply: a changed value means a rebuild."""
    try:
        if src.kind == "root":
            return "root:" + dir_fingerprint(src.path)
        if src.kind == "tarball":
            return "tarball:" + cache.digest(src.path)
        return oci_identity(src.path, src.ref, cache.digest)
    except (OSError, WWError):
        # Missing or unreadable: let the build run and say what is wrong.
        return f"unreadable:{os.urandom(8).hex()}"


# --- reading one file of an image (for templates' include_image) --------------

def image_root(project: Path, img: Image) -> Path:
    """Where the unpacked root of `img` lives on the build host."""
    if img.builder == "demo":
        return project / "output" / "work" / "images" / img.name / "rootfs"
    if img.builder == "debootstrap":
        from toolchain.image import debootstrap  # only here: it reads apt's configuration
        assert img.debootstrap is not None
        return debootstrap.root_dir(img.debootstrap)
    if img.builder in ("tarball", "oci"):
        raise WWError(f"image {img.name} is a {img.builder}: templates cannot read its files",
                      hint="use a root directory (or debootstrap) image, or do not use include_image")
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
