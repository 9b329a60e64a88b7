"""`root:` images: a root directory (a chroot) on the build host, read as it is."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from toolchain.archive import Entry
from toolchain.errors import WWError
from toolchain.image.sources.base import DigestCache, GivenTree, Source
from toolchain.image.tree import dir_fingerprint, walk_root
from toolchain.model.types import Image


def check_dir(path: Path) -> None:
    if not path.is_dir():
        raise WWError(f"image root {path} is not a directory",
                      hint="point `root:` at an unpacked image (a chroot)")


class RootDir(GivenTree):
    kind = "root"
    missing_hint = "unpack the image there, or fix `root:` in cluster.yaml"

    def tree(self, img: Image, work: Path) -> Source:
        return Source(self.kind, Path(img.root))

    @contextlib.contextmanager
    def entries(self, src: Source, work: Path | None) -> Iterator[list[Entry]]:
        check_dir(src.path)
        yield list(walk_root(src.path))

    def identity(self, src: Source, cache: DigestCache) -> str:
        # Metadata only (sizes, times, owners): a root is too big to read each build.
        return "root:" + dir_fingerprint(src.path)

    def files_root(self, img: Image, work: Path) -> Path:
        return Path(img.root)


SOURCE = RootDir()
