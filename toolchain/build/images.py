"""Image sources as the build sees them: where a built root lives, its stamp, its input key."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from toolchain.build.context import Context
from toolchain.fingerprint import digest, image_code
from toolchain.fsutil import write_atomic
from toolchain.image import debootstrap, demo
from toolchain.image.builder import DigestCache, Source, fingerprint
from toolchain.model.types import Image


def demo_root(p: Context, image: str) -> Path:
    return p.out / "work" / "images" / image / "rootfs"

def image_spec(img: Image) -> str:
    return json.dumps(dataclasses.asdict(img), sort_keys=True)

def root_stamp(p: Context, img: Image) -> Path:
    return p.out / "work" / "images" / img.name / "rootfs.done"

def build_root(p: Context, img: Image, key: str) -> None:
    # The root is replaced in place: a build killed half-way must not leave the
    # old stamp beside a half-new (or no) root, or the next build would trust it.
    root_stamp(p, img).unlink(missing_ok=True)
    if img.builder == "demo":
        demo.build_demo_root(img, demo_root(p, img.name))
    else:
        assert img.debootstrap is not None
        debootstrap.build_root(img.debootstrap)
    write_atomic(root_stamp(p, img), key + "\n")

def source_of(p: Context, img: Image) -> Source:
    if img.builder == "demo":
        return Source("root", demo_root(p, img.name), owner_root=True)
    if img.builder == "debootstrap":
        assert img.debootstrap is not None
        return Source("root", debootstrap.root_dir(img.debootstrap))
    if img.builder == "root":
        return Source("root", Path(img.root))
    return Source(img.builder, Path(img.path), img.oci_ref)

def used_images(p: Context, img: Image) -> list[Image]:
    """The image and, when it boots another image's kernel, that image."""
    return [img] + ([p.cluster.images[img.kernel_from]] if img.kernel_from else [])


def image_keys(p: Context) -> dict[str, str]:
    """Each image's input digest: its settings, the code that builds it, and what its
    source is now (a root's metadata, a tarball's digest; wwstatic-built roots by recipe)."""
    digests = DigestCache(p.out / "work" / "digests.json")
    keys: dict[str, str] = {}
    for img in p.cluster.images.values():
        parts = [image_code()]
        for u in used_images(p, img):
            parts.append(image_spec(u))
            if u.debootstrap is not None:
                parts.append(json.dumps(debootstrap.recipe(u.debootstrap), sort_keys=True))
            elif u.builder != "demo":
                parts.append(fingerprint(source_of(p, u), digests))
        keys[img.name] = digest(*parts)
    return keys
