"""`demo:` images: busybox and a Debian kernel, built by wwstatic into output/work."""

from __future__ import annotations

from pathlib import Path

from toolchain.image import demo
from toolchain.image.sources.base import DigestCache, RootBuilder, Source
from toolchain.model.types import Image


def root_of(img: Image, work: Path) -> Path:
    return work / "images" / img.name / "rootfs"


class DemoRoot:
    def recipe(self, img: Image) -> str:
        return ""  # all of it is in the image's settings (kernel package, modules)

    def is_built(self, img: Image) -> bool:
        return True  # in output/work, beside the stamp that says it is built

    def build(self, img: Image, work: Path) -> None:
        demo.build_demo_root(img, root_of(img, work))


class Demo:
    kind = "demo"
    prepare: RootBuilder | None = DemoRoot()
    missing_hint = "build it first: doit demo"

    def tree(self, img: Image, work: Path) -> Source:
        # Built unprivileged: every file belongs to the user who ran the build.
        return Source("root", root_of(img, work), owner_root=True)

    def key_parts(self, img: Image, work: Path, digests: DigestCache) -> tuple[str, ...]:
        return ()

    def files_root(self, img: Image, work: Path) -> Path:
        return root_of(img, work)


SOURCE = Demo()
