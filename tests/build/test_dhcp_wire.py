"""What each DHCP server really offers each kind of boot client, read off the wire.

The boot matrix (test_boot.py) proves the paths QEMU can take; this asks the
running daemons, with hand-made DHCPDISCOVERs, about every branch of the
generated configs, arm64 and EFI arch 9 included, and reads the offers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.netboot import HERE, NetLab
from tests.support.project import REPO
from toolchain.build import dhcp, generate
from toolchain.model.load import load_cluster
from toolchain.model.spec import DhcpBackend

MAC = "52:54:00:99:00:14"   # n04
IP = "10.99.0.14"
HEAD = "10.99.0.1"
IPXE_URL = f"http://{HEAD}/ipxe/${{mac:hexhyp}}.ipxe"
# Clients as real firmware presents itself (vendor class per the PXE and UEFI specs).
CLIENTS: list[dict[str, Any]] = [
    {"name": "bios", "arch": 0, "vendor_class": "PXEClient:Arch:00000:UNDI:002001"},
    {"name": "efi-bc", "arch": 7, "vendor_class": "PXEClient:Arch:00007:UNDI:003000"},
    {"name": "efi-x86_64", "arch": 9, "vendor_class": "PXEClient:Arch:00009:UNDI:003000"},
    {"name": "efi-arm64", "arch": 11, "vendor_class": "PXEClient:Arch:00011:UNDI:003000"},
    {"name": "efi-http", "arch": 16, "vendor_class": "HTTPClient:Arch:00016:UNDI:003001"},
    {"name": "ipxe-bios", "arch": 0, "vendor_class": "PXEClient:Arch:00000:UNDI:002001",
     "user_class": "iPXE", "ipxe": True},
    {"name": "ipxe-efi", "arch": 7, "vendor_class": "PXEClient:Arch:00007:UNDI:003010",
     "user_class": "iPXE", "ipxe": True},
]
# (boot file, TFTP server or None)
EXPECT: dict[str, tuple[str, str | None]] = {
    "bios": ("undionly.kpxe", HEAD),
    "efi-bc": ("snponly.efi", HEAD),
    "efi-x86_64": ("snponly.efi", HEAD),
    "efi-arm64": ("snponly-arm64.efi", HEAD),
    "efi-http": (f"http://{HEAD}/{generate.http_boot_path()}", None),
    "ipxe-bios": (IPXE_URL, None),
    "ipxe-efi": (IPXE_URL, None),
}

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """output/etc of the shipped cluster: only the DHCP configs are needed."""
    from tests.support.project import make_project, run_doit

    project = make_project(tmp_path_factory.mktemp("wire"))
    done = run_doit(project, "dhcp")
    assert done.returncode == 0, done.stdout + done.stderr
    return project / "output"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetLab]:
    net = NetLab(tmp_path_factory.mktemp("wirenet"))
    try:
        net.create()
        # The probe sits in a namespace of its own, like a node: in the head's,
        # the offers would come from one of its own addresses and be dropped.
        subprocess.run(["ip", "netns", "add", client_ns(net)], check=True)
        net.ns_run("ip", "link", "add", "probe0", "type", "veth", "peer", "name", "probe0br")
        net.ns_run("ip", "link", "set", "probe0br", "master", "br0", "up")
        net.ns_run("ip", "link", "set", "probe0", "netns", client_ns(net))
        subprocess.run(["ip", "-n", client_ns(net), "link", "set", "probe0", "up"], check=True)
        yield net
    finally:
        subprocess.run(["ip", "netns", "del", client_ns(net)], check=False, capture_output=True)
        net.close()


def client_ns(net: NetLab) -> str:
    return f"{net.ns}c"


@pytest.fixture(scope="module", params=list(DhcpBackend), ids=str)
def offers(request: pytest.FixtureRequest, lab: NetLab, built: Path) -> Iterator[dict[str, Any]]:
    proc = lab.start_dhcp(request.param, built)
    try:
        argv = ["ip", "netns", "exec", client_ns(lab), sys.executable, str(HERE / "dhcp_probe.py"),
                "probe0", MAC]
        done = subprocess.run(argv, input=json.dumps(CLIENTS), capture_output=True, text=True,
                              check=False, timeout=120)
        assert done.returncode == 0, done.stderr
        yield json.loads(done.stdout)
    finally:
        lab.stop(proc)


@pytest.mark.parametrize("client", list(EXPECT))
def test_offer(client: str, offers: dict[str, Any]) -> None:
    offer = offers[client]
    assert offer is not None, f"no offer for {client}"
    boot_file, tftp_server = EXPECT[client]
    assert offer["type"] == 2  # DHCPOFFER
    assert offer["yiaddr"] == IP
    assert offer["boot_file"] == boot_file
    if tftp_server:
        assert offer["siaddr"] == tftp_server
    # UEFI HTTP boot firmware takes an offer only if it echoes its vendor class.
    if client == "efi-http":
        assert offer["vendor_class"] == "HTTPClient"
    else:
        assert offer["vendor_class"] != "HTTPClient"
    # iPXE is told not to wait for ProxyDHCP: option 175, sub-option 176 = 1.
    if client.startswith("ipxe"):
        assert offer["ipxe_options"] is not None and "b00101" in offer["ipxe_options"], offer


def test_dnsmasq_serves_tftp(lab: NetLab, tmp_path: Path) -> None:
    # With dhcp.dnsmasq_tftp, dnsmasq's own TFTP server hands out the first stages.
    (tmp_path / "cluster.yaml").write_text((REPO / "cluster.yaml").read_text()
                                           + "dhcp:\n  dnsmasq_tftp: true\n")
    (tmp_path / "overlays").symlink_to(REPO / "overlays")
    tftp_root = tmp_path / "tftp"
    tftp_root.mkdir()
    (tftp_root / "undionly.kpxe").write_bytes(os.urandom(3000))
    conf = tmp_path / "dnsmasq.conf"
    conf.write_text(dhcp.config_text(DhcpBackend.DNSMASQ, load_cluster(tmp_path / "cluster.yaml"),
                                     tftp_root))
    # --user=root: the test's files are under pytest's private (0700) directory.
    # Other DHCP ports: a DHCP server of the tests above may still hold 67.
    proc = lab.start("dnsmasq-tftp", "dnsmasq", "--no-daemon", f"--conf-file={conf}",
                     "--interface=br0", "--user=root", "--log-facility=-",
                     "--dhcp-alternate-port=1067,1068",
                     f"--pid-file={tmp_path}/dnsmasq.pid", f"--dhcp-leasefile={tmp_path}/leases")
    try:
        fetch = ("import sys, tftpy; "
                 "tftpy.TftpClient(sys.argv[1], 69).download('undionly.kpxe', sys.argv[2], timeout=2)")
        got = tmp_path / "got"
        for _ in range(25):
            assert proc.popen.poll() is None, proc.log.read_text()
            done = subprocess.run(["ip", "netns", "exec", lab.ns, sys.executable, "-c", fetch, HEAD,
                                   str(got)], capture_output=True, text=True, check=False, timeout=60)
            if done.returncode == 0:
                break
            time.sleep(0.2)
        assert got.read_bytes() == (tftp_root / "undionly.kpxe").read_bytes(), proc.log.read_text()
    finally:
        lab.stop(proc)
