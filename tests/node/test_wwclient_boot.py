"""A booted node's wwclient picks up a changed runtime overlay; nginx keeps nodes apart.

The node boots the demo image plus a small Python (tests/pyimage.py) with the
`wwclient` system overlay, which /init starts in the background (busybox init,
not systemd); its lines go to the serial console. The test then changes the
site overlay `wwtest` (one file added, one changed, one removed), rebuilds with
doit, and reads the node's serial log: the three changes must be applied within
two polling intervals of the rebuild.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.netboot import Firmware, NetLab, running_lab
from tests.lab.pyimage import add_python
from tests.support.project import boot_project, pointed, run_doit
from toolchain.build import layout

pytestmark = pytest.mark.lab

INTERVAL = 10
NODE, MAC, IP = "n01", "52:54:00:99:00:11", "10.99.0.11"
OTHER_IP = "10.99.0.12"  # n02's address, taken by the test inside the namespace


def overlay_files(project: Path, files: dict[str, str]) -> None:
    root = project / "overlays/wwtest/rootfs/etc/wwtest"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    for name, text in files.items():
        (root / name).write_text(text)


@pytest.fixture(scope="module")
def project(demo_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wwclient-boot")
    pyroot = work / "pyroot"
    # The demo image's root as the demo builder left it, plus python3.
    shutil.copytree(demo_project / "output/work/images/demo/rootfs", pyroot, symlinks=True)
    add_python(pyroot)

    def edit(data: dict[str, Any]) -> None:
        data["images"] = {"pydemo": {"root": str(pyroot), "exclude": ["/boot/*"]}}
        data["wwclient"] = {"interval": INTERVAL}
        profile = data["profiles"]["default"]
        profile["image"] = "pydemo"
        profile["system_overlays"] = [*profile["system_overlays"], "wwclient"]
        profile["runtime_overlays"] = [*profile["runtime_overlays"], "wwtest"]

    return boot_project(work / "project", edit, poweroff=False, prepare=lambda proj: overlay_files(
        proj, {"keep": "kept\n", "change": "before\n", "remove": "to be removed\n"}))


@pytest.fixture(scope="module")
def net(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetLab]:
    with running_lab(tmp_path_factory.mktemp("net"), project / "output") as lab:
        yield lab


def wait_serial(serial: Path, pattern: str, timeout: float, since: int = 0) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        text = serial.read_text(errors="replace") if serial.exists() else ""
        if re.search(pattern, text[since:]):
            return text
        if "Kernel panic" in text:
            break
        time.sleep(0.5)
    tail = serial.read_text(errors="replace")[-4000:] if serial.exists() else ""
    raise AssertionError(f"no /{pattern}/ on the serial console in {timeout} s:\n{tail}")


def test_booted_node_applies_a_changed_overlay(project: Path, net: NetLab) -> None:
    assert (project / "output/http" / layout.manifest_url(NODE)).exists()
    proc, serial = net.start_node(NODE, MAC, Firmware.BIOS)
    try:
        # The first poll finds what the node booted with: nothing to change.
        wait_serial(serial, rf"wwclient: runtime overlay of {NODE} applied", 420)
        text = serial.read_text(errors="replace")
        assert "wwclient: rejected" not in text and "Traceback" not in text, text[-3000:]
        mark = len(text)

        overlay_files(project, {"keep": "kept\n", "change": "after\n", "new": "new file\n"})
        done = run_doit(project)
        assert done.returncode == 0, done.stdout + done.stderr
        published = time.monotonic()
        text = wait_serial(serial, r"wwclient: removed /etc/wwtest/remove", 2 * INTERVAL + 60, mark)
        took = time.monotonic() - published
        changes = text[mark:]
        assert "wwclient: added /etc/wwtest/new" in changes, changes
        assert "wwclient: changed /etc/wwtest/change" in changes, changes
        assert "/etc/wwtest/keep" not in changes, changes
        assert took <= 2 * INTERVAL, f"applied {took:.0f} s after the rebuild, interval {INTERVAL} s"
    finally:
        net.stop(proc)
    # The node polled from its own address and nginx answered it (wwstatic's log format:
    # tag, time, client, status, bytes, URI asked for, URI served, user agent).
    access = [line.split("\t") for line in (project / "access.log").read_text().splitlines()]
    assert any(f[2] == IP and f[5] == f"/{layout.manifest_url(NODE)}" and f[3] == "200" for f in access), \
        access[-20:]


def test_other_node_is_refused_this_nodes_overlays(project: Path, net: NetLab) -> None:
    # A second node on the same network: the namespace takes n02's address and asks.
    net.ns_run("ip", "addr", "add", f"{OTHER_IP}/32", "dev", "br0")
    mine = [f for f in pointed(project / "output", MAC) if f.startswith(f"nodes/{NODE}/")]
    assert len(mine) == 2, mine  # its own system and runtime parts
    own = next(f for f in pointed(project / "output", "52:54:00:99:00:12") if f.startswith("nodes/n02/"))
    paths = [layout.manifest_url(NODE), *mine, own]
    script = (
        "import http.client, sys\n"
        "for path in sys.argv[2:]:\n"
        "    c = http.client.HTTPConnection('10.99.0.1', 80, timeout=30, source_address=(sys.argv[1], 0))\n"
        "    c.request('GET', '/' + path)\n"
        "    print(c.getresponse().status, path)\n"
    )
    done = subprocess.run(["ip", "netns", "exec", net.ns, sys.executable, "-c", script, OTHER_IP, *paths],
                          capture_output=True, text=True, check=True, timeout=60)
    statuses = {path: code for code, path in (line.split(" ", 1) for line in done.stdout.splitlines())}
    assert statuses == {**{p: "403" for p in paths[:3]}, own: "200"}, done.stdout
