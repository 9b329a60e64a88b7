"""A real boot with the shipped overlays: root moved to tmpfs, per-node host keys in place.

The demo image (busybox) boots with `root: tmpfs` and the issue, fstab and
ssh.host_keys overlays; a site overlay prints what the node sees, judged from
the serial log.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.netboot import Firmware, NetLab, running_lab
from tests.support.project import BOOT_TIMES, boot_project

pytestmark = pytest.mark.lab

PROBE = """\
# Print what the overlays put in place, for the test to read from the serial log.
echo "probe: root $(sed -n 's/^[^ ]* \\/ \\([^ ]*\\) .*/\\1/p' /proc/mounts | tail -n 1)"
echo "probe: issue $(head -n 1 /etc/issue)"
echo "probe: hostkey $(cut -d' ' -f1,2 /etc/ssh/ssh_host_ed25519_key.pub)"
echo "probe: hostkey mode $(stat -c %a /etc/ssh/ssh_host_ed25519_key)"
echo "probe: fstab $(grep -w nfs /etc/fstab | cut -f1,2 | tr '\\t' ' ')"
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    def edit(data: dict[str, Any]) -> None:
        profile = data["profiles"]["default"]
        profile["root"] = "tmpfs"
        profile["system_overlays"] += ["issue", "fstab", "ssh.host_keys", "probe"]
        data["ssh"] = {"key_types": ["ed25519"]}
        data["nfs"] = {"exports": [{"path": "/home"}]}

    def add_probe(project: Path) -> None:
        probe = project / "overlays" / "probe" / "rootfs" / "warewulf" / "init.d" / "99-probe"
        probe.parent.mkdir(parents=True)
        probe.write_text(PROBE)

    return boot_project(tmp_path_factory.mktemp("ovboot") / "site", edit, add_probe)


@pytest.fixture(scope="module")
def net(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetLab]:
    with running_lab(tmp_path_factory.mktemp("ovnet"), project / "output") as lab:
        yield lab


def test_tmpfs_root_and_host_keys(net: NetLab, project: Path) -> None:
    boot = net.boot("n01", "52:54:00:99:00:11", Firmware.BIOS, until="demo: powering off", timeout=400)
    BOOT_TIMES.append(("bios tmpfs root", boot.marks))
    log = boot.log
    assert "wwinit: moving the root to tmpfs" in log, log[-3000:]
    assert log.count("wwinit: starting") == 2, "/init runs again on the tmpfs root"
    assert not [line for line in log.splitlines() if line.startswith("wwinit: ERROR")]
    assert "probe: root tmpfs" in log, log[-3000:]
    assert "probe: issue wwstatic node n01 (image demo)" in log
    kept = project / "state" / "ssh" / "n01"
    pub = " ".join((kept / "ssh_host_ed25519_key.pub").read_text().split()[:2])
    assert f"probe: hostkey {pub}" in log
    assert "probe: hostkey mode 600" in log
    assert stat.S_IMODE((kept / "ssh_host_ed25519_key").stat().st_mode) == 0o600
    assert "probe: fstab 10.99.0.1:/home /home" in log
    assert "demo: hostname=n01" in log and "demo: powering off" in log
