"""Image sources through the doit build: outputs, iPXE layers, and no rebuild without change."""

from __future__ import annotations

import os
import shutil
import tarfile
import time
from pathlib import Path

import libarchive

from tests.conftest import make_project, run_doit
from tests.test_build import ran
from tests.test_image_sources import add, make_tarball


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
    assert (app / "vmlinuz").read_bytes() == (http / "images/demo/vmlinuz").read_bytes()
    with libarchive.file_reader(str(app / "modules.img.gz")) as arch:
        paths = [e.pathname for e in arch]
    assert paths[:2] == ["lib", "lib/modules"]
    assert any(p.endswith("/virtio_net.ko") for p in paths), paths
    script = (http / "ipxe/52-54-00-99-00-11.ipxe").read_text()
    assert "initrd=image initrd=modules initrd=system" in script
    assert "initrd --name modules ${base}/images/app/modules.img.gz" in script
    assert script.index("--name image") < script.index("--name modules") < script.index("--name system")

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
    assert ran(again) == {"image:app"}


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
    assert (project / "output/http/images/dir/image.img").read_bytes().startswith(b"070701")
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
