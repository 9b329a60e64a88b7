"""Where served files live under output/http, and how they are named.

Large files are immutable blobs named by a digest of everything that makes
their bytes (content addressing by input: the build is reproducible, so the
same inputs always give the same bytes). A build writes new blobs beside the
old ones and only then replaces the small pointer files that name them (the
iPXE scripts and the wwclient manifests), so a node that boots or polls during
a build gets the old set or the new one, never a mix. Old blobs are removed
after a grace period (gc.py).

    ipxe/<mac-hyphen>.ipxe                 pointer: a node's boot script
    nodes/<node>/runtime.json              pointer: a node's wwclient manifest
    groups/<group>.ipxe, <group>.json      pointers: the same for a group of nodes (plan.py)
    nodes/<node>/<kind>-<digest>.img.gz    the node's own part of an overlay
    shared/<kind>-<digest>.img.gz          overlay files that are the same for many nodes
    images/<image>/vmlinuz-<digest>        kernel
    images/<image>/image-<digest>.img.gz   image archive (.img.zst, .img: other compressions)
    images/<image>/modules-<digest>.img.gz kernel modules of another image's kernel (kernel.from)
"""

from __future__ import annotations

from toolchain.archive import Compression
from toolchain.model.types import Node

# Digests in names are cut to 20 hex digits (80 bits): collisions are not a concern
# at any cluster's number of files, and the names stay readable in logs.
NAME_DIGITS = 20

# Directories of blobs, which the collector may clean; pointers are elsewhere or named.
BLOB_DIRS = ("images", "nodes", "shared")
POINTER_DIRS = ("ipxe", "groups")


def short(digest: str) -> str:
    return digest[:NAME_DIGITS]


def kernel_url(image: str, digest: str) -> str:
    return f"images/{image}/vmlinuz-{short(digest)}"


SUFFIX: dict[str, str] = {Compression.GZIP: ".img.gz", Compression.ZSTD: ".img.zst", Compression.NONE: ".img"}


def image_url(image: str, digest: str, compression: str) -> str:
    return f"images/{image}/image-{short(digest)}{SUFFIX[compression]}"


def modules_url(image: str, digest: str, compression: str) -> str:
    """The kernel modules layer of an image that boots another image's kernel."""
    return f"images/{image}/modules-{short(digest)}{SUFFIX[compression]}"


def node_blob_url(node: str, kind: str, digest: str) -> str:
    return f"nodes/{node}/{kind}-{short(digest)}.img.gz"


def shared_url(kind: str, digest: str) -> str:
    return f"shared/{kind}-{short(digest)}.img.gz"


def group_url(group: str, ext: str) -> str:
    return f"groups/{group}.{ext}"


def manifest_url(node: str) -> str:
    return f"nodes/{node}/runtime.json"


def ipxe_path(node: Node) -> str:
    return f"ipxe/{node.mac_hyphen}.ipxe"


def ipxe_path_pattern(mac: str = "${mac:hexhyp}") -> str:
    """ipxe_path() with the MAC left to iPXE: `mac` is an iPXE setting, e.g. ${netX/mac:hexhyp}."""
    return f"ipxe/{mac}.ipxe"


UNKNOWN_IPXE = "ipxe/unknown.ipxe"
