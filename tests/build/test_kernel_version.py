"""A node's `kernel.version`: the node boots that kernel of its image, or the build says
which kernels the image has."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from tests.support.project import make_project, pointed, run_doit

MAC = "52-54-00-99-00-12"


def served(project: Path) -> dict[str, str]:
    http = project / "output/http"
    return {str(p.relative_to(http)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(http.rglob("*")) if p.is_file()}


def set_version(project: Path, version: str) -> None:
    cluster = project / "cluster.yaml"
    data = yaml.safe_load(cluster.read_text())
    data["nodes"]["n[01-04]"]["kernel"] = {"version": version}
    cluster.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    project = make_project(tmp_path_factory.mktemp("kver") / "site")
    done = run_doit(project)
    assert done.returncode == 0, done.stdout + done.stderr
    kernels = sorted((project / "output/work/images/demo/rootfs/boot").glob("vmlinuz-*"))
    assert len(kernels) == 1, kernels
    return project, kernels[0]


def test_a_node_boots_the_kernel_version_it_names(built: tuple[Path, Path]) -> None:
    project, kernel = built
    default = pointed(project / "output", MAC)[1]
    version = kernel.name.removeprefix("vmlinuz-")
    set_version(project, version.rsplit("-", 1)[0])   # a prefix, as the docs say
    done = run_doit(project)
    assert done.returncode == 0, done.stdout + done.stderr
    chosen = pointed(project / "output", MAC)[1]
    assert chosen != default and chosen.startswith("images/demo/vmlinuz-")
    assert (project / "output/http" / chosen).read_bytes() == kernel.read_bytes()


def test_a_kernel_version_the_image_lacks_names_the_ones_it_has(built: tuple[Path, Path]) -> None:
    project, kernel = built
    before = served(project)
    set_version(project, "0.0.1")
    done = run_doit(project)
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "no kernel 0.0.1*" in errors[0], done.stderr
    assert f"it has {kernel.name.removeprefix('vmlinuz-')}" in errors[0], done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert served(project) == before
