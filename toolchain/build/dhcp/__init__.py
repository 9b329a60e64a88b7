"""DHCP server configurations, one small module per daemon behind one seam.

`plan.boot_plan()` decides once what a node is handed (address, first stage by
client architecture, HTTP boot URL, its iPXE script); isc.py, dnsmasq.py and
kea.py only spell that plan for their daemon. The build writes all three, so a
site can switch servers; `dhcp.backend` in cluster.yaml names the one it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from toolchain.build.dhcp import dnsmasq, isc, kea
from toolchain.build.dhcp.plan import BootPlan, boot_plan
from toolchain.model.spec import DhcpBackend
from toolchain.model.types import Cluster

__all__ = ["FILES", "DhcpBackend", "config_text"]

# The file each backend's configuration is written to, in output/etc/.
FILES: dict[DhcpBackend, str] = {
    DhcpBackend.ISC: "dhcpd.conf",
    DhcpBackend.DNSMASQ: "dnsmasq.conf",
    DhcpBackend.KEA: "kea-dhcp4.conf",
}

_RENDER: dict[DhcpBackend, Callable[[BootPlan], str]] = {
    DhcpBackend.ISC: isc.render,
    DhcpBackend.DNSMASQ: dnsmasq.render,
    DhcpBackend.KEA: kea.render,
}


def config_text(backend: DhcpBackend, cluster: Cluster, tftp_root: Path) -> str:
    """The configuration of `backend` for `cluster`; `tftp_root` is output/tftp (dnsmasq's TFTP)."""
    return _RENDER[backend](boot_plan(cluster, tftp_root))
