"""ISC dhcpd (end of life since 2022, still what most sites run)."""

from __future__ import annotations

from toolchain.build.dhcp.plan import HTTP_CLIENT, IPXE_USER_CLASS, BootPlan, ClientArch
from toolchain.build.generate import _render  # the one template environment of toolchain/build/templates


def render(plan: BootPlan) -> str:
    return _render("dhcpd.conf.j2", plan=plan, http_client=HTTP_CLIENT,
                   http_arch=int(ClientArch.EFI_X86_64_HTTP), ipxe_user_class=IPXE_USER_CLASS)
