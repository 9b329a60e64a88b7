"""Text files generated from the resolved cluster: iPXE scripts, nginx (DHCP: toolchain/dhcp/)."""

from __future__ import annotations

import ipaddress
import socket
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from toolchain import emit
from toolchain.build.plan import Group, NodePlan
from toolchain.model.types import Cluster
from toolchain.project import BUILD_TEMPLATES


@cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(BUILD_TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters.update(emit.FILTERS)
    return env


def _render(name: str, **context: Any) -> str:
    return _env().get_template(name).render(**context)


def node_ipxe(cluster: Cluster, np: NodePlan) -> str:
    """A node's script. The default sets the node's values and chains its group's script;
    `kernel` and `initrds` let a custom template load everything itself."""
    return _render(f"ipxe/{np.node.ipxe_template}.ipxe.j2", node=np.node, head=cluster.head,
                   group=np.group.script_url, own={k: b.url for k, b in np.own.items()},
                   kernel=np.kernel.url, initrds=[(name, b.url) for name, b in np.initrds()])


def group_ipxe(cluster: Cluster, group: Group) -> str:
    """The script a group's nodes chain to: kernel, image and shared layers by name,
    each node's own layers from the variables its script set."""
    # (name, shared blob's URL or None, kind): the template writes ${base}/URL, or
    # ${base}/${wwKIND} for the node's own part; `$` itself is no value iPXE may get.
    initrds = [(name, blob.url if blob else None, kind) for name, kind, blob in group.initrds()]
    return _render("group.ipxe.j2", group=group, head=cluster.head,
                   kernel=group.kernel.url, initrds=initrds)


def http_boot_path() -> str:
    """The iPXE EFI binary UEFI HTTP boot firmware loads (DHCP hands out its URL)."""
    return "boot/snponly.efi"


def unknown_ipxe(cluster: Cluster) -> str:
    return _render("unknown.ipxe.j2", cluster_file=Path(cluster.path).name)


def _ip_int(ip: str) -> int:
    # inet_aton is C: parsing 20,000 addresses with ipaddress takes half a second.
    return int.from_bytes(socket.inet_aton(ip), "big")


def node_addresses(cluster: Cluster) -> list[tuple[str, str]]:
    """(address, node) for every address of every node: whom nginx serves /nodes/<node>/ to."""
    return sorted({(dev.ip, n.name) for n in cluster.nodes for dev in n.network.values() if dev.ip},
                  key=lambda p: (_ip_int(p[0]), p[1]))


def cluster_networks(cluster: Cluster) -> list[str]:
    """The networks allowed to fetch anything: the head's and every node device's."""
    nets = {(int(cluster.head.network.network_address), cluster.head.network.prefixlen)}
    nets |= {(_ip_int(dev.ip) & (0xFFFFFFFF << (32 - dev.prefix)) & 0xFFFFFFFF, dev.prefix)
             for n in cluster.nodes for dev in n.network.values() if dev.ip}
    return [str(ipaddress.IPv4Network(net)) for net in sorted(nets)]


def nginx_conf(cluster: Cluster, http_root: Path) -> str:
    return _render("nginx.conf.j2", head=cluster.head, http_root=http_root,
                   cluster_file=Path(cluster.path).name,
                   node_addresses=node_addresses(cluster), networks=cluster_networks(cluster))
