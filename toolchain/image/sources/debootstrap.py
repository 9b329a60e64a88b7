"""`debootstrap:` images: a Debian root built with debootstrap, kept in the user's cache."""

from __future__ import annotations

import json
from pathlib import Path

from toolchain.image import debootstrap
from toolchain.image.sources.base import DigestCache, RootBuilder, Source
from toolchain.model.types import Debootstrap, Image


def _spec(img: Image) -> Debootstrap:
    assert img.debootstrap is not None, "the model sets it for every debootstrap image"
    return img.debootstrap


def _recipe(img: Image) -> str:
    # The mirror comes from apt's configuration: a new one is a new root.
    return json.dumps(debootstrap.recipe(_spec(img)), sort_keys=True)


class DebootstrapRoot:
    def recipe(self, img: Image) -> str:
        return _recipe(img)

    def is_built(self, img: Image) -> bool:
        return debootstrap.is_built(_spec(img))

    def build(self, img: Image, work: Path) -> None:
        debootstrap.build_root(_spec(img))


class DebootstrapImage:
    kind = "debootstrap"
    prepare: RootBuilder | None = DebootstrapRoot()
    missing_hint = "build it first: doit demo"

    def tree(self, img: Image, work: Path) -> Source:
        return Source("root", debootstrap.root_dir(_spec(img)))

    def key_parts(self, img: Image, work: Path, digests: DigestCache) -> tuple[str, ...]:
        return (_recipe(img),)

    def files_root(self, img: Image, work: Path) -> Path:
        return debootstrap.root_dir(_spec(img))


SOURCE = DebootstrapImage()
