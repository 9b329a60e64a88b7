"""Image sources as the build sees them: where a built root lives, its stamp, its input key.

What differs between kinds is the kind's own (toolchain.image.registry).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

from toolchain.build.context import Context
from toolchain.errors import WWError
from toolchain.fingerprint import digest, image_code
from toolchain.fsutil import write_atomic
from toolchain.image import registry
from toolchain.image.sources.base import DigestCache, RootBuilder, Source
from toolchain.model.types import Image


def image_spec(img: Image) -> str:
    """The image's settings, as its key reads them (not where cluster.yaml says them)."""
    values = dataclasses.asdict(img)
    return json.dumps({f.name: values[f.name] for f in dataclasses.fields(img) if f.compare},
                      sort_keys=True)


@contextlib.contextmanager
def located(img: Image) -> Iterator[None]:
    """An error of reading or building `img` without a place gets the image's line in cluster.yaml."""
    try:
        yield
    except WWError as err:
        if err.loc is None:
            err.loc = img.loc
        raise

def root_stamp(p: Context, img: Image) -> Path:
    return p.paths.work / "images" / img.name / "rootfs.done"

def prepared(img: Image) -> RootBuilder | None:
    """How wwstatic builds the root of `img`, or None when the site supplies it."""
    return registry.source(img).prepare

def root_key(img: Image) -> str:
    """What a root wwstatic builds is made of: its stamp holds this."""
    builder = prepared(img)
    assert builder is not None
    return digest(image_spec(img) + image_code() + builder.recipe(img))

def build_root(p: Context, img: Image, key: str) -> None:
    builder = prepared(img)
    assert builder is not None
    # The root is replaced in place: a build killed half-way must not leave the
    # old stamp beside a half-new (or no) root, or the next build would trust it.
    root_stamp(p, img).unlink(missing_ok=True)
    with located(img):
        builder.build(img, p.paths.work)
    write_atomic(root_stamp(p, img), key + "\n")

def source_of(p: Context, img: Image) -> Source:
    return registry.source(img).tree(img, p.paths.work)

def used_images(p: Context, img: Image) -> list[Image]:
    """The image and, when it boots another image's kernel, that image."""
    return [img] + ([p.cluster.images[img.kernel_from]] if img.kernel_from else [])

def root_stamps(p: Context, img: Image) -> list[Path]:
    """The stamps of the roots wwstatic builds that the image's archive is made from."""
    return [root_stamp(p, u) for u in used_images(p, img) if prepared(u) is not None]


def image_keys(p: Context) -> dict[str, str]:
    """Each image's input digest: its settings, the code that builds it, and what its
    source is now (a root's metadata, a tarball's digest; wwstatic-built roots by recipe)."""
    digests = DigestCache(p.paths.work / "digests.json")
    keys: dict[str, str] = {}
    for img in p.cluster.images.values():
        parts = [image_code()]
        for u in used_images(p, img):
            parts.append(image_spec(u))
            with located(u):
                parts.extend(registry.source(u).key_parts(u, p.paths.work, digests))
        keys[img.name] = digest(*parts)
    return keys
