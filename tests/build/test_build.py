"""The doit build of a whole project: incremental, reproducible, loud on bad input."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.project import make_project, pointed, ran, run_doit


def snapshot(output: Path) -> dict[str, tuple[str, int]]:
    """Digest and mtime of every file in output/ (but doit's own store)."""
    return {str(p.relative_to(output)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(output.rglob("*")) if p.is_file() and p.name not in (".doit.db", ".lock")}


def served(output: Path) -> dict[str, str]:
    """Digests of what nodes are served, which must not depend on where it was built."""
    files = [p for sub in ("http", "tftp") for p in (output / sub).rglob("*") if p.is_file()]
    files += [output / "etc" / name for name in ("dhcpd.conf", "dnsmasq.conf", "kea-dhcp4.conf")]
    return {str(p.relative_to(output)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(files)}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = make_project(tmp_path_factory.mktemp("build") / "site")
    result = run_doit(project)
    assert result.returncode == 0, result.stdout + result.stderr
    return project


def test_every_artifact_is_built(built: Path) -> None:
    out = built / "output"
    for rel in ("tftp/undionly.kpxe", "tftp/snponly.efi", "etc/dhcpd.conf", "etc/nginx.conf",
                "etc/dnsmasq.conf", "etc/kea-dhcp4.conf", "http/boot/snponly.efi",
                "http/ipxe/unknown.ipxe", "http/ipxe/52-54-00-99-00-13.ipxe",
                "http/nodes/n03/runtime.json"):
        assert (out / rel).is_file(), rel
    files = pointed(out, "52-54-00-99-00-13")
    assert [f.split("/")[0] for f in files] == ["groups", "images", "images", "shared", "nodes", "shared",
                                                "nodes"]
    assert re.fullmatch(r"images/demo/vmlinuz-[0-9a-f]{20}", files[1]), files
    assert re.fullmatch(r"nodes/n03/system-[0-9a-f]{20}\.img\.gz", files[4]), files
    for rel in files:
        assert (out / "http" / rel).is_file(), rel
    assert not list(out.rglob(".*.tmp")), "temporary files left behind"


def archive_names(path: Path) -> list[str]:
    import libarchive
    with libarchive.file_reader(str(path)) as arch:
        return [e.pathname for e in arch]


def test_shared_files_are_stored_once(built: Path) -> None:
    out = built / "output/http"
    # Every node names the same shared blobs; the hosts file lives only there.
    shared = {tuple(f for f in pointed(built / "output", f"52-54-00-99-00-1{i}") if f.startswith("shared/"))
              for i in range(1, 5)}
    assert len(shared) == 1
    system, runtime = next(iter(shared))
    assert "etc/hosts" in archive_names(out / runtime)
    assert "init" in archive_names(out / system)
    own = archive_names(next((out / "nodes/n02").glob("runtime-*.img.gz")))
    assert own == ["etc", "etc/motd"]
    assert archive_names(next((out / "nodes/n02").glob("system-*.img.gz"))) == [
        "etc", "etc/hostname", "warewulf", "warewulf/config"]
    manifest = json.loads((out / "nodes/n02/runtime.json").read_text())
    group = json.loads((out / manifest["layers"][0]["include"]).read_text())
    layers = group["layers"] + manifest["layers"][1:]
    assert [layer["url"] for layer in layers] == [
        runtime, next(f for f in pointed(built / "output", "52-54-00-99-00-12") if "nodes/n02/runtime" in f)]
    for layer in layers:
        data = (out / layer["url"]).read_bytes()
        assert layer["sha256"] == hashlib.sha256(data).hexdigest() and layer["size"] == len(data)


def test_doit_list_documents_tasks(built: Path) -> None:
    result = run_doit(built, "list")
    for task in ("tftp", "httpboot", "demo", "image", "shared", "node", "publish", "gc", "dhcp", "nginx"):
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


def edit(project: Path, old: str, new: str) -> None:
    text = (project / "cluster.yaml").read_text()
    assert old in text
    (project / "cluster.yaml").write_text(text.replace(old, new))


def test_one_node_change_rebuilds_what_it_affects(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    assert run_doit(project).returncode == 0
    out = project / "output"
    before = snapshot(out)
    edit(project, '"52:54:00:99:00:13"', '"52:54:00:99:00:33"')
    result = run_doit(project)
    assert result.returncode == 0, result.stderr
    # The MAC is in n03's own files only (its /warewulf/config); the cluster's
    # hosts file does not list MACs, so the shared blobs keep their names.
    # Files generated from all nodes are rendered again (and rewritten only if they differ).
    dhcp = {"dhcp:dhcpd.conf", "dhcp:dnsmasq.conf", "dhcp:kea-dhcp4.conf", "nginx:nginx.conf"}
    assert ran(result) == {"node:n03", "publish", "gc"} | dhcp
    assert (out / "http/ipxe/52-54-00-99-00-33.ipxe").is_file()
    after = snapshot(out)
    rewritten = {f for f in after if f in before and after[f] != before[f]}
    etc = {"etc/dhcpd.conf", "etc/dnsmasq.conf", "etc/kea-dhcp4.conf"}
    assert rewritten <= {*etc, "http/nodes/n03/runtime.json"} | {
        f for f in after if f.startswith(".state/")}, rewritten
    assert {f for f in set(after) - set(before) if not f.startswith(".state/")} == {
        "http/ipxe/52-54-00-99-00-33.ipxe",
        *(f for f in after if f.startswith("http/nodes/n03/") and f not in before)}
    # The old script stays until the grace period ends: a node may be booting with it.
    assert (out / "http/ipxe/52-54-00-99-00-13.ipxe").is_file()
    # An address is in the cluster's hosts file: the shared runtime part changes,
    # and with it the group's pointers, but no other node's files.
    before = snapshot(out)
    edit(project, "ip: 10.99.0.11", "ip: 10.99.0.21")
    result = run_doit(project)
    assert result.returncode == 0, result.stderr
    # Addresses are also in nginx's rules (whom a node's own files are served to).
    assert ran(result) == {"node:n01", "node:n02", "node:n03", "node:n04", "shared:runtime:hosts,motd",
                           "publish", "gc"} | dhcp
    after = snapshot(out)
    rewritten = {f for f in after if f in before and after[f] != before[f]}
    assert {f for f in rewritten if not f.startswith(".state/")} == {
        *etc, "etc/nginx.conf", *(f"http/nodes/n0{i}/runtime.json" for i in range(1, 5)),
        *(f"http/ipxe/52-54-00-99-00-{i}.ipxe" for i in (11, 12, 33, 14)),
        *(f for f in rewritten if f.startswith("http/groups/"))}


def test_incremental_equals_clean(tmp_path: Path) -> None:
    project = make_project(tmp_path / "inc")
    assert run_doit(project).returncode == 0
    edit(project, '"52:54:00:99:00:13"', '"52:54:00:99:00:33"')
    assert run_doit(project).returncode == 0
    edit(project, "args: [console=ttyS0, quiet]", "args: [console=ttyS0]")
    motd = project / "overlays/motd/rootfs/etc/motd.j2"
    motd.write_text(motd.read_text() + "changed\n")
    assert run_doit(project).returncode == 0
    clean = tmp_path / "clean"
    shutil.copytree(project, clean, ignore=shutil.ignore_patterns("output"))
    assert run_doit(clean).returncode == 0
    # What the pointers name is the same, byte for byte; the incremental tree only
    # has old files too, waiting for their grace period.
    a, b = served(project / "output"), served(clean / "output")
    assert {k: v for k, v in a.items() if k in b} == b
    assert set(a) - set(b) <= {"http/ipxe/52-54-00-99-00-13.ipxe"} | {
        k for k in a if re.search(r"-[0-9a-f]{20}(\.img\.gz)?$", k)}


def test_old_files_go_after_the_grace_period(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    assert run_doit(project).returncode == 0
    out = project / "output/http"
    old = set(pointed(project / "output", "52-54-00-99-00-12"))
    edit(project, "ip: 10.99.0.11", "ip: 10.99.0.21")
    assert run_doit(project).returncode == 0
    new = set(pointed(project / "output", "52-54-00-99-00-12"))
    gone = old - new
    assert gone and all((out / f).is_file() for f in gone)
    # Nothing changed, but the grace period is over: only the unnamed files go.
    env = {**os.environ, "WWSTATIC_GC_GRACE": "0"}
    result = subprocess.run([sys.executable, "-m", "doit"], cwd=project, env=env,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert ran(result) == {"gc"}, result.stdout
    assert not any((out / f).exists() for f in gone)
    assert all((out / f).is_file() for f in new)


def test_a_second_build_waits_or_stops(built: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from toolchain.build import lock; "
        "lock.acquire(Path(sys.argv[1], 'output')); "
        "print('held', flush=True); "
        "time.sleep(30)"), str(built)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        env = {**os.environ, "WWSTATIC_LOCK_WAIT": "0"}
        result = subprocess.run([sys.executable, "-m", "doit"], cwd=built, env=env,
                                capture_output=True, text=True, check=False)
        assert result.returncode != 0
        assert f"another build (PID {holder.pid}) is running" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
        waiter = subprocess.Popen([sys.executable, "-m", "doit"], cwd=built, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        time.sleep(2)
        assert waiter.poll() is None, "the second build did not wait"
        holder.kill()
        _, err = waiter.communicate(timeout=60)
        assert waiter.returncode == 0, err
        assert "waiting for it" in err
    finally:
        holder.kill()
        holder.wait()


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
    result = subprocess.run([sys.executable, "-m", "toolchain.cli", "check", "-f", str(bad)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert f"{bad}:2:1: error: unknown key `nodez`" in result.stderr
    assert "did you mean `nodes`?" in result.stderr
