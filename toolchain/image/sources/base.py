"""What an image source kind provides, and the values all kinds share.

A kind is what cluster.yaml names an image's source by (`root:`, `tarball:`,
`demo:`...). Each kind is one object in `toolchain.image.registry`; the build
and the template functions ask it, never the kind's name.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from toolchain.archive import Entry
from toolchain.errors import WWError
from toolchain.fsutil import write_atomic
from toolchain.image.tarsource import Spool
from toolchain.model.types import Image


@dataclass(frozen=True)
class Source:
    """A tree the build reads: `kind` names its format, a key of registry.FORMATS."""
    kind: str                 # "root" (a directory), "tarball" or "oci"
    path: Path
    ref: str = ""             # OCI: which image of the layout
    owner_root: bool = False  # every entry owned by 0:0 (roots built unprivileged)

    def __str__(self) -> str:
        return f"{self.kind} {self.path}" + (f" ({self.ref})" if self.ref else "")


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


class TreeFormat(Protocol):
    """How the build reads one format of tree (what a Source's `kind` names)."""

    def entries(self, src: Source, work: Path | None) -> AbstractContextManager[list[Entry]]:
        """Every entry of the tree, valid until the block ends (`work`: scratch space)."""
        ...

    def identity(self, src: Source, cache: DigestCache) -> str:
        """What the tree is now, cheaply; may raise OSError or WWError when unreadable."""
        ...


class RootBuilder(Protocol):
    """A kind whose root wwstatic builds (the `demo` task) before the image is archived."""

    def recipe(self, img: Image) -> str:
        """What the root is made of besides the image's settings and wwstatic's code."""
        ...

    def is_built(self, img: Image) -> bool:
        """False when the root is gone whatever doit's store says (a cleared cache)."""
        ...

    def build(self, img: Image, work: Path) -> None:
        ...


class ImageSource(Protocol):
    """One kind of image source, as the build and the template functions use it."""

    kind: str                    # the cluster.yaml key, and Image.builder
    prepare: RootBuilder | None  # set for kinds whose root wwstatic builds
    missing_hint: str            # what to do when the root templates read is not there

    def tree(self, img: Image, work: Path) -> Source:
        """Where the build reads the image's tree (`work`: the project's image scratch space)."""
        ...

    def key_parts(self, img: Image, work: Path, digests: DigestCache) -> tuple[str, ...]:
        """What the image's input key covers beyond its settings and the code."""
        ...

    def files_root(self, img: Image, work: Path) -> Path:
        """The directory templates read the image's files from, or a WWError."""
        ...


def fingerprint_of(fmt: TreeFormat, src: Source, cache: DigestCache) -> str:
    """What the source is now: a changed value means a rebuild."""
    try:
        return fmt.identity(src, cache)
    except (OSError, WWError):
        # Missing or unreadable: let the build run and say what is wrong.
        return f"unreadable:{os.urandom(8).hex()}"


@contextlib.contextmanager
def spooled(work: Path | None) -> Iterator[Spool]:
    """Scratch files for the contents of an archive being read, removed when done."""
    if work is not None:
        work.mkdir(parents=True, exist_ok=True)
    spool = Spool(work)
    try:
        yield spool
    finally:
        spool.close()


class GivenTree(abc.ABC):
    """A kind whose tree the site supplies: read as it is, named by what it is now.

    It is its own TreeFormat: the tree is in the format the kind is named after.
    """

    kind = ""
    prepare: RootBuilder | None = None
    missing_hint = ""

    @abc.abstractmethod
    def tree(self, img: Image, work: Path) -> Source: ...

    @abc.abstractmethod
    def entries(self, src: Source, work: Path | None) -> AbstractContextManager[list[Entry]]: ...

    @abc.abstractmethod
    def identity(self, src: Source, cache: DigestCache) -> str: ...

    def key_parts(self, img: Image, work: Path, digests: DigestCache) -> tuple[str, ...]:
        return (fingerprint_of(self, self.tree(img, work), digests),)

    def files_root(self, img: Image, work: Path) -> Path:
        raise WWError(f"image {img.name} is a {img.builder}: templates cannot read its files",
                      hint="use a root directory (or debootstrap) image, or do not use include_image")
