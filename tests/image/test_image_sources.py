"""Image sources: root directories, tarballs and OCI images give the same archives.

Tarballs and OCI layouts are made here with Python's tarfile, with the cases
that matter: owners that are not the building user's, a hard link, a device
node, a whiteout, an opaque directory, and parents missing from the tar.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import libarchive
import pytest

from tests.support.images import KVER, add, make_tarball
from toolchain import progress
from toolchain.archive import Compression
from toolchain.errors import WWError
from toolchain.image.builder import build, fingerprint, open_tree
from toolchain.image.sources.base import DigestCache, Source
from toolchain.image.tree import dir_fingerprint, matcher


def read_back(path: Path) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    with libarchive.file_reader(str(path)) as arch:
        for e in arch:
            data = b"".join(e.get_blocks()) if e.isreg else b""
            out[e.pathname] = {"mode": e.mode, "uid": e.uid, "gid": e.gid, "data": data,
                               "link": e.linkpath, "rdev": (e.rdevmajor, e.rdevminor)}
    return out


def unpack(img: Path, dest: Path) -> Path:
    """Unpack with GNU cpio, as root, the way the kernel would see it (owners, links)."""
    raw = subprocess.run(["zstd" if img.suffix == ".zst" else "gzip", "-dc"], input=img.read_bytes(),
                         capture_output=True, check=True).stdout if img.suffix in (".gz", ".zst") \
        else img.read_bytes()
    dest.mkdir()
    subprocess.run(["cpio", "-idm", "--quiet", "--no-absolute-filenames"], input=raw, cwd=dest,
                   check=True)
    return dest


# --- building sources ---------------------------------------------------------------


Member = tuple[str, bytes | None, dict[str, object]]


def layer(path: Path, members: list[Member], gz: bool) -> dict[str, object]:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tar:
        for name, data, kw in members:
            add(tar, name, data, **kw)  # type: ignore[arg-type]
    return blob(path, buf.getvalue(), "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if gz else ""))


def blob(layout: Path, data: bytes, media: str) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs/sha256").mkdir(parents=True, exist_ok=True)
    (layout / "blobs/sha256" / digest).write_bytes(data)
    return {"mediaType": media, "digest": f"sha256:{digest}", "size": len(data)}


def make_oci(layout: Path, refs: tuple[str, ...] = ("latest",)) -> Path:
    """Two layers: the second deletes, hides and replaces things of the first."""
    d = {"kind": tarfile.DIRTYPE, "mode": 0o755}
    base = layer(layout, [
        ("etc", None, d), ("etc/old.conf", b"old", {}), ("etc/keep.conf", b"keep", {}),
        ("opt", None, d), ("opt/app", None, d), ("opt/app/a", b"a", {}), ("opt/app/sub", None, d),
        ("opt/app/sub/b", b"b", {}), ("usr", None, d), ("usr/bin", None, d),
        ("usr/bin/tool", b"tool v1", {"mode": 0o755, "uid": 7}),
        ("usr/bin/tool-link", None, {"kind": tarfile.LNKTYPE, "link": "usr/bin/tool"}),
        ("var", None, d), ("var/gone", None, d), ("var/gone/deep", b"x", {}),
        ("boot", None, d), (f"boot/vmlinuz-{KVER}", b"the kernel", {}),
    ], gz=True)
    top = layer(layout, [
        ("etc/.wh.old.conf", b"", {}), ("var/.wh.gone", b"", {}),
        ("opt/app/.wh..wh..opq", b"", {}), ("opt/app/c", b"c", {}),
        ("etc/keep.conf", b"changed", {"uid": 3, "gid": 4}),
    ], gz=False)
    config = blob(layout, b'{"architecture": "amd64", "os": "linux"}',
                  "application/vnd.oci.image.config.v1+json")
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": config, "layers": [base, top]}).encode()
    desc = blob(layout, manifest, "application/vnd.oci.image.manifest.v1+json")
    index = {"schemaVersion": 2, "manifests": [
        {**desc, "annotations": {"org.opencontainers.image.ref.name": r}} for r in refs]}
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return layout


def build_to(tmp: Path, src: Source, name: str = "out", **kw: object) -> Path:
    out = tmp / f"{name}.img.gz"
    build(src, image=out, kernel=tmp / f"{name}.vmlinuz", work=tmp / "work", **kw)  # type: ignore[arg-type]
    return out


# --- tarballs -----------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".tar", ".tar.gz", ".tar.xz", ".tar.zst"])
def test_tarball_owners_links_and_kernel(tmp_path: Path, suffix: str) -> None:
    tarball = make_tarball(tmp_path / f"root{suffix}")
    out = build_to(tmp_path, Source("tarball", tarball), exclude=("/boot",))
    got = read_back(out)
    assert got["etc/shadow"]["gid"] == 42 and got["etc/shadow"]["mode"] == stat.S_IFREG | 0o640
    assert got["home/user/.profile"]["uid"] == 1000, "owners come from the tar, not the builder"
    assert got["usr/bin/tool"]["mode"] == stat.S_IFREG | 0o4755
    assert got["bin"]["link"] == "usr/bin"
    assert got["dev/console"]["mode"] == stat.S_IFCHR | 0o600
    assert got["dev/console"]["rdev"] == (5, 1)
    # Parents the tar left out are made, before their children.
    paths = list(got)
    assert got["usr"]["mode"] == stat.S_IFDIR | 0o755
    assert paths.index("usr") < paths.index("usr/bin") < paths.index("usr/bin/tool")
    assert not any(p.startswith("boot") for p in paths)
    # The newest non-debug kernel, found although /boot is excluded from the archive.
    assert (tmp_path / "out.vmlinuz").read_bytes() == b"the kernel"
    dest = unpack(out, tmp_path / "x")
    assert (dest / "usr/bin/tool").stat().st_ino == (dest / "usr/bin/tool2").stat().st_ino
    assert (dest / "usr/bin/tool2").read_bytes().startswith(b"\x7fELF")
    assert (dest / "home/user/.profile").stat().st_uid == 1000


def test_tarball_and_directory_give_the_same_bytes(tmp_path: Path) -> None:
    tarball = make_tarball(tmp_path / "root.tar")
    root = tmp_path / "root"
    root.mkdir()
    # GNU tar as root keeps owners, modes, device nodes and hard links.
    subprocess.run(["tar", "-xf", str(tarball), "-C", str(root)], check=True)
    from_dir = build_to(tmp_path, Source("root", root), "dir")
    from_tar = build_to(tmp_path, Source("tarball", tarball), "tar")
    assert from_dir.read_bytes() == from_tar.read_bytes()
    again = build_to(tmp_path, Source("tarball", tarball), "again")
    assert again.read_bytes() == from_tar.read_bytes()


def test_tarball_errors(tmp_path: Path) -> None:
    with pytest.raises(WWError, match="does not exist"):
        build_to(tmp_path, Source("tarball", tmp_path / "missing.tar"))
    junk = tmp_path / "junk.tar"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(WWError, match="not a readable tar archive") as err:
        build_to(tmp_path, Source("tarball", junk))
    assert "docker export" in err.value.hint
    empty = tmp_path / "empty.tar"
    empty.write_bytes(b"")
    with pytest.raises(WWError, match="is empty"):
        build_to(tmp_path, Source("tarball", empty))
    with pytest.raises(WWError, match="no kernel found") as err:
        build_to(tmp_path, Source("tarball", make_tarball(tmp_path / "nok.tar", kernel=False)))
    assert "kernel.from" in err.value.hint
    with pytest.raises(WWError, match=r"no kernel 5\.10"):
        build_to(tmp_path, Source("tarball", make_tarball(tmp_path / "k.tar")), version="5.10")
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        add(tar, "../../etc/passwd", b"x")
    with pytest.raises(WWError, match="points outside the image"):
        build_to(tmp_path, Source("tarball", evil))
    dangling = tmp_path / "dangling.tar"
    with tarfile.open(dangling, "w") as tar:
        add(tar, "a", kind=tarfile.LNKTYPE, link="b")
    with pytest.raises(WWError, match="hard link a points to b"):
        build_to(tmp_path, Source("tarball", dangling))
    assert not list(tmp_path.glob(".*.tmp")), "temporary files left behind"


def test_sparse_file_over_4_gib_in_a_tar(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "boot").mkdir(parents=True)
    (root / f"boot/vmlinuz-{KVER}").write_bytes(b"k")
    with (root / "huge").open("wb") as f:
        f.truncate(4 * 1024**3 + 1)  # sparse: no disk used, here or in the tar
    tarball = tmp_path / "huge.tar"
    subprocess.run(["tar", "--sparse", "-cf", str(tarball), "-C", str(root), "."], check=True)
    assert tarball.stat().st_size < 1 << 20
    with pytest.raises(WWError, match=r"huge is 4294967297 bytes; an initrd \(cpio newc\) cannot hold"):
        build_to(tmp_path, Source("tarball", tarball))
    assert not (tmp_path / "out.img.gz").exists()


# --- OCI ------------------------------------------------------------------------------

def test_oci_layers_whiteouts_and_opaque_dirs(tmp_path: Path) -> None:
    layout = make_oci(tmp_path / "layout")
    out = build_to(tmp_path, Source("oci", layout))
    got = read_back(out)
    assert "etc/old.conf" not in got, "whiteout .wh.old.conf deletes the lower file"
    assert not any(p.startswith("var/gone") for p in got), "a whiteout deletes a whole directory"
    assert "var" in got
    assert got["etc/keep.conf"]["data"] == b"changed" and got["etc/keep.conf"]["uid"] == 3
    # The opaque directory hides the lower layer's files, keeps its own.
    assert sorted(p for p in got if p.startswith("opt/app/")) == ["opt/app/c"]
    assert not any(".wh." in p for p in got)
    assert got["usr/bin/tool"]["uid"] == 7
    dest = unpack(out, tmp_path / "x")
    assert (dest / "usr/bin/tool").stat().st_ino == (dest / "usr/bin/tool-link").stat().st_ino
    assert (tmp_path / "out.vmlinuz").read_bytes() == b"the kernel"


def test_oci_archive_same_as_layout(tmp_path: Path) -> None:
    layout = make_oci(tmp_path / "layout")
    oci_tar = tmp_path / "image.oci.tar"
    with tarfile.open(oci_tar, "w") as tar:
        tar.add(layout, ".")
    a = build_to(tmp_path, Source("oci", layout), "a")
    b = build_to(tmp_path, Source("oci", oci_tar), "b")
    assert a.read_bytes() == b.read_bytes()


def test_oci_errors(tmp_path: Path) -> None:
    with pytest.raises(WWError, match="does not exist"):
        build_to(tmp_path, Source("oci", tmp_path / "nothing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(WWError, match=r"not an OCI image layout: it has no index\.json") as err:
        build_to(tmp_path, Source("oci", tmp_path / "empty"))
    assert "skopeo" in err.value.hint
    two = make_oci(tmp_path / "two", refs=("v1", "v2"))
    with pytest.raises(WWError, match="holds 2 images") as err:
        build_to(tmp_path, Source("oci", two))
    assert "v1, v2" in err.value.hint
    with pytest.raises(WWError, match="has no image named 'v3'"):
        build_to(tmp_path, Source("oci", two, ref="v3"))
    build_to(tmp_path, Source("oci", two, ref="v2"))
    for b in (two / "blobs/sha256").iterdir():
        if b.stat().st_size > 200:  # a layer
            b.unlink()
            break
    with pytest.raises(WWError, match="is missing"):
        build_to(tmp_path, Source("oci", two, ref="v2"))


# --- kernels from another image -----------------------------------------------------

def test_kernel_and_modules_layer_from_another_image(tmp_path: Path) -> None:
    kroot = tmp_path / "kernel-image"
    mods = kroot / f"usr/lib/modules/{KVER}"
    (mods / "kernel/drivers/net").mkdir(parents=True)
    (mods / "kernel/drivers/net/virtio_net.ko").write_bytes(b"module")
    (mods / "modules.dep").write_text("kernel/drivers/net/virtio_net.ko:\n")
    (kroot / "boot").mkdir()
    (kroot / f"boot/vmlinuz-{KVER}").write_bytes(b"the other kernel")
    os.symlink("usr/lib", kroot / "lib")  # merged /usr, as in Debian 12
    container = make_tarball(tmp_path / "container.tar", kernel=False)
    out = build_to(tmp_path, Source("tarball", container), kernel_src=Source("root", kroot),
                   modules=tmp_path / "modules.img.zst", compression=Compression.ZSTD)
    assert (tmp_path / "out.vmlinuz").read_bytes() == b"the other kernel"
    assert out.read_bytes()[:4] == b"\x28\xb5\x2f\xfd"
    layer = read_back(tmp_path / "modules.img.zst")
    assert list(layer) == ["lib", "lib/modules", f"lib/modules/{KVER}", f"lib/modules/{KVER}/kernel",
                           f"lib/modules/{KVER}/kernel/drivers", f"lib/modules/{KVER}/kernel/drivers/net",
                           f"lib/modules/{KVER}/kernel/drivers/net/virtio_net.ko",
                           f"lib/modules/{KVER}/modules.dep"]
    shutil.rmtree(mods)
    with pytest.raises(WWError, match=f"has kernel {KVER} but no /lib/modules/{KVER}"):
        build_to(tmp_path, Source("tarball", container), kernel_src=Source("root", kroot),
                 modules=tmp_path / "m.img")


# --- archive options -------------------------------------------------------------------

@pytest.mark.parametrize("external", [True, False])
@pytest.mark.parametrize("compression", list(Compression))
def test_compressions_deterministic_and_readable(tmp_path: Path, compression: Compression,
                                                 external: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not external:  # libarchive's own filters, when pigz or zstd are not installed
        monkeypatch.setattr(shutil, "which", lambda name: None)
    src = Source("tarball", make_tarball(tmp_path / "root.tar"))
    a = build_to(tmp_path, src, "a", compression=compression)
    b = build_to(tmp_path, src, "b", compression=compression)
    raw = a.read_bytes()
    assert raw == b.read_bytes()
    magic = {Compression.GZIP: b"\x1f\x8b", Compression.ZSTD: b"\x28\xb5\x2f\xfd",
             Compression.NONE: b"070701"}[compression]
    assert raw.startswith(magic)
    if compression is Compression.GZIP:
        assert raw[4:8] == b"\0\0\0\0", "gzip header must carry no timestamp"
    assert read_back(a)["etc/hostname"]["data"] == b"node\n"


def test_excludes_on_tarballs(tmp_path: Path) -> None:
    src = Source("tarball", make_tarball(tmp_path / "root.tar"))
    got = read_back(build_to(tmp_path, src, exclude=("/home", "/usr/bin/tool*", "/etc/*")))
    assert "etc" in got and not any(p.startswith(("etc/", "home", "usr/bin/tool")) for p in got)
    assert "usr/bin" in got and "dev/console" in got


def test_exclude_matcher() -> None:
    m = matcher(("/boot/*", "var/cache/", "*.pyc"))
    assert m("boot/vmlinuz") and m("boot/a/b") and not m("boot")
    assert m("var/cache") and m("var/cache/apt/x") and not m("var/cached")
    assert m("usr/lib/x.pyc")
    assert not matcher(())("anything")


def test_progress_shown_on_long_builds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(progress, "QUIET_SECONDS", 0.0)
    monkeypatch.setattr(progress, "EVERY_SECONDS", 0.0)
    monkeypatch.setenv("WWSTATIC_PROGRESS", "1")
    build_to(tmp_path, Source("tarball", make_tarball(tmp_path / "root.tar")), name="x")
    assert capsys.readouterr().err == ""  # no name, no progress
    build(Source("tarball", tmp_path / "root.tar"), image=tmp_path / "y.img", kernel=tmp_path / "k",
          name="demo")
    err = capsys.readouterr().err
    assert "wwstatic: image demo: " in err and "(done)" in err and "100%" in err
    monkeypatch.setenv("WWSTATIC_PROGRESS", "0")
    build(Source("tarball", tmp_path / "root.tar"), image=tmp_path / "y.img", kernel=tmp_path / "k",
          name="demo")
    assert capsys.readouterr().err == ""


# --- deciding that nothing changed ----------------------------------------------------

def test_dir_fingerprint_sees_metadata_changes(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/a").write_text("a")
    first = dir_fingerprint(root)
    assert dir_fingerprint(root) == first
    changes: list[Callable[[], object]] = [
        lambda: os.chmod(root / "etc/a", 0o600), lambda: os.chown(root / "etc/a", 5, 5),
        lambda: os.utime(root / "etc/a", ns=(1, 1)), lambda: (root / "etc/b").touch(),
        lambda: (root / "etc/a").write_text("bb")]
    seen = {first}
    for change in changes:
        change()
        now = dir_fingerprint(root)
        assert now not in seen
        seen.add(now)


def test_tarball_digest_cached_by_stat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tarball = make_tarball(tmp_path / "root.tar")
    cache = DigestCache(tmp_path / "digests.json")
    first = fingerprint(Source("tarball", tarball), cache)
    assert first == "tarball:" + hashlib.sha256(tarball.read_bytes()).hexdigest()
    # Same stat: answered from the cache without reading the file.
    reads: list[Path] = []
    real_open = Path.open

    def spy(self: Path, *a: object, **kw: object) -> object:
        reads.append(self)
        return real_open(self, *a, **kw)  # type: ignore[call-overload]

    monkeypatch.setattr(Path, "open", spy)
    again = DigestCache(tmp_path / "digests.json")
    assert fingerprint(Source("tarball", tarball), again) == first
    assert tarball not in reads
    # Replaced by an identical copy: read once, same fingerprint, so no rebuild.
    shutil.copy(tarball, tmp_path / "copy.tar")
    os.replace(tmp_path / "copy.tar", tarball)
    assert fingerprint(Source("tarball", tarball), again) == first
    assert tarball in reads
    missing = fingerprint(Source("tarball", tmp_path / "gone.tar"), again)
    assert missing.startswith("unreadable:")


def test_open_tree_spool_is_removed(tmp_path: Path) -> None:
    work = tmp_path / "work"
    with open_tree(Source("tarball", make_tarball(tmp_path / "root.tar")), work) as tree:
        e = tree["etc/hostname"]
        assert e.source is not None and Path(e.source).read_bytes()[e.offset:e.offset + e.size] == b"node\n"
    assert not list(work.iterdir())
