"""Image sources through the doit build: outputs, iPXE layers, and no rebuild without change."""

from __future__ import annotations

import os
import shutil
import tarfile
import time
from pathlib import Path

import libarchive

from tests.support.images import add, make_tarball
from tests.support.project import make_project, pointed, ran, run_doit


def test_tarball_image_with_kernel_from_demo(tmp_path: Path) -> None:
    def edit(data: dict[str, object]) -> None:
        data["images"]["app"] = {  # type: ignore[index]
            "tarball": "app.tar.gz", "kernel": {"from": "demo"}, "exclude": ["/boot"]}
        data["profiles"]["default"]["image"] = "app"  # type: ignore[index]

    project = make_project(tmp_path / "p", edit)
    tarball = make_tarball(project / "app.tar.gz", kernel=False)
    first = run_doit(project)
    assert first.returncode == 0, first.stdout + first.stderr
    http = project / "output/http"
    app = http / "images/app"
    (kernel,) = app.glob("vmlinuz-*")
    (demo_kernel,) = (http / "images/demo").glob("vmlinuz-*")
    assert kernel.read_bytes() == demo_kernel.read_bytes()
    (modules,) = app.glob("modules-*.img.gz")
    with libarchive.file_reader(str(modules)) as arch:
        paths = [e.pathname for e in arch]
    assert paths[:2] == ["lib", "lib/modules"]
    assert any(p.endswith("/virtio_net.ko") for p in paths), paths
    files = pointed(project / "output", "52-54-00-99-00-11")
    assert files[1:4] == [str(kernel.relative_to(http)), next(str(f.relative_to(http)) for f in
                          app.glob("image-*")), str(modules.relative_to(http))]
    group = (http / files[0]).read_text()
    assert "initrd=image initrd=modules initrd=system" in group
    assert group.index("--name image") < group.index("--name modules") < group.index("--name system")

    # Nothing changed: nothing runs. A copy of the same bytes (new inode and
    # mtime) is recognised by its digest: still nothing.
    assert ran(run_doit(project)) == set()
    shutil.copy(tarball, tmp_path / "copy")
    time.sleep(0.01)
    os.replace(tmp_path / "copy", tarball)
    assert ran(run_doit(project)) == set()
    # New content: the image is built again, and only it.
    with tarfile.open(tarball, "w:gz") as tar:
        add(tar, "etc/hostname", b"changed\n")
    again = run_doit(project)
    assert again.returncode == 0, again.stdout + again.stderr
    # Its blobs get new names, which only the group's pointers name.
    assert ran(again) == {"image:app", "publish", "gc"}


def test_root_image_rebuilt_on_metadata_change_only(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "boot").mkdir(parents=True)
    (root / "boot/vmlinuz-6.1.0-9-amd64").write_bytes(b"kernel")
    (root / "etc").mkdir()
    (root / "etc/motd").write_text("hi\n")

    def edit(data: dict[str, object]) -> None:
        data["images"]["dir"] = {"root": str(root), "compression": "none"}  # type: ignore[index]

    project = make_project(tmp_path / "p", edit)
    assert run_doit(project, "image:dir").returncode == 0
    (image,) = (project / "output/http/images/dir").glob("image-*.img")
    assert image.read_bytes().startswith(b"070701")
    assert ran(run_doit(project, "image:dir")) == set()
    os.chmod(root / "etc/motd", 0o600)
    assert ran(run_doit(project, "image:dir")) == {"image:dir"}


def test_missing_tarball_fails_cleanly(tmp_path: Path) -> None:
    def edit(data: dict[str, object]) -> None:
        data["images"]["app"] = {"tarball": "nothing.tar"}  # type: ignore[index]

    project = make_project(tmp_path / "p", edit)
    result = run_doit(project, "image:app")
    assert result.returncode != 0
    assert f"image tarball {project / 'nothing.tar'} does not exist" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
