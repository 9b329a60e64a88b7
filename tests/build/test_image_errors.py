"""Errors of reading or building an image name the line of cluster.yaml that set up its source.

They are found by the image code, long after loading (a tarball removed since,
a root without a kernel), and that code knows only paths; the build adds the
place in cluster.yaml where the image names its source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.images import make_tarball
from tests.support.project import make_project, run_doit


def line_of(project: Path, text: str) -> int:
    lines = (project / "cluster.yaml").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def test_a_missing_tarball_names_its_line(tmp_path: Path) -> None:
    def edit(data: dict[str, Any]) -> None:
        data["images"]["demo"] = {"tarball": "missing.tar.gz"}
    project = make_project(tmp_path / "p", edit)
    done = run_doit(project)
    assert done.returncode != 0
    where = f"{project / 'cluster.yaml'}:{line_of(project, 'tarball:')}:"
    assert f"{where}5: error: image tarball {project / 'missing.tar.gz'} does not exist" in done.stderr, \
        done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_an_image_without_a_kernel_names_its_line(tmp_path: Path) -> None:
    def edit(data: dict[str, Any]) -> None:
        data["images"]["demo"] = {"tarball": "root.tar"}
    project = make_project(tmp_path / "p", edit)
    make_tarball(project / "root.tar", kernel=False)
    done = run_doit(project)
    assert done.returncode != 0
    where = f"{project / 'cluster.yaml'}:{line_of(project, 'tarball:')}:"
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert errors and all(line.startswith(f"wwstatic: {where}") or line.startswith(where)
                          for line in errors), done.stderr
    assert "Traceback" not in done.stdout + done.stderr
