"""Text files generated from the resolved cluster: iPXE scripts, dhcpd.conf, nginx."""

from __future__ import annotations

import ipaddress
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from .model import Cluster, Node

TEMPLATES = Path(__file__).parent / "templates"
@cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def _render(name: str, **context: Any) -> str:
    return _env().get_template(name).render(**context)


# Paths of served files, relative to the HTTP root.
def kernel_url(image: str) -> str:
    return f"images/{image}/vmlinuz"


def image_url(image: str) -> str:
    return f"images/{image}/image.img.gz"


def overlay_url(node: str, kind: str) -> str:
    return f"nodes/{node}/{kind}.img.gz"


def manifest_url(node: str) -> str:
    """The wwclient manifest; wwclient.manifest_path() must agree (tests check it)."""
    return f"nodes/{node}/runtime.json"


def ipxe_path(node: Node) -> str:
    return f"ipxe/{node.mac_hyphen}.ipxe"


def node_ipxe(cluster: Cluster, node: Node) -> str:
    return _render(f"ipxe/{node.ipxe_template}.ipxe.j2", node=node, head=cluster.head,
                   kernel=kernel_url(node.image), image=image_url(node.image),
                   system=overlay_url(node.name, "system"),
                   runtime=overlay_url(node.name, "runtime"))


def unknown_ipxe(cluster: Cluster) -> str:
    return _render("unknown.ipxe.j2", cluster_file=Path(cluster.path).name)


def dhcpd_conf(cluster: Cluster) -> str:
    return _render("dhcpd.conf.j2", head=cluster.head, nodes=cluster.nodes, dhcp=cluster.dhcp,
                   cluster_file=Path(cluster.path).name, lease_time=cluster.dhcp.lease_time)


def node_addresses(cluster: Cluster) -> list[tuple[str, str]]:
    """(address, node) for every address of every node: whom nginx serves /nodes/<node>/ to."""
    return sorted({(dev.ip, n.name) for n in cluster.nodes for dev in n.network.values() if dev.ip},
                  key=lambda p: (ipaddress.IPv4Address(p[0]), p[1]))


def cluster_networks(cluster: Cluster) -> list[str]:
    """The networks allowed to fetch anything: the head's and every node device's."""
    nets = {cluster.head.network}
    nets |= {ipaddress.IPv4Interface(dev.cidr).network
             for n in cluster.nodes for dev in n.network.values() if dev.ip}
    return [str(n) for n in sorted(nets)]


def nginx_conf(cluster: Cluster, http_root: Path) -> str:
    return _render("nginx.conf.j2", head=cluster.head, http_root=http_root,
                   cluster_file=Path(cluster.path).name,
                   node_addresses=node_addresses(cluster), networks=cluster_networks(cluster))
