"""dnsmasq (what many small sites and LTSP run), as a DHCP-only server; optionally TFTP too."""

from __future__ import annotations

from toolchain.build.dhcp.plan import HTTP_CLIENT, IPXE_USER_CLASS, BootPlan, ClientArch
from toolchain.build.generate import _render  # the one template environment of toolchain/build/templates


def render(plan: BootPlan) -> str:
    return _render("dnsmasq.conf.j2", plan=plan, http_client=HTTP_CLIENT,
                   http_arch=int(ClientArch.EFI_X86_64_HTTP), ipxe_user_class=IPXE_USER_CLASS)
