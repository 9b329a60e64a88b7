"""The doit build of a whole project: incremental, reproducible, loud on bad input."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_project, run_doit


def snapshot(output: Path) -> dict[str, tuple[str, int]]:
    """Digest and mtime of every file in output/ (but doit's own store)."""
    return {str(p.relative_to(output)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(output.rglob("*")) if p.is_file() and p.name != ".doit.db"}


def served(output: Path) -> dict[str, str]:
    """Digests of what nodes are served, which must not depend on where it was built."""
    files = [p for sub in ("http", "tftp") for p in (output / sub).rglob("*") if p.is_file()]
    files.append(output / "etc/dhcpd.conf")
    return {str(p.relative_to(output)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(files)}


def ran(result: subprocess.CompletedProcess[str]) -> set[str]:
    """The tasks doit executed (".  name"), not the up-to-date ones ("-- name")."""
    return {line[3:].strip() for line in result.stdout.splitlines() if line.startswith(".  ")}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = make_project(tmp_path_factory.mktemp("build") / "site")
    result = run_doit(project)
    assert result.returncode == 0, result.stdout + result.stderr
    return project


def test_every_artifact_is_built(built: Path) -> None:
    out = built / "output"
    for rel in ("tftp/undionly.kpxe", "tftp/snponly.efi", "etc/dhcpd.conf", "etc/nginx.conf",
                "http/images/demo/vmlinuz", "http/images/demo/image.img.gz",
                "http/ipxe/unknown.ipxe", "http/ipxe/52-54-00-99-00-13.ipxe",
                "http/nodes/n03/system.img.gz", "http/nodes/n03/runtime.img.gz"):
        assert (out / rel).is_file(), rel
    assert not list(out.rglob(".*.tmp")), "temporary files left behind"


def test_doit_list_documents_tasks(built: Path) -> None:
    result = run_doit(built, "list")
    for task in ("tftp", "demo", "image", "system", "runtime", "ipxe", "dhcp", "nginx"):
        assert re.search(rf"^{task}\s+\S", result.stdout, re.M), result.stdout


def test_no_change_runs_no_task(built: Path) -> None:
    before = snapshot(built / "output")
    result = run_doit(built)
    assert result.returncode == 0
    assert ran(result) == set(), result.stdout
    assert snapshot(built / "output") == before


def test_same_inputs_give_identical_bytes(built: Path, tmp_path: Path) -> None:
    # Another checkout path, built from scratch: every served byte is the same.
    other = make_project(tmp_path / "elsewhere" / "copy")
    result = run_doit(other)
    assert result.returncode == 0, result.stderr
    assert served(other / "output") == served(built / "output")


def test_one_node_change_rebuilds_what_it_affects(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    assert run_doit(project).returncode == 0
    text = (project / "cluster.yaml").read_text()
    (project / "cluster.yaml").write_text(text.replace('"52:54:00:99:00:13"', '"52:54:00:99:00:33"'))
    result = run_doit(project)
    assert result.returncode == 0, result.stderr
    # Runtime overlays render `nodes` (the hosts file), so any node's change
    # reaches them; other nodes' system overlays and scripts are untouched.
    runtime = {f"runtime:n0{i}" for i in range(1, 5)}
    assert ran(result) == {"system:n03", "ipxe:n03", "dhcp:dhcpd.conf"} | runtime
    assert (project / "output/http/ipxe/52-54-00-99-00-33.ipxe").is_file()
    # A node's address is in every node's hosts file (runtime overlay), and in
    # nginx's rules (whom its own files are served to).
    text = (project / "cluster.yaml").read_text()
    (project / "cluster.yaml").write_text(text.replace("ip: 10.99.0.11", "ip: 10.99.0.21"))
    result = run_doit(project)
    expected = {f"{kind}:n0{i}" for kind in ("system", "runtime") for i in range(1, 5)}
    assert ran(result) == expected | {"dhcp:dhcpd.conf", "nginx:nginx.conf"}


def test_bad_cluster_yaml_is_reported_and_output_kept(built: Path, tmp_path: Path) -> None:
    project = tmp_path / "bad"
    shutil.copytree(built, project, ignore=shutil.ignore_patterns("work"))
    before = snapshot(project / "output")
    text = (project / "cluster.yaml").read_text()
    lines = text.splitlines()
    line = next(i for i, s in enumerate(lines, 1) if '"52:54:00:99:00:12"' in s)
    col = lines[line - 1].index('"52:54') + 1
    # Unquoted, and every group after the first below 60: YAML 1.1 reads a number.
    (project / "cluster.yaml").write_text(text.replace('"52:54:00:99:00:12"', "52:54:00:19:00:12"))
    result = run_doit(project)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    assert f"cluster.yaml:{line}:{col}: error:" in result.stderr, result.stderr
    assert 'hint: put the MAC in quotes: "52:54:00:19:00:12"' in result.stderr
    assert snapshot(project / "output") == before


def test_missing_overlay_is_reported_before_building(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    text = (project / "cluster.yaml").read_text()
    (project / "cluster.yaml").write_text(text.replace("[hosts, motd]", "[hosts, motd, nfs]"))
    result = run_doit(project)
    assert result.returncode != 0
    assert "overlay `nfs` does not exist" in result.stderr
    assert "hint: create overlays/nfs/rootfs/" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (project / "output/http").exists()


def test_template_error_names_template_line_and_node(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    motd = project / "overlays/motd/rootfs/etc/motd.j2"
    motd.write_text("line one\nhost {{ node.name }} rack {{ node.rack }}\n")
    result = run_doit(project)
    assert result.returncode != 0
    assert f"{motd}:2: template error for node n01:" in result.stderr, result.stderr
    assert "rack" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_check(built: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "toolchain.cli", "check"], cwd=built,
                        capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and "4 nodes, 1 images, ok" in ok.stdout
    bad = built / "bad.yaml"
    bad.write_text("head: {ip: 10.0.0.1, network: 10.0.0.0/24}\nnodez: {}\n")
    result = subprocess.run([sys.executable, "-m", "toolchain.cli", "check", str(bad)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert f"{bad}:2:1: error: unknown key `nodez`" in result.stderr
    assert "did you mean `nodes`?" in result.stderr
