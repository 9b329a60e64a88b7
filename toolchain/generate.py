"""Text files generated from the resolved cluster: iPXE scripts, dhcpd.conf, nginx."""

from __future__ import annotations

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


SUFFIX = {"gzip": ".img.gz", "zstd": ".img.zst", "none": ".img"}


def image_url(image: str, compression: str = "gzip") -> str:
    return f"images/{image}/image{SUFFIX[compression]}"


def modules_url(image: str, compression: str = "gzip") -> str:
    """The kernel modules layer of an image that boots another image's kernel."""
    return f"images/{image}/modules{SUFFIX[compression]}"


def overlay_url(node: str, kind: str) -> str:
    return f"nodes/{node}/{kind}.img.gz"


def ipxe_path(node: Node) -> str:
    return f"ipxe/{node.mac_hyphen}.ipxe"


def node_ipxe(cluster: Cluster, node: Node) -> str:
    img = cluster.images[node.image]
    modules = modules_url(img.name, img.compression) if img.kernel_from else ""
    return _render(f"ipxe/{node.ipxe_template}.ipxe.j2", node=node, head=cluster.head,
                   kernel=kernel_url(node.image), image=image_url(img.name, img.compression),
                   modules=modules,
                   system=overlay_url(node.name, "system"),
                   runtime=overlay_url(node.name, "runtime"))


def unknown_ipxe(cluster: Cluster) -> str:
    return _render("unknown.ipxe.j2", cluster_file=Path(cluster.path).name)


def dhcpd_conf(cluster: Cluster) -> str:
    return _render("dhcpd.conf.j2", head=cluster.head, nodes=cluster.nodes, dhcp=cluster.dhcp,
                   cluster_file=Path(cluster.path).name, lease_time=cluster.dhcp.lease_time)


def nginx_conf(cluster: Cluster, http_root: Path) -> str:
    return _render("nginx.conf.j2", head=cluster.head, http_root=http_root,
                   cluster_file=Path(cluster.path).name)
