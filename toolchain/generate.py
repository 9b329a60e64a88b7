"""Text files generated from the resolved cluster: iPXE scripts, nginx (DHCP: toolchain/dhcp/)."""

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


def image_url(image: str) -> str:
    return f"images/{image}/image.img.gz"


def overlay_url(node: str, kind: str) -> str:
    return f"nodes/{node}/{kind}.img.gz"


def http_boot_path() -> str:
    """The iPXE EFI binary UEFI HTTP boot firmware loads (DHCP hands out its URL)."""
    return "boot/snponly.efi"


def ipxe_path(node: Node) -> str:
    return f"ipxe/{node.mac_hyphen}.ipxe"


def node_ipxe(cluster: Cluster, node: Node) -> str:
    return _render(f"ipxe/{node.ipxe_template}.ipxe.j2", node=node, head=cluster.head,
                   kernel=kernel_url(node.image), image=image_url(node.image),
                   system=overlay_url(node.name, "system"),
                   runtime=overlay_url(node.name, "runtime"))


def unknown_ipxe(cluster: Cluster) -> str:
    return _render("unknown.ipxe.j2", cluster_file=Path(cluster.path).name)


def nginx_conf(cluster: Cluster, http_root: Path) -> str:
    return _render("nginx.conf.j2", head=cluster.head, http_root=http_root,
                   cluster_file=Path(cluster.path).name)
