"""Reading one file of an image on the build host (for templates' include_image)."""

from __future__ import annotations

import os
from pathlib import Path

from toolchain.errors import WWError
from toolchain.image import registry
from toolchain.model.types import Image
from toolchain.project import Project


def image_root(project: Path, img: Image) -> Path:
    """Where the unpacked root of `img` lives on the build host."""
    return registry.source(img).files_root(img, Project(project).work)


def read_image_file(project: Path, img: Image, path: str) -> bytes:
    """The bytes of `path` inside image `img`, following symlinks inside the image.

    A template only ever calls this; each source kind says where its root is.
    """
    root = image_root(project, img)
    if not root.is_dir():
        raise WWError(f"image {img.name} is not available at {root}",
                      hint=registry.source(img).missing_hint)
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
