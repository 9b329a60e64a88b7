"""What every DHCP backend hands out, decided once from the resolved cluster.

The three backends (isc.py, dnsmasq.py, kea.py) only spell this plan in their
daemon's syntax, so a node gets the same answers whichever server a site runs.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from toolchain.build import generate
from toolchain.model.types import Cluster


class ClientArch(IntEnum):
    """DHCP option 93, the PXE client's system architecture (RFC 4578, IANA registry)."""
    BIOS = 0
    EFI_BC = 7             # what most x86-64 UEFI firmware (OVMF too) sends
    EFI_X86_64 = 9
    EFI_ARM64 = 11
    EFI_X86_64_HTTP = 16   # UEFI HTTP boot on x86-64; it also sends vendor class HTTPClient


@dataclass(frozen=True)
class FirstStage:
    """An iPXE binary on the TFTP tree for the client architectures that can run it."""
    name: str
    arches: tuple[ClientArch, ...]
    what: str
    tag: str    # a name for this class of client in configs that need one


# The TFTP tree's names (tasks.TFTP_FILES copies them from Debian's ipxe package).
# Debian ships no arm64 iPXE: a site with arm64 nodes puts an arm64 snponly.efi
# (iPXE's bin-arm64-efi/snponly.efi) into output/tftp under this name.
FIRST_STAGES = (
    FirstStage("undionly.kpxe", (ClientArch.BIOS,), "legacy BIOS", "bios"),
    FirstStage("snponly.efi", (ClientArch.EFI_BC, ClientArch.EFI_X86_64), "x86-64 UEFI", "efi-x86_64"),
    FirstStage("snponly-arm64.efi", (ClientArch.EFI_ARM64,), "arm64 UEFI", "efi-arm64"),
)

# UEFI HTTP boot clients say so in option 60 and want it echoed back (UEFI spec 2.5+, 24.7).
HTTP_CLIENT = "HTTPClient"
# iPXE sends user class "iPXE" (option 77) and its feature list in option 175.
IPXE_USER_CLASS = "iPXE"


@dataclass(frozen=True)
class Host:
    name: str
    mac: str
    ip: str


@dataclass(frozen=True)
class BootPlan:
    cluster_file: str
    server: str                       # the head: TFTP next-server
    network: ipaddress.IPv4Network
    range_start: str
    range_end: str
    lease_time: int
    interface: str
    ipxe_url: str                     # for iPXE clients: the node's script, by MAC
    http_boot_url: str                # for UEFI HTTP boot clients: an iPXE EFI binary
    hosts: tuple[Host, ...]
    tftp_root: str                    # for dnsmasq's TFTP server; "" when it serves none

    @property
    def first_stages(self) -> tuple[FirstStage, ...]:
        return FIRST_STAGES


def boot_plan(cluster: Cluster, tftp_root: Path) -> BootPlan:
    head = cluster.head
    return BootPlan(
        cluster_file=Path(cluster.path).name,
        server=str(head.ip),
        network=head.network,
        range_start=cluster.dhcp.range_start,
        range_end=cluster.dhcp.range_end,
        lease_time=cluster.dhcp.lease_time,
        interface=cluster.dhcp.interface,
        # ${mac:hexhyp} is expanded by iPXE, not by the DHCP server.
        ipxe_url=f"{head.http}/ipxe/${{mac:hexhyp}}.ipxe",
        http_boot_url=f"{head.http}/{generate.http_boot_path()}",
        # A discoverable node without a MAC yet has no host entry (`discover --assign`).
        hosts=tuple(Host(n.name, n.mac, n.ip) for n in cluster.nodes if n.bootable),
        tftp_root=str(tftp_root) if cluster.dhcp.dnsmasq_tftp else "",
    )
