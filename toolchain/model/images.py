"""The `images:` section: one source per image, its kernel and how it is packed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from toolchain.errors import Loc
from toolchain.model import spec
from toolchain.model.reader import Reader, Tree, get, key_loc, loc_at, setting
from toolchain.model.types import (
    BUILT_IMAGE_EXCLUDES,
    DEBOOTSTRAP_EXCLUDES,
    Debootstrap,
    Image,
)
from toolchain.model.values import as_map, as_name
from toolchain.model.yamlsrc import YNode


def read_images(r: Reader, path: Path, raw: YNode | None) -> dict[str, Image]:
    out: dict[str, Image] = {}
    ymap = r.guard(as_map, raw, "images") if raw is not None else None
    froms: dict[str, tuple[str, Loc]] = {}
    for key, value in ymap.items if ymap else ():
        name = r.guard(as_name, key, "image name")
        before = len(r.errors)
        sub = r.struct(spec.IMAGE, value, f"image {key.text}", "cluster")
        if name is None or len(r.errors) > before:
            continue
        image = _image(r, path, name, sub, value)
        if image is not None:
            out[name] = image
            if image.kernel_from:
                froms[name] = (image.kernel_from, loc_at(sub, "kernel", "from", default=value.loc))
    for name, (other, loc) in froms.items():
        if other == name or other not in out:
            r.error(f"image {name}: kernel.from `{other}` is not another image", loc,
                       "defined images: " + (", ".join(sorted(set(out) - {name})) or "none"))
        elif out[other].kernel_from:
            r.error(f"image {name}: kernel.from `{other}` takes its own kernel from "
                       f"`{out[other].kernel_from}`", loc,
                       f"name the image that has the kernel: `{out[other].kernel_from}`")
    return out

def _image(r: Reader, path: Path, name: str, sub: Tree, value: YNode) -> Image | None:
    builders = [b for b in IMAGE_SOURCES if b in sub]
    if len(builders) != 1:
        what = "has none" if not builders else "has " + " and ".join(f"`{b}`" for b in builders)
        r.error(f"image {name} needs exactly one source: {', '.join(IMAGE_SOURCES[:-1])} or "
                   f"{IMAGE_SOURCES[-1]} ({what})", value.loc,
                   "e.g. `root: /path/to/chroot`, `tarball: rootfs.tar.zst`, "
                   "or `demo: {}` for the built-in demo image")
        return None
    common: dict[str, Any] = {
        "exclude": tuple(setting(spec.IMAGE, sub, "exclude")),
        "compression": setting(spec.IMAGE, sub, "compression"),
        "kernel_version": setting(spec.IMAGE, sub, "kernel", "version"),
        "kernel_from": setting(spec.IMAGE, sub, "kernel", "from"),
        "loc": key_loc(value, builders[0]),
    }
    return READERS[builders[0]](Ctx(r, path.parent, name, sub, value), common)


@dataclass(frozen=True)
class Ctx:
    """What a kind's reader reads: the image's entry, and where relative paths start."""
    r: Reader
    base: Path
    name: str
    sub: Tree
    value: YNode


def _root(c: Ctx, common: dict[str, Any]) -> Image | None:
    return Image(c.name, "root", root=get(c.sub, "root"), **common)

def _tarball(c: Ctx, common: dict[str, Any]) -> Image | None:
    return Image(c.name, "tarball", path=str(c.base / get(c.sub, "tarball")), **common)

def _oci(c: Ctx, common: dict[str, Any]) -> Image | None:
    if "path" not in c.sub["oci"]:
        c.r.error(f"image {c.name}: oci needs `path`", key_loc(c.value, "oci"),
                  "oci: {path: ./layout} (a directory or a tar)")
        return None
    return Image(c.name, "oci", path=str(c.base / get(c.sub, "oci", "path")),
                 oci_ref=setting(spec.IMAGE, c.sub, "oci", "ref"), **common)

def _demo(c: Ctx, common: dict[str, Any]) -> Image | None:
    common["exclude"] = common["exclude"] or BUILT_IMAGE_EXCLUDES
    return Image(c.name, "demo",
                 kernel_package=setting(spec.IMAGE, c.sub, "demo", "kernel_package"),
                 modules=tuple(setting(spec.IMAGE, c.sub, "demo", "modules")), **common)

def _debootstrap(c: Ctx, common: dict[str, Any]) -> Image | None:
    r, name, value = c.r, c.name, c.value
    d = c.sub["debootstrap"]
    if "suite" not in d:
        r.error(f"image {name}: debootstrap needs `suite`", key_loc(value, "debootstrap"),
                   "the Debian release to install, e.g. suite: bookworm")
        return None
    mirror = setting(spec.DEBOOTSTRAP, d, "mirror")
    if mirror and urlsplit(mirror).scheme not in ("http", "https", "file"):
        r.error(f"image {name}: debootstrap mirror `{mirror}` is not an http, https or file URL",
                   loc_at(d, "mirror", default=value.loc),
                   "write the mirror's URL, or leave it out to use this machine's apt source")
        return None
    common["exclude"] = common["exclude"] or DEBOOTSTRAP_EXCLUDES
    boot = Debootstrap(get(d, "suite"), setting(spec.DEBOOTSTRAP, d, "variant"),
                       tuple(setting(spec.DEBOOTSTRAP, d, "include")),
                       tuple(setting(spec.DEBOOTSTRAP, d, "components")), mirror)
    return Image(name, "debootstrap", debootstrap=boot, **common)


# Each kind's settings to an Image; toolchain.image.registry has the same kinds.
READERS: dict[str, Callable[[Ctx, dict[str, Any]], Image | None]] = {
    "demo": _demo, "root": _root, "tarball": _tarball, "oci": _oci, "debootstrap": _debootstrap}
# The kinds an image entry can name, in the order messages list them.
IMAGE_SOURCES = tuple(READERS)
