"""cluster.yaml image sources: each kind read into the model, each mistake located."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.model import errors_of, expect_error, load
from toolchain.errors import WWError
from toolchain.image import debootstrap
from toolchain.model.types import DEBOOTSTRAP_EXCLUDES, Debootstrap, Image

HEAD = "head:\n  ip: 10.0.0.1\n  network: 10.0.0.0/24\nimages:\n"  # images' first line is 5


def images(tmp_path: Path, body: str) -> dict[str, Image]:
    return load(tmp_path, HEAD + body).images


def test_every_source_kind(tmp_path: Path) -> None:
    got = images(tmp_path, """\
  dir:
    root: /srv/img
    compression: none
  tar:
    tarball: images/rootfs.tar.zst
    kernel: {from: deb}
    exclude: [/var/cache/*]
  app:
    oci: {path: /srv/app.oci.tar, ref: v2}
  deb:
    debootstrap:
      suite: bookworm
      include: [systemd-sysv, linux-image-amd64]
    kernel: {version: "6.1"}
    compression: zstd
""")
    assert got["dir"] == Image("dir", "root", root="/srv/img", compression="none")
    # A relative path starts at the cluster file's directory.
    assert got["tar"] == Image("tar", "tarball", path=str(tmp_path / "images/rootfs.tar.zst"),
                               kernel_from="deb", exclude=("/var/cache/*",))
    assert got["app"] == Image("app", "oci", path="/srv/app.oci.tar", oci_ref="v2")
    assert got["deb"] == Image("deb", "debootstrap", compression="zstd", kernel_version="6.1",
                               exclude=DEBOOTSTRAP_EXCLUDES, debootstrap=Debootstrap(
                                   "bookworm", "minbase", ("systemd-sysv", "linux-image-amd64")))


def test_two_sources(tmp_path: Path) -> None:
    (err,) = errors_of(tmp_path, HEAD + "  img:\n    root: /x\n    tarball: x.tar\n")
    assert "image img needs exactly one source" in err.message and "`root` and `tarball`" in err.message
    assert err.loc is not None and err.loc.line == 6


@pytest.mark.parametrize(("body", "line", "col", "message"), [
    ("  img:\n    oci: {ref: v1}\n", 6, 5, "image img: oci needs `path`"),
    ("  img:\n    debootstrap: {variant: minbase}\n", 6, 5, "image img: debootstrap needs `suite`"),
    ("  img:\n    debootstrap: {suite: bookworm, mirror: 'ftp.example.invalid/debian'}\n", 6, 44,
     "mirror `ftp.example.invalid/debian` is not an http, https or file URL"),
    ("  img:\n    debootstrap: {suite: bookworm, variant: tiny}\n", 6, 45, "variant"),
    ("  img:\n    root: /x\n    compression: xz\n", 7, 18, "compression"),
    ("  img:\n    root: /x\n    kernel: {from: other}\n", 7, 20,
     "image img: kernel.from `other` is not another image"),
    ("  img:\n    root: /x\n    kernel: {from: img}\n", 7, 20, "kernel.from `img` is not another image"),
    ("  a:\n    root: /x\n    kernel: {from: b}\n  b:\n    root: /y\n    kernel: {from: c}\n"
     "  c:\n    root: /z\n", 7, 20, "image a: kernel.from `b` takes its own kernel from `c`"),
    ("  img:\n    tarball: [a, b]\n", 6, 14, "must be a string"),
])
def test_image_mistakes(tmp_path: Path, body: str, line: int, col: int, message: str) -> None:
    expect_error(tmp_path, HEAD + body, line, col, message)


def test_apt_mirror_from_deb822_and_one_line_sources(tmp_path: Path) -> None:
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list.d/security.sources").write_text(
        "Types: deb\nURIs: http://security.example.invalid/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n")
    (apt / "sources.list.d/off.sources").write_text(
        "Enabled: no\nTypes: deb\nURIs: http://off.example.invalid/debian\nSuites: bookworm\n")
    (apt / "sources.list.d/main.sources").write_text(
        "# the site mirror\nTypes: deb deb-src\nURIs: http://mirror.example.invalid/debian\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n")
    assert debootstrap.apt_mirror(apt) == "http://mirror.example.invalid/debian"
    for p in (apt / "sources.list.d").iterdir():
        p.unlink()
    (apt / "sources.list").write_text(
        "deb-src http://src.example.invalid/debian bookworm main\n"
        "deb [signed-by=/usr/share/keyrings/k.gpg arch=amd64] http://one.example.invalid/debian "
        "bookworm main # comment\n")
    assert debootstrap.apt_mirror(apt) == "http://one.example.invalid/debian"
    (apt / "sources.list").write_text("# nothing\n")
    with pytest.raises(WWError, match="no Debian mirror found") as err:
        debootstrap.apt_mirror(apt)
    assert "debootstrap.mirror" in err.value.hint


def test_debootstrap_root_named_by_recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    a = Debootstrap("bookworm", include=("kmod", "iproute2"), mirror="http://m.example.invalid/debian")
    b = Debootstrap("bookworm", include=("iproute2", "kmod"), mirror="http://m.example.invalid/debian")
    c = Debootstrap("bookworm", include=("kmod",), mirror="http://m.example.invalid/debian")
    assert debootstrap.root_dir(a) == debootstrap.root_dir(b) != debootstrap.root_dir(c)
    assert debootstrap.root_dir(a).is_relative_to(tmp_path / "cache/wwstatic/debootstrap")
    assert not debootstrap.is_built(a)
