"""The registry of image source kinds: the model's kinds, each one's tree, and a new kind
plugged in from outside going through the build's image code unchanged."""

from __future__ import annotations

import ast
import ipaddress
from pathlib import Path

import libarchive
import pytest

from tests.support.images import KVER
from toolchain.build import images
from toolchain.build.context import Context
from toolchain.errors import WWError
from toolchain.image import registry
from toolchain.image.builder import build
from toolchain.image.files import read_image_file
from toolchain.image.sources.base import DigestCache, RootBuilder, Source
from toolchain.model import spec
from toolchain.model.images import IMAGE_SOURCES
from toolchain.model.types import Cluster, Debootstrap, Head, Image
from toolchain.project import PACKAGE, Project


def test_registry_has_every_kind_the_model_reads() -> None:
    assert set(registry.SOURCES) == set(IMAGE_SOURCES)
    assert set(IMAGE_SOURCES) <= {f.key for f in spec.IMAGE}
    assert all(kind == s.kind for kind, s in registry.SOURCES.items())


# One image of each kind, as the model would make it (a mirror given: no apt lookup).
SAMPLES = {
    "root": Image("r", "root", root="/srv/r"),
    "tarball": Image("t", "tarball", path="/srv/t.tar"),
    "oci": Image("o", "oci", path="/srv/o", oci_ref="v1"),
    "demo": Image("d", "demo"),
    "debootstrap": Image("b", "debootstrap",
                         debootstrap=Debootstrap("bookworm", mirror="http://deb.example/debian")),
}


@pytest.mark.parametrize("kind", IMAGE_SOURCES)
def test_every_kind_gives_a_tree_the_build_can_read(kind: str, tmp_path: Path) -> None:
    img = SAMPLES[kind]
    src = registry.source(img).tree(img, tmp_path)
    assert src.kind in registry.FORMATS
    # Built roots are what the `demo` task makes; the others are read as the site left them.
    assert (registry.source(img).prepare is not None) == (kind in ("demo", "debootstrap"))


def kind_names_compared(path: Path) -> list[str]:
    """Comparisons with a kind's name (`builder == "demo"`, `kind in ("oci", ...)`)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Compare):
            continue
        for operand in [node.left, *node.comparators]:
            values = operand.elts if isinstance(operand, ast.Tuple | ast.List | ast.Set) else [operand]
            found += [f"{path.name}:{node.lineno} {v.value}" for v in values
                      if isinstance(v, ast.Constant) and v.value in registry.SOURCES]
    return found


def test_only_the_model_and_the_kinds_themselves_dispatch_on_kind_names() -> None:
    skip = {PACKAGE / "model", PACKAGE / "image" / "sources"}
    wrong = [hit for path in sorted(PACKAGE.rglob("*.py")) if not skip & set(path.parents)
             for hit in kind_names_compared(path)]
    assert not wrong, wrong


def test_the_dispatch_check_sees_a_kind_compare(tmp_path: Path) -> None:
    path = tmp_path / "x.py"
    path.write_text('if img.builder in ("demo", "debootstrap"):\n    pass\nif k == "oci":\n    pass\n')
    assert kind_names_compared(path) == ["x.py:1 demo", "x.py:1 debootstrap", "x.py:3 oci"]


# --- a kind the toolchain does not know, registered by the test ----------------------

def tiny_root(dest: Path) -> None:
    (dest / "boot").mkdir(parents=True)
    (dest / "boot" / f"vmlinuz-{KVER}").write_bytes(b"toy kernel")
    (dest / "etc").mkdir()
    (dest / "etc" / "hostname").write_text("toy\n")


class ToyRoot:
    def __init__(self) -> None:
        self.version = "v1"
        self.builds = 0

    def recipe(self, img: Image) -> str:
        return self.version

    def is_built(self, img: Image) -> bool:
        return True

    def build(self, img: Image, work: Path) -> None:
        tiny_root(work / "toy" / img.name)
        self.builds += 1


class Toy:
    kind = "toy"
    missing_hint = "build the toy first"

    def __init__(self) -> None:
        self.root = ToyRoot()
        self.prepare: RootBuilder | None = self.root

    def tree(self, img: Image, work: Path) -> Source:
        return Source("root", work / "toy" / img.name)

    def key_parts(self, img: Image, work: Path, digests: DigestCache) -> tuple[str, ...]:
        return (self.root.version,)

    def files_root(self, img: Image, work: Path) -> Path:
        return work / "toy" / img.name


def test_a_new_kind_goes_through_the_build_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toy = Toy()
    monkeypatch.setitem(registry.SOURCES, "toy", toy)
    img = Image("box", "toy")
    head = Head(ipaddress.IPv4Address("10.0.0.1"), ipaddress.IPv4Network("10.0.0.0/24"),
                "http://10.0.0.1", "10.0.0.1", 80)
    p = Context(Project(tmp_path), Cluster(str(tmp_path / "cluster.yaml"), head, {"box": img}, ()), {})

    # Templates reading the image before its root is built are told what to do.
    with pytest.raises(WWError) as err:
        read_image_file(tmp_path, img, "/etc/hostname")
    assert err.value.hint == "build the toy first"

    # The `demo` task's part: the root is built once, its stamp names its recipe.
    assert images.prepared(img) is toy.root
    assert images.root_stamps(p, img) == [images.root_stamp(p, img)]
    key = images.root_key(img)
    images.build_root(p, img, key)
    assert toy.root.builds == 1
    assert images.root_stamp(p, img).read_text() == key + "\n"

    # The `image` task's part: kernel and archive from the kind's tree.
    out = tmp_path / "out"
    out.mkdir()
    built = build(images.source_of(p, img), image=out / "image.img", kernel=out / "kernel", name="box")
    assert built.kernel_version == KVER
    assert (out / "kernel").read_bytes() == b"toy kernel"
    with libarchive.file_reader(str(out / "image.img")) as arch:
        names = {e.pathname for e in arch}
    assert "etc/hostname" in names
    assert read_image_file(tmp_path, img, "/etc/hostname") == b"toy\n"

    # A new recipe is a new root and a new image key.
    first = images.image_keys(p)["box"]
    toy.root.version = "v2"
    assert images.root_key(img) != key
    assert images.image_keys(p)["box"] != first
