"""The resolved cluster: immutable dataclasses, one per kind of cluster.yaml section.

The loader (load.py) makes them; everything after it reads them and nothing
changes them. Each field says which setting of the field table (spec.py) it
holds, and takes its default from there; the few that hold no setting say what
they are derived from.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from toolchain.errors import Loc
from toolchain.model import spec
from toolchain.model.reader import Val
from toolchain.model.spec import DhcpBackend


def from_spec(path: str) -> Any:
    """A field holding the setting at `path` ("nodes.ipmi.port"), with the table's default.

    Lists become tuples (the model is immutable); a setting with neither
    default nor empty value (an address) is "" here, as the model keeps text.
    """
    value = spec.field_at(path).unset()
    meta = {"spec": path}
    if isinstance(value, dict):
        return field(default_factory=spec.field_at(path).unset, metadata=meta)
    if isinstance(value, list):
        value = tuple(value)
    return field(default="" if value is None else value, metadata=meta)


def required(path: str) -> dict[str, str]:
    """Metadata of a field holding the setting at `path` that the loader always fills."""
    return {"spec": path}


def derived(why: str, *settings: str) -> dict[str, Any]:
    """Metadata of a field that holds no one setting: what it is made of (and from which settings)."""
    return {"derived": why, "from": settings}


@dataclass(frozen=True)
class Head:
    ip: ipaddress.IPv4Address = field(metadata=required("head.ip"))
    network: ipaddress.IPv4Network = field(metadata=required("head.network"))
    http: str = field(metadata=required("head.http"))  # no trailing slash
    http_host: str = field(metadata=derived("head.http's host"))
    http_port: int = field(metadata=derived("head.http's port"))
    fqdn: str = from_spec("head.fqdn")
    access_log: str = from_spec("head.access_log")


@dataclass(frozen=True)
class Debootstrap:
    suite: str = field(metadata=required("images.debootstrap.suite"))
    variant: str = from_spec("images.debootstrap.variant")
    include: tuple[str, ...] = from_spec("images.debootstrap.include")
    components: tuple[str, ...] = from_spec("images.debootstrap.components")
    mirror: str = from_spec("images.debootstrap.mirror")  # "": this machine's apt source


# What an image's files are left without unless it says otherwise: the kernel
# in /boot is served on its own, and apt's caches are of no use on a node.
BUILT_IMAGE_EXCLUDES = ("/boot/*",)
DEBOOTSTRAP_EXCLUDES = ("/boot/*", "/var/cache/apt/*", "/var/lib/apt/lists/*")


@dataclass(frozen=True)
class Image:
    name: str = field(metadata=derived("its key under images:"))
    builder: str = field(metadata=derived("which of model.images.IMAGE_SOURCES it has"))
    root: str = from_spec("images.root")
    kernel_package: str = from_spec("images.demo.kernel_package")
    modules: tuple[str, ...] = from_spec("images.demo.modules")
    exclude: tuple[str, ...] = from_spec("images.exclude")
    # For "tarball" and "oci": the file or layout, absolute.
    path: str = field(default="", metadata=derived("the tarball or OCI layout, made absolute",
                                                   "images.tarball", "images.oci.path"))
    oci_ref: str = from_spec("images.oci.ref")
    debootstrap: Debootstrap | None = field(default=None, metadata=required("images.debootstrap"))
    compression: str = from_spec("images.compression")
    kernel_version: str = from_spec("images.kernel.version")
    kernel_from: str = from_spec("images.kernel.from")
    # Where cluster.yaml names the source, for the errors of building it; not an
    # input (repr and compare leave it out, so moving lines renames nothing).
    loc: Loc | None = field(default=None, repr=False, compare=False,
                            metadata=derived("where cluster.yaml names its source"))


@dataclass(frozen=True)
class NetDev:
    name: str = field(metadata=derived("its key under network:"))
    type: str = field(metadata=required("nodes.network.type"))
    device: str = field(metadata=required("nodes.network.device"))
    mac: str = field(metadata=required("nodes.network.mac"))
    ip: str = field(metadata=required("nodes.network.ip"))
    netmask: str = field(metadata=required("nodes.network.netmask"))
    prefix: int = field(metadata=derived("the netmask's length"))
    gateway: str = field(metadata=required("nodes.network.gateway"))
    mtu: int = field(metadata=required("nodes.network.mtu"))
    primary: bool = field(metadata=required("nodes.network.primary"))
    onboot: bool = field(metadata=required("nodes.network.onboot"))
    tags: dict[str, str] = field(metadata=required("nodes.network.tags"))

    @property
    def cidr(self) -> str:
        return f"{self.ip}/{self.prefix}" if self.ip else ""


@dataclass(frozen=True)
class Ipmi:
    ip: str = from_spec("nodes.ipmi.ip")
    netmask: str = from_spec("nodes.ipmi.netmask")
    gateway: str = from_spec("nodes.ipmi.gateway")
    user: str = from_spec("nodes.ipmi.user")
    password: str = from_spec("nodes.ipmi.password")
    interface: str = from_spec("nodes.ipmi.interface")
    port: int = from_spec("nodes.ipmi.port")
    write: bool = from_spec("nodes.ipmi.write")
    tags: dict[str, str] = from_spec("nodes.ipmi.tags")


@dataclass(frozen=True)
class Kernel:
    version: str = from_spec("nodes.kernel.version")
    args: tuple[str, ...] = from_spec("nodes.kernel.args")


@dataclass(frozen=True)
class Node:
    name: str = field(metadata=derived("its key under nodes:, or one name of its hostlist"))
    image: str = field(metadata=required("nodes.image"))
    kernel: Kernel = field(metadata=required("nodes.kernel"))
    init: str = field(metadata=required("nodes.init"))
    root: str = field(metadata=required("nodes.root"))
    ipxe_template: str = field(metadata=required("nodes.ipxe_template"))
    system_overlays: tuple[str, ...] = field(metadata=required("nodes.system_overlays"))
    runtime_overlays: tuple[str, ...] = field(metadata=required("nodes.runtime_overlays"))
    network: dict[str, NetDev] = field(metadata=required("nodes.network"))
    primary_network: str = field(metadata=derived("the network device marked or taken as primary"))
    ipmi: Ipmi = field(metadata=required("nodes.ipmi"))
    tags: dict[str, str] = field(metadata=required("nodes.tags"))
    resources: dict[str, Any] = field(metadata=required("nodes.resources"))
    disks: dict[str, Any] = field(metadata=required("nodes.disks"))
    filesystems: dict[str, Any] = field(metadata=required("nodes.filesystems"))
    profiles: tuple[str, ...] = field(metadata=required("nodes.profiles"))  # expanded, in order
    comment: str = from_spec("nodes.comment")
    standalone_iso: bool = from_spec("nodes.standalone_iso")
    discoverable: bool = from_spec("nodes.discoverable")

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
    range_start: str = from_spec("dhcp.range.start")
    range_end: str = from_spec("dhcp.range.end")
    lease_time: int = from_spec("dhcp.lease_time")
    backend: DhcpBackend = from_spec("dhcp.backend")
    interface: str = from_spec("dhcp.interface")
    dnsmasq_tftp: bool = from_spec("dhcp.dnsmasq_tftp")


@dataclass(frozen=True)
class Export:
    path: str = field(metadata=required("nfs.exports.path"))
    options: str = from_spec("nfs.exports.options")


@dataclass(frozen=True)
class Cluster:
    path: str = field(metadata=derived("where cluster.yaml is"))
    head: Head = field(metadata=required("head"))
    images: dict[str, Image] = field(metadata=required("images"))
    nodes: tuple[Node, ...] = field(metadata=required("nodes"))
    dhcp: Dhcp = field(default=Dhcp(), metadata=required("dhcp"))
    nfs_exports: tuple[Export, ...] = from_spec("nfs.exports")
    ssh_key_types: tuple[str, ...] = from_spec("ssh.key_types")
    ssh_authorized_keys: tuple[str, ...] = from_spec("ssh.authorized_keys")
    ssh_authorized_key_files: tuple[str, ...] = from_spec("ssh.authorized_key_files")
    wwclient_interval: int = from_spec("wwclient.interval")
    node_locs: dict[str, Loc] = field(default_factory=dict, compare=False, repr=False,
                                      metadata=derived("where each node's key is written"))
    sources: dict[str, dict[str, Val]] = field(default_factory=dict, compare=False, repr=False,
                                               metadata=derived("which profile set each value"))

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)
