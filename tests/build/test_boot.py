"""Real network boots: QEMU nodes boot the demo cluster from wwstatic's output.

The boot matrix: every DHCP backend (ISC dhcpd, dnsmasq, Kea) with every way a
node's firmware starts (SeaBIOS + iPXE ROM, OVMF PXE -> TFTP, OVMF HTTP boot).
Each boot goes firmware -> DHCP -> iPXE -> HTTP (nginx) -> kernel and initrds ->
wwinit's /init -> the demo image's init, and is judged by what the node prints
on its serial console and what the head's daemons logged. All rows share one
built project and one network namespace; one DHCP server runs at a time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.netboot import DHCP_ACK, Firmware, NetLab, Proc
from tests.support.project import BOOT_TIMES
from toolchain.build import generate
from toolchain.model.load import load_cluster
from toolchain.model.spec import DhcpBackend
from toolchain.ops.accesslog import Scan

pytestmark = pytest.mark.lab
IPXE_ISO = Path("/usr/lib/ipxe/ipxe.iso")

# The node each firmware boots as: (node, MAC).
NODES = {
    Firmware.BIOS: ("n01", "52:54:00:99:00:11"),
    Firmware.UEFI_PXE: ("n02", "52:54:00:99:00:12"),
    Firmware.UEFI_HTTP: ("n03", "52:54:00:99:00:13"),
}


@pytest.fixture(scope="module")
def lab(demo_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetLab]:
    """The namespace with nginx, TFTP and the RA responder; no DHCP server yet."""
    net = NetLab(tmp_path_factory.mktemp("net"))
    try:
        net.create()
        net.start_services(demo_project / "output")
        yield net
    finally:
        net.close()


@pytest.fixture(scope="module", params=list(DhcpBackend), ids=str)
def dhcp_server(request: pytest.FixtureRequest, lab: NetLab,
                demo_project: Path) -> Iterator[tuple[DhcpBackend, Proc]]:
    """One DHCP server at a time (pytest runs all rows of one backend together)."""
    backend: DhcpBackend = request.param
    proc = lab.start_dhcp(backend, demo_project / "output")
    try:
        yield backend, proc
    finally:
        lab.stop(proc)


@pytest.mark.parametrize("firmware", list(NODES), ids=str)
def test_node_boots(firmware: Firmware, dhcp_server: tuple[DhcpBackend, Proc], lab: NetLab,
                    demo_project: Path) -> None:
    backend, dhcp_proc = dhcp_server
    node, mac = NODES[firmware]
    row = f"{backend}-{firmware}"
    # Judge this boot by what the shared daemons logged from now on.
    # nginx logs in wwstatic's format to head.access_log (see conftest), tab-separated:
    # tag, time, client, status, bytes, URI asked for, URI served, user agent.
    access_log, tftp_log = demo_project / "access.log", lab.workdir / "tftp.log"
    offsets = {p: p.stat().st_size if p.exists() else 0 for p in (access_log, tftp_log)}
    boot = lab.boot(f"{row}-{node}", mac, firmware, until="demo: powering off", timeout=300)
    BOOT_TIMES.append((row, boot.marks))
    log = boot.log
    assert "wwinit: starting" in log, f"/init never ran:\n{log[-3000:]}"
    errors = [line for line in log.splitlines() if line.startswith(("/init:", "wwinit: ERROR"))]
    assert not errors, errors
    ip = f"10.99.0.{10 + int(node[1:])}"
    # This backend gave the node its fixed address.
    acks = [line for line in dhcp_proc.log.read_text().splitlines()
            if DHCP_ACK[backend] in line and ip in line and mac in line]
    assert acks, dhcp_proc.log.read_text()[-3000:]
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
    access = [line.split("\t") for line in
              access_log.read_bytes()[offsets[access_log]:].decode().splitlines()]
    assert any(f[2] == ip and f[5] == f"/ipxe/{script.name}" and "Wget" in f[7] for f in access), access
    # `wwstatic status` reads the boot from the same log.
    seen = Scan(load_cluster(demo_project / "cluster.yaml"), access_log).update().nodes[node]
    assert seen.boot is not None and seen.boot.ip == ip
    assert "demo: powering off" in log
    # Each firmware took its own path to iPXE.
    tftp = tftp_log.read_bytes()[offsets[tftp_log]:].decode()
    efi_over_http = [f for f in access if f[2] == ip and f[5] == f"/{generate.http_boot_path()}"]
    if firmware is Firmware.UEFI_PXE:
        assert "sending snponly.efi" in tftp
    if firmware is Firmware.UEFI_HTTP:
        assert efi_over_http, access
    else:
        assert not efi_over_http, access


# The boot-from-CD fixture, shown with Debian's iPXE ISO (BIOS and UEFI): it
# starts iPXE from the CD, which asks DHCP as iPXE and chains to the node's script.
CD_PROOF = {Firmware.BIOS: "Booting from DVD/CD", Firmware.UEFI: "UEFI QEMU DVD-ROM"}


@pytest.mark.parametrize("dhcp_server", [DhcpBackend.ISC], indirect=True, ids=str)
@pytest.mark.parametrize("firmware", list(CD_PROOF), ids=str)
def test_node_boots_from_cdrom(firmware: Firmware, dhcp_server: tuple[DhcpBackend, Proc],
                               lab: NetLab) -> None:
    boot = lab.boot(f"cdrom-{firmware}-n04", "52:54:00:99:00:14", firmware,
                    until="demo: powering off", timeout=300, cdrom=IPXE_ISO)
    BOOT_TIMES.append((f"{dhcp_server[0]}-cdrom-{firmware} (Debian ipxe.iso)", boot.marks))
    assert CD_PROOF[firmware] in boot.log, boot.log[-3000:]
    assert "wwinit: network eth0 10.99.0.14/24, hostname n04" in boot.log, boot.log[-3000:]
    assert "demo: powering off" in boot.log
