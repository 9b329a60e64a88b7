"""Real network boots: QEMU nodes boot the demo cluster from wwstatic's output.

Each boot goes firmware -> DHCP (ISC dhcpd) -> iPXE -> HTTP (nginx) -> kernel
and initrds -> wwinit's /init -> the demo image's init, and is judged by what
the node prints on its serial console and what the head's daemons logged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BOOT_TIMES
from tests.netboot import NetLab
from toolchain.accesslog import Scan
from toolchain.model import load_cluster

pytestmark = pytest.mark.boot

MODES = {
    # mode: (node, MAC)
    "bios": ("n01", "52:54:00:99:00:11"),
    "uefi-pxe": ("n02", "52:54:00:99:00:12"),
}


@pytest.fixture(scope="module")
def net(demo_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetLab]:
    testnet = NetLab(tmp_path_factory.mktemp("net"))
    try:
        testnet.create()
        testnet.start_services(demo_project / "output")
        yield testnet
    finally:
        testnet.close()


@pytest.mark.parametrize("mode", list(MODES))
def test_node_boots(mode: str, net: NetLab, demo_project: Path) -> None:
    node, mac = MODES[mode]
    boot = net.boot(node, mac, mode, until="demo: powering off", timeout=240)
    BOOT_TIMES.append((mode, boot.marks))
    log = boot.log
    assert "wwinit: starting" in log, f"/init never ran:\n{log[-3000:]}"
    errors = [line for line in log.splitlines() if line.startswith(("/init:", "wwinit: ERROR"))]
    assert not errors, errors
    ip = f"10.99.0.{10 + int(node[1:])}"
    # Hostname and address come from the node's system overlay.
    assert f"wwinit: network eth0 {ip}/24, hostname {node}" in log, log[-3000:]
    assert "wwinit: done, starting /sbin/init" in log
    assert f"demo: hostname={node}" in log
    assert f"demo: address eth0 {ip}/24" in log
    # The runtime overlay's files are there: the cluster's hosts and the site motd.
    assert "demo: hosts: 10.99.0.14\tn04" in log
    assert f"demo: motd: Welcome to {node}," in log
    # The node fetched a file from the head over HTTP, and got the right bytes.
    script = demo_project / "output/http/ipxe" / f"{mac.replace(':', '-')}.ipxe"
    digest = hashlib.sha256(script.read_bytes()).hexdigest()
    assert f"demo: fetched http://10.99.0.1/ipxe/{script.name} sha256={digest}" in log
    # nginx logged it in wwstatic's format, and `wwstatic status` reads the boot from it.
    access = demo_project / "access.log"
    fields = [line.split("\t") for line in access.read_text().splitlines()]
    assert any(f[2] == ip and f[5] == f"/ipxe/{script.name}" and "Wget" in f[7] for f in fields), fields
    seen = Scan(load_cluster(demo_project / "cluster.yaml"), access).update().nodes[node]
    assert seen.boot is not None and seen.boot.ip == ip
    assert "demo: powering off" in log
    if mode == "uefi-pxe":
        assert "sending snponly.efi" in (net.workdir / "tftp.log").read_text()
