"""`tarball:` images: a root file system tarball, read without unpacking it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from toolchain.archive import Entry
from toolchain.image.sources.base import DigestCache, GivenTree, Source, spooled
from toolchain.image.tarsource import read_tarball
from toolchain.model.types import Image


class Tarball(GivenTree):
    kind = "tarball"

    def tree(self, img: Image, work: Path) -> Source:
        return Source(self.kind, Path(img.path))

    @contextlib.contextmanager
    def entries(self, src: Source, work: Path | None) -> Iterator[list[Entry]]:
        with spooled(work) as spool:
            yield read_tarball(src.path, spool)

    def identity(self, src: Source, cache: DigestCache) -> str:
        return "tarball:" + cache.digest(src.path)


SOURCE = Tarball()
