"""`oci:` images: an OCI image layout (a directory or an oci-archive tar), layers applied."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from toolchain.archive import Entry
from toolchain.image.sources.base import DigestCache, GivenTree, Source, spooled
from toolchain.image.tarsource import oci_identity, read_oci
from toolchain.model.types import Image


class Oci(GivenTree):
    kind = "oci"

    def tree(self, img: Image, work: Path) -> Source:
        return Source(self.kind, Path(img.path), img.oci_ref)

    @contextlib.contextmanager
    def entries(self, src: Source, work: Path | None) -> Iterator[list[Entry]]:
        with spooled(work) as spool:
            yield read_oci(src.path, spool, src.ref, work=work)

    def identity(self, src: Source, cache: DigestCache) -> str:
        return oci_identity(src.path, src.ref, cache.digest)


SOURCE = Oci()
