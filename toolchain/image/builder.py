"""Images: a source (root directory, tarball, OCI image) in; a kernel, an initrd
archive and optionally a kernel modules layer out.

The whole tree is read once, kernel and all; excludes apply to the archive
only, so a kernel in an excluded /boot is still found and served.
"""

from __future__ import annotations

import contextlib
import dataclasses
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from toolchain.archive import Compression, Entry, write_cpio
from toolchain.errors import WWError
from toolchain.fsutil import atomic_open
from toolchain.image import registry
from toolchain.image.sources.base import DigestCache, Source, fingerprint_of
from toolchain.image.sources.root import check_dir
from toolchain.image.tree import (
    find_kernel,
    kernel_version,
    matcher,
    module_entries,
    no_kernel,
    pick_kernel,
    resolve,
    walk_root,
)

__all__ = ["build", "build_image", "find_kernel", "fingerprint", "open_tree", "walk_root"]


@dataclass(frozen=True)
class Built:
    entries: int
    kernel_version: str


@contextlib.contextmanager
def open_tree(src: Source, work: Path | None = None) -> Iterator[dict[str, Entry]]:
    """Every entry of the source by path, in archive order (kept until the block ends)."""
    with registry.tree_format(src).entries(src, work) as entries:
        if src.owner_root:
            entries = [dataclasses.replace(e, uid=0, gid=0) for e in entries]
        yield {e.path: e for e in entries}


def kernel_entry(tree: dict[str, Entry], where: str, version: str = "") -> Entry:
    path = pick_kernel(tree, version)
    found = resolve(tree, path) if path else None
    if path is None or found is None or not stat.S_ISREG(found.mode):
        raise no_kernel(where, version, tree)
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
          work: Path | None = None, kernels: Mapping[str, Path] | None = None) -> Built:
    """Archive `src` into `image` and copy its kernel to `kernel`.

    With `kernel_src`, the kernel is taken from that source instead, and its
    modules become a separate layer written to `modules`. `kernels` are more
    kernels of the image to copy, by version prefix (nodes' `kernel.version`).
    """
    what = f"image {name}" if name else ""
    if kernels and kernel_src is not None:
        raise WWError(f"image {name} takes its kernel from another image: its nodes cannot choose "
                      f"kernel {', '.join(kernels)}",
                      hint="set the version in the kernel image's `kernel.version`, or remove the "
                           "nodes' kernel.version")
    with open_tree(src, work) as tree:
        if kernel_src is None:
            kentry = kernel_entry(tree, str(src), version)
            copy_entry(kentry, kernel)
            for ver, dest in (kernels or {}).items():   # the modules of each are in the image
                copy_entry(kernel_entry(tree, f"{src} (a node's kernel.version)", ver), dest)
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
    check_dir(root)
    entries = walk_root(root, exclude)
    if owner_root:
        entries = (dataclasses.replace(e, uid=0, gid=0) for e in entries)
    return write_cpio(entries, out, compression)


def fingerprint(src: Source, cache: DigestCache) -> str:
    """What the source is now, cheaply: a changed value means a rebuild."""
    return fingerprint_of(registry.tree_format(src), src, cache)
