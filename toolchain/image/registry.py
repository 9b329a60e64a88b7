"""Every image source kind by its cluster.yaml key, and every tree format by name.

Adding a kind is a module in sources/ and a line here (and its reader in
model/images.py, which cannot import this layer); nothing else names kinds.
"""

from __future__ import annotations

from toolchain.image.sources import debootstrap, demo, oci, root, tarball
from toolchain.image.sources.base import ImageSource, Source, TreeFormat
from toolchain.model.types import Image

SOURCES: dict[str, ImageSource] = {
    s.kind: s for s in (demo.SOURCE, root.SOURCE, tarball.SOURCE, oci.SOURCE, debootstrap.SOURCE)}

# The formats a Source can be in; the kinds wwstatic builds produce "root" trees.
FORMATS: dict[str, TreeFormat] = {s.kind: s for s in (root.SOURCE, tarball.SOURCE, oci.SOURCE)}


def source(img: Image) -> ImageSource:
    """The kind of `img`'s source (the model only makes images of registered kinds)."""
    return SOURCES[img.builder]


def tree_format(src: Source) -> TreeFormat:
    return FORMATS[src.kind]
