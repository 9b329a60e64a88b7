"""The resolved cluster: immutable dataclasses, one per kind of cluster.yaml section.

The loader (load.py) makes them; everything after it reads them and nothing
changes them.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from toolchain.errors import Loc
from toolchain.model.reader import Val
from toolchain.model.spec import DhcpBackend


@dataclass(frozen=True)
class Head:
    ip: ipaddress.IPv4Address
    network: ipaddress.IPv4Network
    http: str  # base URL the nodes fetch from, no trailing slash
    http_host: str
    http_port: int
    fqdn: str = ""
    access_log: str = "/var/log/nginx/wwstatic-access.log"


@dataclass(frozen=True)
class Debootstrap:
    suite: str
    variant: str = "minbase"
    include: tuple[str, ...] = ()
    components: tuple[str, ...] = ("main",)
    mirror: str = ""        # "": this machine's apt source, looked up when building


IMAGE_SOURCES = ("demo", "root", "tarball", "oci", "debootstrap")
# What an image's files are left without unless it says otherwise: the kernel
# in /boot is served on its own, and apt's caches are of no use on a node.
BUILT_IMAGE_EXCLUDES = ("/boot/*",)
DEBOOTSTRAP_EXCLUDES = ("/boot/*", "/var/cache/apt/*", "/var/lib/apt/lists/*")


@dataclass(frozen=True)
class Image:
    name: str
    builder: str            # one of IMAGE_SOURCES
    root: str = ""          # for "root": the directory
    kernel_package: str = "linux-image-cloud-amd64"
    modules: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    path: str = ""          # for "tarball" and "oci": the file or layout, absolute
    oci_ref: str = ""
    debootstrap: Debootstrap | None = None
    compression: str = "gzip"
    kernel_version: str = ""
    kernel_from: str = ""   # another image whose kernel and modules this one boots


@dataclass(frozen=True)
class NetDev:
    name: str
    type: str
    device: str
    mac: str
    ip: str
    netmask: str
    prefix: int
    gateway: str
    mtu: int
    primary: bool
    onboot: bool
    tags: dict[str, str]

    @property
    def cidr(self) -> str:
        return f"{self.ip}/{self.prefix}" if self.ip else ""


@dataclass(frozen=True)
class Ipmi:
    ip: str = ""
    netmask: str = ""
    gateway: str = ""
    user: str = ""
    password: str = ""
    interface: str = "lanplus"
    port: int = 623
    write: bool = False
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Kernel:
    version: str = ""
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Node:
    name: str
    image: str
    kernel: Kernel
    init: str
    root: str
    ipxe_template: str
    system_overlays: tuple[str, ...]
    runtime_overlays: tuple[str, ...]
    network: dict[str, NetDev]
    primary_network: str
    ipmi: Ipmi
    tags: dict[str, str]
    resources: dict[str, Any]
    disks: dict[str, Any]
    filesystems: dict[str, Any]
    profiles: tuple[str, ...]
    comment: str = ""
    standalone_iso: bool = False
    discoverable: bool = False
    asset_key: str = ""

    # The primary device's settings, which the boot chain uses.
    @property
    def primary(self) -> NetDev:
        return self.network[self.primary_network]

    @property
    def mac(self) -> str:
        return self.primary.mac

    @property
    def bootable(self) -> bool:
        """Whether the boot chain can know it: a discoverable node may not have a MAC yet."""
        return bool(self.mac)

    @property
    def mac_hyphen(self) -> str:
        """The MAC as iPXE's ${mac:hexhyp} writes it."""
        return self.mac.replace(":", "-")

    @property
    def ip(self) -> str:
        return self.primary.ip

    @property
    def netmask(self) -> str:
        return self.primary.netmask

    @property
    def prefix(self) -> int:
        return self.primary.prefix

    @property
    def gateway(self) -> str:
        return self.primary.gateway

    @property
    def device(self) -> str:
        return self.primary.device

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, default=str)


@dataclass(frozen=True)
class Dhcp:
    range_start: str = ""
    range_end: str = ""
    lease_time: int = 3600
    backend: DhcpBackend = DhcpBackend.ISC
    interface: str = ""
    dnsmasq_tftp: bool = False


@dataclass(frozen=True)
class Export:
    path: str
    options: str


@dataclass(frozen=True)
class Cluster:
    path: str
    head: Head
    images: dict[str, Image]
    nodes: tuple[Node, ...]
    dhcp: Dhcp = Dhcp()
    nfs_exports: tuple[Export, ...] = ()
    ssh_key_types: tuple[str, ...] = ("ed25519", "ecdsa", "rsa")
    ssh_authorized_keys: tuple[str, ...] = ()
    ssh_authorized_key_files: tuple[str, ...] = ()
    wwclient_interval: int = 60
    node_locs: dict[str, Loc] = field(default_factory=dict, compare=False, repr=False)
    sources: dict[str, dict[str, Val]] = field(default_factory=dict, compare=False, repr=False)

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)
