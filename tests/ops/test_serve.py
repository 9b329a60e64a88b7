"""`wwstatic serve` on loopback, and status/discover from the log its nginx writes.

One project (head 127.0.0.1, a high port) goes through a lab's day: serve it,
fetch as nodes (each from its own loopback address), an unknown machine asks for
its script, `status` and `discover` read nginx's real log, `discover --assign
--yes` edits cluster.yaml, `doit` builds the new node's script and nginx serves
it, and SIGTERM stops both servers.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tftpy

from tests.support.net import free_port
from tests.support.project import make_project, pointed, run_doit
from toolchain.build import layout
from toolchain.model.load import load_cluster

UNKNOWN = "52:54:00:ee:00:01"


def free_tcp_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str, source: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        conn.request("GET", "/" + path, headers={"User-Agent": "iPXE/test"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def wwstatic(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "toolchain.cli", *args], cwd=project,
                          capture_output=True, text=True, check=False)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purpose only once reaped; serve reaps its children.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[dict[str, Any]]:
    http_port, tftp_port = free_tcp_port(), free_port()
    log = tmp_path / "access.log"

    def edit(data: dict[str, Any]) -> None:
        data["head"] = {"ip": "127.0.0.1", "network": "127.0.0.0/8",
                        "http": f"http://127.0.0.1:{http_port}", "access_log": str(log)}
        data["nodes"]["n[01-04]"]["network"]["default"]["ip"] = "127.0.0.11"
        data["nodes"]["spare"] = {"profiles": ["default"], "discoverable": True,
                                  "network": {"default": {"ip": "127.0.0.20"}}}

    project = make_project(tmp_path / "lab", edit)
    text = (project / "cluster.yaml").read_text()
    (project / "cluster.yaml").write_text("# the lab cluster; keep this comment\n" + text)
    done = run_doit(project, "tftp", "publish", "nginx")
    assert done.returncode == 0, done.stdout + done.stderr
    serve = subprocess.Popen([sys.executable, "-m", "toolchain.cli", "serve", "--tftp-port",
                              str(tftp_port)], cwd=project, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    pids: dict[str, int] = {}
    try:
        assert serve.stdout is not None
        while len(pids) < 2:
            line = serve.stdout.readline()
            assert line, "serve exited early"
            if line.startswith("serve: ") and " pid " in line:
                name, _, pid = line.removeprefix("serve: ").split()
                pids[name] = int(pid)
        deadline = time.monotonic() + 20
        while True:
            try:
                get(http_port, "ipxe/unknown.ipxe", "127.0.0.1")
                break
            except OSError:
                assert time.monotonic() < deadline, "nginx did not come up"
                time.sleep(0.2)
        yield {"project": project, "http": http_port, "tftp": tftp_port, "log": log,
               "serve": serve, "pids": pids}
    finally:
        if serve.poll() is None:
            serve.send_signal(signal.SIGTERM)
            serve.wait(timeout=30)
        for child in pids.values():
            if alive(child):
                os.kill(child, signal.SIGKILL)


def test_serve_status_discover(lab: dict[str, Any], tmp_path: Path) -> None:
    project, port = lab["project"], lab["http"]
    cluster = load_cluster(project / "cluster.yaml")
    n01 = cluster.node("n01")

    # n01 boots as far as its system overlay; n02 is up and wwclient polls.
    status, body = get(port, layout.ipxe_path(n01), "127.0.0.11")
    assert status == 200 and b"n01" in body
    n01_files = pointed(project / "output", n01.mac)
    assert get(port, next(f for f in n01_files if f.startswith("nodes/n01/system-")), "127.0.0.11")[0] == 200
    manifest = project / "output/http/nodes/n02/runtime.json"
    manifest.write_text('{"format": 1, "node": "n02", "interval": 60, "layers": []}\n')
    n02_files = pointed(project / "output", cluster.node("n02").mac)
    assert get(port, next(f for f in n02_files if f.startswith("nodes/n02/runtime-")), "127.0.0.12")[0] == 200
    assert get(port, "nodes/n02/runtime.json", "127.0.0.12")[0] == 200
    # A machine nobody listed asks for its script and gets unknown.ipxe.
    status, body = get(port, f"ipxe/{UNKNOWN.replace(':', '-')}.ipxe", "127.0.0.50")
    assert status == 200 and b"unknown node" in body

    # The TFTP server of the same serve.
    got = tmp_path / "undionly.kpxe"
    tftpy.TftpClient("127.0.0.1", lab["tftp"]).download("undionly.kpxe", str(got), timeout=5)
    assert got.read_bytes() == (project / "output/tftp/undionly.kpxe").read_bytes()

    deadline = time.monotonic() + 10  # nginx writes its log as each request ends
    while lab["log"].read_text().count("\n") < 6 and time.monotonic() < deadline:
        time.sleep(0.1)
    done = wwstatic(project, "status", "--no-color")
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line.split() for line in done.stdout.splitlines()[1:-1]}
    assert rows["n01"][1:3] == ["booting", "system"] and "127.0.0.11" in rows["n01"]
    assert rows["n02"][1:3] == ["up", "runtime"] and "127.0.0.12" in rows["n02"]
    assert rows["n03"][1] == "never" and rows["spare"][1] == "never"
    one = wwstatic(project, "status", "n02", "--stale", "0")
    assert one.stdout.splitlines()[1].split()[:2] == ["n02", "STALE"]

    listed = wwstatic(project, "discover")
    assert listed.returncode == 0, listed.stderr
    assert UNKNOWN in listed.stdout and "127.0.0.50" in listed.stdout
    assert "1 discoverable node(s) without a MAC: spare" in listed.stdout

    before = (project / "cluster.yaml").read_text()
    dry = wwstatic(project, "discover", "--assign")
    assert dry.returncode == 0, dry.stderr
    assert f"spare <- {UNKNOWN}" in dry.stdout and "dry run" in dry.stdout
    assert (project / "cluster.yaml").read_text() == before
    wet = wwstatic(project, "discover", "--assign", "--yes")
    assert wet.returncode == 0, wet.stderr
    after = (project / "cluster.yaml").read_text()
    assert after.startswith("# the lab cluster; keep this comment\n")
    assert set(before.splitlines()) <= set(after.splitlines())
    spare = load_cluster(project / "cluster.yaml").node("spare")
    assert spare.mac == UNKNOWN

    # The next build gives the new node its script, and nginx serves it.
    done = run_doit(project, "publish", "dhcp")
    assert done.returncode == 0, done.stdout + done.stderr
    status, body = get(port, layout.ipxe_path(spare), "127.0.0.20")
    assert status == 200 and b"booting spare" in body
    assert f"hardware ethernet {UNKNOWN}" in (project / "output/etc/dhcpd.conf").read_text()
    assert "no unknown MACs" in wwstatic(project, "discover").stdout

    serve = lab["serve"]
    serve.send_signal(signal.SIGTERM)
    assert serve.wait(timeout=30) == 0
    for name, pid in lab["pids"].items():
        assert not alive(pid), f"{name} (pid {pid}) still runs after serve stopped"


def test_serve_without_a_build_says_so(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    done = wwstatic(project, "serve")
    assert done.returncode == 1 and "run doit first" in done.stderr and "Traceback" not in done.stderr
