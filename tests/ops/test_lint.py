"""`wwstatic lint` renders every overlay template as the build would, and mistakes the
build used to turn into tracebacks are one clean error (exit 1, nothing served changed)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.project import make_project, run_doit
from toolchain.cli import SIGPIPE_EXIT


def wwstatic(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "toolchain.cli", *args], cwd=project,
                          capture_output=True, text=True, check=False)


def served(project: Path) -> dict[str, str]:
    http = project / "output/http"
    return {str(p.relative_to(http)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(http.rglob("*")) if p.is_file()}


def clean_error(result: subprocess.CompletedProcess[str], where: str) -> None:
    """Exit 1, one error line naming `where`, a hint line, no traceback."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    errors = [line for line in lines if " error: " in line]
    assert len(errors) == 1 and where in errors[0], result.stderr
    assert lines[lines.index(errors[0]) + 1].startswith("  hint: "), result.stderr


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = make_project(tmp_path_factory.mktemp("lint") / "site")
    assert run_doit(project).returncode == 0
    return project


def test_lint_reports_a_per_node_template_error_as_the_build_does(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    motd = project / "overlays/motd/rootfs/etc/motd.j2"
    motd.write_text('Welcome\n{% if node.name == "n03" %}{{ node.tags.role }}{% endif %}\n')
    lint = wwstatic(project, "lint")
    clean_error(lint, f"{motd}:2:")
    assert "node n03" in lint.stderr and "n01" not in lint.stderr, lint.stderr
    problems = json.loads(wwstatic(project, "lint", "--json").stdout)
    assert [(p["file"], p["line"], p["node"]) for p in problems] == [(str(motd), 2, "n03")]
    assert set(problems[0]) == {"file", "line", "column", "message", "hint", "node"}
    build = run_doit(project)
    assert build.returncode != 0 and f"{motd}:2: template error for node n03" in build.stderr


def test_lint_renders_a_shared_template_once(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    hosts = project / "overlays/motd/rootfs/etc/cluster.txt.j2"
    hosts.write_text("{% for n in nodes %}{{ n.name }}\n{% endfor %}{{ head.nosuchfield }}\n")
    problems = json.loads(wwstatic(project, "lint", "--json").stdout)
    assert [(p["file"], p["line"], p["node"]) for p in problems] == [(str(hosts), 2, None)]


def test_lint_is_ok_for_the_demo_and_json_is_an_empty_list(built: Path) -> None:
    assert wwstatic(built, "lint").returncode == 0
    done = wwstatic(built, "lint", "--json")
    assert done.returncode == 0 and json.loads(done.stdout) == []


def test_lint_json_lists_cluster_file_errors(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    cluster = project / "cluster.yaml"
    cluster.write_text(cluster.read_text().replace("image: demo", "image: nosuch", 1))
    done = wwstatic(project, "lint", "--json")
    problems = json.loads(done.stdout)
    assert done.returncode == 1 and problems and all(p["file"] == str(cluster) for p in problems)
    assert all(p["line"] > 0 for p in problems), problems


@pytest.mark.parametrize("template", [b"{{ node.name | nosuchfilter }}\n", b"ok\n\xff\xfe\n"],
                         ids=["unknown-filter", "not-utf8"])
def test_a_broken_template_is_one_clean_error(tmp_path: Path, built: Path, template: bytes) -> None:
    project = tmp_path / "p"
    subprocess.run(["cp", "-a", str(built), str(project)], check=True)
    before = served(project)
    motd = project / "overlays/motd/rootfs/etc/motd.j2"
    motd.write_bytes(template)
    line = template[: template.find(b"\xff")].count(b"\n") + 1 if b"\xff" in template else 1
    for verb in (["lint"], ["build"]):
        clean_error(wwstatic(project, *verb), f"{motd}:{line}:")
    problems = json.loads(wwstatic(project, "lint", "--json").stdout)
    assert [(p["file"], p["line"]) for p in problems] == [(str(motd), line)]
    assert served(project) == before


def test_build_without_a_cluster_file_is_one_clean_error_and_makes_no_output(tmp_path: Path) -> None:
    done = wwstatic(tmp_path, "build")
    clean_error(done, str(tmp_path / "cluster.yaml"))
    assert not (tmp_path / "output").exists()


def test_a_closed_pipe_is_a_quiet_exit(built: Path) -> None:
    read, write = os.pipe()
    os.close(read)   # the reader is gone before anything is written, as `| head` can be
    try:
        done = subprocess.run([sys.executable, "-m", "toolchain.cli", "schema"], cwd=built,
                              stdout=write, stderr=subprocess.PIPE, text=True, check=False)
    finally:
        os.close(write)
    assert done.returncode == SIGPIPE_EXIT and done.stderr == ""
