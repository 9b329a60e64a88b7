"""The cluster model: cluster.yaml in, immutable resolved nodes out.

Reading follows the field table in spec.py (see reader.py); this module merges
each node's profiles and its own settings, fills in defaults, checks the whole
cluster (names, MACs and addresses unique across nodes and devices; images,
overlays and templates that exist) and reports every error of the file at once.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import spec
from .errors import Loc, WWError, WWErrors
from .hostlist import HostlistError, expand
from .overlay import overlay_dirs
from .reader import Reader, Tree, Val, flatten, instantiate, merge, plain
from .schema import NAME, as_map, as_name, as_str
from .spec import NODE, DhcpBackend
from .yamlsrc import YMap, YNode, YScalar, load_file

IPXE_TEMPLATES = Path(__file__).parent / "templates" / "ipxe"


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


def known_overlays(project: Path) -> set[str]:
    return {p.parent.name for base in overlay_dirs(project)
            for p in base.glob("*/rootfs") if p.is_dir()}


def known_ipxe_templates() -> set[str]:
    return {p.name.removesuffix(".ipxe.j2") for p in IPXE_TEMPLATES.glob("*.ipxe.j2")}


# --- loading --------------------------------------------------------------------

def load_cluster(path: Path, keep_sources: bool = False) -> Cluster:
    """Read, validate and resolve cluster.yaml; raise WWErrors with every mistake."""
    return _Loader(path, keep_sources).load()


def _get(tree: Tree, *keys: str, default: Any = None) -> Any:
    for key in keys:
        if not isinstance(tree, dict) or key not in tree:
            return default
        tree = tree[key]
    return tree.value if isinstance(tree, Val) else tree


def _loc(tree: Tree, *keys: str, default: Loc) -> Loc:
    for key in keys:
        if not isinstance(tree, dict) or key not in tree:
            return default
        tree = tree[key]
    return tree.loc if isinstance(tree, Val) else default


def _key_loc(ymap: YNode, key: str) -> Loc:
    """Where `key` of a mapping is written (for a mistake in its value as a whole)."""
    if isinstance(ymap, YMap):
        for k, _ in ymap.items:
            if k.text == key:
                return k.loc
    return ymap.loc


class _Loader:
    def __init__(self, path: Path, keep_sources: bool) -> None:
        self.path = path
        self.keep_sources = keep_sources
        self.r = Reader()
        self.file_loc = Loc(str(path), 1, 1)

    def error(self, message: str, loc: Loc | None, hint: str) -> None:
        self.r.errors.append(WWError(message, loc=loc or self.file_loc, hint=hint))

    def load(self) -> Cluster:
        root = load_file(self.path)  # a syntax error stops here: nothing else is readable
        r = self.r
        # Images, profiles and nodes are read one entry at a time below, so a
        # mistake inside one does not also make it look missing elsewhere.
        deferred = ("images", "profiles", "nodes")
        shallow = (YMap(tuple((k, v) for k, v in root.items if k.text not in deferred), root.loc)
                   if isinstance(root, YMap) else root)
        top = r.struct(spec.TOP, shallow, "the cluster file", "cluster")
        ymap = {k.text: v for k, v in root.items} if isinstance(root, YMap) else {}
        head = self.head(top.get("head"), ymap.get("head"), root)
        images = self.images(ymap.get("images"))
        profiles = self.profiles(ymap.get("profiles"))
        nodes, locs, sources = self.nodes(ymap.get("nodes"), head, images, profiles)
        dhcp = self.dhcp(top.get("dhcp", {}), ymap.get("dhcp"), head, nodes, locs)
        if head is not None:
            self.check_unique(nodes, locs, head)
        if r.errors:
            raise WWErrors(r.errors)
        assert head is not None
        exports = tuple(Export(_get(e, "path"), _get(e, "options", default="rw,sync,no_subtree_check"))
                        for e in _get(top, "nfs", "exports", default=[]))
        return Cluster(
            str(self.path), head, images, tuple(nodes), dhcp=dhcp, nfs_exports=exports,
            ssh_key_types=tuple(_get(top, "ssh", "key_types", default=["ed25519", "ecdsa", "rsa"])),
            ssh_authorized_keys=tuple(_get(top, "ssh", "authorized_keys", default=[])),
            ssh_authorized_key_files=tuple(_get(top, "ssh", "authorized_key_files", default=[])),
            wwclient_interval=_get(top, "wwclient", "interval", default=60),
            node_locs=locs, sources=sources)

    # --- head, images, dhcp -------------------------------------------------------
    def head(self, tree: Tree | None, raw: YNode | None, root: YNode) -> Head | None:
        if raw is None:
            if isinstance(root, YMap):
                self.error("the cluster file has no `head` section", root.loc,
                           "add head: {ip: ..., network: ...}")
            return None
        if isinstance(raw, YScalar) and raw.kind == "null":
            # `head:` with nothing under it: the reader takes an empty value as unset.
            self.error("the `head` section is empty", raw.loc, "add ip: and network: under head")
            return None
        if not isinstance(raw, YMap) or tree is None:
            return None  # the reader said what is wrong with it
        for req in ("ip", "network"):
            if req not in raw.keys():  # noqa: SIM118 (YMap is not a dict)
                self.error(f"head has no `{req}`", raw.loc, f"add `{req}:` under head")
        if "ip" not in tree or "network" not in tree:
            return None
        ip = tree["ip"].value
        try:
            net = ipaddress.IPv4Network(tree["network"].value, strict=True)
        except ValueError as exc:
            self.error(f"head network `{tree['network'].value}` is not an IPv4 network: {exc}",
                       tree["network"].loc, "write the network address and prefix, e.g. 10.0.0.0/24")
            return None
        if ip not in net:
            self.error(f"head ip {ip} is not inside the cluster network {net}", tree["ip"].loc,
                       "fix either the ip or the network")
        http = str(_get(tree, "http", default=f"http://{ip}")).rstrip("/")
        try:
            url = urlsplit(http)
            port = url.port or 80
            host = url.hostname
            plain_url = (url.scheme == "http" and host and not url.path and not url.query
                         and not url.fragment and not url.username)
        except ValueError:
            host, port, plain_url = None, 0, False
        if not plain_url or host is None:
            self.error(f"head http `{http}` is not a plain http://host[:port] URL",
                       _loc(tree, "http", default=raw.loc),
                       "iPXE fetches over plain HTTP; write e.g. http://10.0.0.1 or http://10.0.0.1:8080")
            return None
        return Head(ip, net, http, host, port, _get(tree, "fqdn", default=""),
                    _get(tree, "access_log", default=Head.access_log))

    def images(self, raw: YNode | None) -> dict[str, Image]:
        out: dict[str, Image] = {}
        ymap = self.r.guard(as_map, raw, "images") if raw is not None else None
        froms: dict[str, tuple[str, Loc]] = {}
        for key, value in ymap.items if ymap else ():
            name = self.r.guard(as_name, key, "image name")
            before = len(self.r.errors)
            sub = self.r.struct(spec.IMAGE, value, f"image {key.text}", "cluster")
            if name is None or len(self.r.errors) > before:
                continue
            image = self.image(name, sub, value)
            if image is not None:
                out[name] = image
                if image.kernel_from:
                    froms[name] = (image.kernel_from, _loc(sub, "kernel", "from", default=value.loc))
        for name, (other, loc) in froms.items():
            if other == name or other not in out:
                self.error(f"image {name}: kernel.from `{other}` is not another image", loc,
                           "defined images: " + (", ".join(sorted(set(out) - {name})) or "none"))
            elif out[other].kernel_from:
                self.error(f"image {name}: kernel.from `{other}` takes its own kernel from "
                           f"`{out[other].kernel_from}`", loc,
                           f"name the image that has the kernel: `{out[other].kernel_from}`")
        return out

    def image(self, name: str, sub: Tree, value: YNode) -> Image | None:
        builders = [b for b in IMAGE_SOURCES if b in sub]
        if len(builders) != 1:
            what = "has none" if not builders else "has " + " and ".join(f"`{b}`" for b in builders)
            self.error(f"image {name} needs exactly one source: demo, root, tarball, oci or "
                       f"debootstrap ({what})", value.loc,
                       "e.g. `root: /path/to/chroot`, `tarball: rootfs.tar.zst`, "
                       "or `demo: {}` for the built-in demo image")
            return None
        kind = builders[0]
        common: dict[str, Any] = {
            "exclude": tuple(_get(sub, "exclude", default=[])),
            "compression": _get(sub, "compression", default="gzip"),
            "kernel_version": _get(sub, "kernel", "version", default=""),
            "kernel_from": _get(sub, "kernel", "from", default=""),
        }
        base = Path(self.path).parent
        if kind == "root":
            return Image(name, "root", root=_get(sub, "root"), **common)
        if kind == "tarball":
            return Image(name, "tarball", path=str(base / _get(sub, "tarball")), **common)
        if kind == "oci":
            if "path" not in sub["oci"]:
                self.error(f"image {name}: oci needs `path`", _key_loc(value, "oci"),
                           "oci: {path: ./layout} (a directory or a tar)")
                return None
            return Image(name, "oci", path=str(base / _get(sub, "oci", "path")),
                         oci_ref=_get(sub, "oci", "ref", default=""), **common)
        if kind == "debootstrap":
            return self.debootstrap(name, sub, value, common)
        common["exclude"] = common["exclude"] or BUILT_IMAGE_EXCLUDES
        return Image(name, "demo",
                     kernel_package=_get(sub, "demo", "kernel_package", default=Image.kernel_package),
                     modules=tuple(_get(sub, "demo", "modules", default=[])), **common)

    def debootstrap(self, name: str, sub: Tree, value: YNode, common: dict[str, Any]) -> Image | None:
        d = sub["debootstrap"]
        if "suite" not in d:
            self.error(f"image {name}: debootstrap needs `suite`", _key_loc(value, "debootstrap"),
                       "the Debian release to install, e.g. suite: bookworm")
            return None
        mirror = _get(d, "mirror", default="")
        if mirror and urlsplit(mirror).scheme not in ("http", "https", "file"):
            self.error(f"image {name}: debootstrap mirror `{mirror}` is not an http, https or file URL",
                       _loc(d, "mirror", default=value.loc),
                       "write the mirror's URL, or leave it out to use this machine's apt source")
            return None
        common["exclude"] = common["exclude"] or DEBOOTSTRAP_EXCLUDES
        boot = Debootstrap(_get(d, "suite"), _get(d, "variant", default="minbase"),
                           tuple(_get(d, "include", default=[])),
                           tuple(_get(d, "components", default=["main"])), mirror)
        return Image(name, "debootstrap", debootstrap=boot, **common)

    def dhcp(self, tree: Tree, raw: YNode | None, head: Head | None, nodes: list[Node],
             locs: dict[str, Loc]) -> Dhcp:
        settings = Dhcp(lease_time=_get(tree, "lease_time", default=3600),
                              backend=DhcpBackend(_get(tree, "backend", default="isc")),
                              interface=_get(tree, "interface", default=""),
                              dnsmasq_tftp=_get(tree, "dnsmasq_tftp", default=False))
        start, end = _get(tree, "range", "start"), _get(tree, "range", "end")
        if "range" in tree and (start is None or end is None):
            ranges = [v for k, v in raw.items if k.text == "range"] if isinstance(raw, YMap) else []
            if ranges and isinstance(ranges[0], YMap) and not {"start", "end"} <= set(ranges[0].keys()):
                self.error("dhcp range needs both `start` and `end`", ranges[0].loc,
                           "write range: {start: 10.0.0.200, end: 10.0.0.250}")
            return settings
        if start is not None and head is not None and start <= head.ip <= end:
            self.error(f"dhcp range {start}-{end} holds the head's own address {head.ip}",
                       _loc(tree, "range", "start", default=self.file_loc),
                       "start the range after the head's address or end it before")
        if start is None or head is None:
            return settings
        for key, ip in (("start", start), ("end", end)):
            if ip not in head.network:
                self.error(f"dhcp range {key} {ip} is outside the cluster network {head.network}",
                           _loc(tree, "range", key, default=self.file_loc),
                           "choose addresses of the cluster network")
        if end < start:
            self.error(f"dhcp range ends ({end}) before it starts ({start})",
                       _loc(tree, "range", "end", default=self.file_loc), "swap start and end")
        for n in nodes:
            for dev in n.network.values():
                if dev.ip and start <= ipaddress.IPv4Address(dev.ip) <= end:
                    self.error(f"node {n.name} has {dev.ip}, inside the dynamic DHCP range",
                               locs[n.name], "move the range or the node's address")
        return replace(settings, range_start=str(start), range_end=str(end))

    # --- profiles and nodes -------------------------------------------------------
    def profiles(self, node: YNode | None) -> dict[str, Tree]:
        if node is None:
            return {}
        out: dict[str, Tree] = {}
        ymap = self.r.guard(as_map, node, "profiles")
        for key, value in ymap.items if ymap else ():
            name = self.r.guard(as_name, key, "profile name")
            if name:
                out[name] = self.r.struct(NODE, value, f"profile {name}", f"profile {name}",
                                          is_node=False)
        return out

    def expand_profiles(self, start: list[str], profiles: dict[str, Tree], where: Loc) -> list[str]:
        """Depth-first: a profile's own profiles come before it; `~name` drops one."""
        order: list[str] = []
        dropped = {p[1:] for p in start if p.startswith("~")}

        def visit(name: str, chain: list[str], loc: Loc) -> None:
            if name in chain:
                raise WWError("profiles include each other in a cycle: " + " -> ".join([*chain, name]),
                              loc=loc, hint="remove one of these profile references")
            if name not in profiles:
                raise WWError(f"profile `{name}` is not defined", loc=loc,
                              hint="defined profiles: " + (", ".join(sorted(profiles)) or "none"))
            if name in order:
                return
            inner: Val | None = profiles[name].get("profiles")
            if inner is not None:
                for sub in inner.value:
                    if sub.startswith("~"):
                        dropped.add(sub[1:])
                    else:
                        visit(sub, [*chain, name], inner.loc)
            order.append(name)

        for name in start:
            if not name.startswith("~"):
                visit(name, [], where)
        # A `~name` that matches no profile is most likely a typo: say so.
        for name in sorted(dropped - set(profiles)):
            raise WWError(f"`~{name}` drops profile `{name}`, which is not defined", loc=where,
                          hint="defined profiles: " + (", ".join(sorted(profiles)) or "none"))
        return [p for p in order if p not in dropped]

    def nodes(self, node: YNode | None, head: Head | None, images: dict[str, Image],
              profiles: dict[str, Tree]) -> tuple[list[Node], dict[str, Loc], dict[str, dict[str, Val]]]:
        nodes: list[Node] = []
        locs: dict[str, Loc] = {}
        sources: dict[str, dict[str, Val]] = {}
        if node is None:
            return nodes, locs, sources
        ymap = self.r.guard(as_map, node, "nodes")
        chains: dict[tuple[str, ...], Tree] = {}
        project = self.path.parent
        checks = _Checks(known_overlays(project), known_ipxe_templates(), images)
        for key, value in ymap.items if ymap else ():
            if self.r.guard(as_str, key, "node name") is None:
                continue
            try:
                names = expand(key.text)
            except HostlistError as exc:
                self.error(f"node key `{key.text}` is not a valid hostlist: {exc}", key.loc,
                           "write a name (n01) or a hostlist (n[01-04], r[1-2]n[01-32])")
                continue
            bad = [n for n in names if not NAME.match(n)]
            if bad:
                self.error(f"node name `{bad[0]}` is not valid", key.loc,
                           "use letters, digits, `.`, `_` and `-`, starting with a letter or digit")
                continue
            before = len(self.r.errors)
            own = self.r.struct(NODE, value, f"node {key.text}", "node", count=len(names))
            # With a value already rejected, check the rest but do not also call it missing.
            partial = len(self.r.errors) > before
            plist = own.get("profiles")
            chosen = self.r.guard(self.expand_profiles, plist.value if plist else [], profiles,
                                  plist.loc if plist else key.loc)
            if chosen is None:
                continue
            base = chains.get(tuple(chosen))
            if base is None:
                base = {}
                for p in chosen:
                    base = merge(NODE, base, profiles[p])
                chains[tuple(chosen)] = base
            for i, name in enumerate(names):
                if name in locs:
                    self.error(f"node {name} is defined twice (first at line {locs[name].line})",
                               key.loc, "each node name may appear in one node key only")
                    continue
                locs[name] = key.loc
                merged = merge(NODE, base, instantiate(NODE, own, i))
                built = checks.node(self, name, merged, tuple(chosen), head, key.loc, partial)
                if built is not None:
                    nodes.append(built)
                    if self.keep_sources:
                        sources[name] = flatten(merged)
        return nodes, locs, sources

    def check_unique(self, nodes: list[Node], locs: dict[str, Loc], head: Head) -> None:
        macs: dict[str, str] = {}
        ips: dict[str, str] = {str(head.ip): "the head"}
        bmcs: dict[str, str] = {}
        for n in nodes:
            for dev in n.network.values():
                what = f"node {n.name} network {dev.name}"
                if dev.mac:
                    if dev.mac in macs:
                        self.error(f"{what} has MAC {dev.mac}, already used by {macs[dev.mac]}",
                                   locs[n.name], "every device needs its own MAC")
                    macs.setdefault(dev.mac, what)
                if dev.ip:
                    if dev.ip in ips:
                        self.error(f"{what} has IP {dev.ip}, already used by {ips[dev.ip]}",
                                   locs[n.name], "give every device its own address")
                    ips.setdefault(dev.ip, what)
            if n.ipmi.ip:
                # BMCs may share an address on distinct UDP ports (a chassis
                # manager, port forwarding, simulators), but not with a device.
                what = f"node {n.name} ipmi"
                at = f"{n.ipmi.ip}:{n.ipmi.port}"
                if n.ipmi.ip in ips and not ips[n.ipmi.ip].endswith(" ipmi"):
                    self.error(f"{what} has IP {n.ipmi.ip}, already used by {ips[n.ipmi.ip]}",
                               locs[n.name], "give every BMC its own address")
                elif at in bmcs:
                    self.error(f"{what} has address {at}, already used by {bmcs[at]}",
                               locs[n.name], "give every BMC its own address or port")
                ips.setdefault(n.ipmi.ip, what)
                bmcs.setdefault(at, what)


@dataclass(frozen=True)
class _Checks:
    overlays: set[str]
    templates: set[str]
    images: dict[str, Image]

    def node(self, ld: _Loader, name: str, t: Tree, chain: tuple[str, ...], head: Head | None,
             key_loc: Loc, partial: bool = False) -> Node | None:
        what = f"node {name}"

        def loc(*keys: str) -> Loc:
            return _loc(t, *keys, default=key_loc)

        image = _get(t, "image")
        if image is None and not partial:
            ld.error(f"{what} has no `image`", key_loc, "add image: <name>, here or in a profile")
        elif image is not None and image not in self.images:
            ld.error(f"image `{image}` is not defined", loc("image"),
                     "defined images: " + (", ".join(sorted(self.images)) or "none"))
        for kind in ("system_overlays", "runtime_overlays"):
            for ov in _get(t, kind, default=[]):
                if ov not in self.overlays:
                    ld.error(f"{what}: overlay `{ov}` does not exist", loc(kind),
                             f"create overlays/{ov}/rootfs/ or use one of: "
                             + ", ".join(sorted(self.overlays)))
        template = _get(t, "ipxe_template", default="default")
        if template not in self.templates:
            ld.error(f"{what}: iPXE template `{template}` does not exist", loc("ipxe_template"),
                     "use one of: " + ", ".join(sorted(self.templates)))
        root = _get(t, "root", default="initramfs")
        if root not in ("initramfs", "tmpfs") and not (root.startswith("/dev/") and len(root) > 5):
            ld.error(f"{what}: root `{root}` is not initramfs, tmpfs or a device", loc("root"),
                     "write initramfs (run from RAM), tmpfs, or a device such as /dev/sda2")

        discoverable = _get(t, "discoverable", default=False)
        network = self.network(ld, what, t.get("network", {}), head, key_loc, partial, discoverable)
        ipmi_tree = t.get("ipmi", {})
        ipmi = Ipmi(ip=str(_get(ipmi_tree, "ip", default="") or ""),
                    netmask=_get(ipmi_tree, "netmask", default=""),
                    gateway=str(_get(ipmi_tree, "gateway", default="")),
                    user=_get(ipmi_tree, "user", default=""),
                    password=_get(ipmi_tree, "password", default=""),
                    interface=_get(ipmi_tree, "interface", default="lanplus"),
                    port=_get(ipmi_tree, "port", default=623),
                    write=_get(ipmi_tree, "write", default=False),
                    tags={k: v.value for k, v in ipmi_tree.get("tags", {}).items()})
        if ipmi_tree.get("ip") is not None and ipmi_tree["ip"].value is None:
            ld.error(f"{what}: ipmi ip counted past 255.255.255.255", loc("ipmi", "ip"),
                     "choose a lower first address")
        for path, fs in t.get("filesystems", {}).items():
            fmt = _get(fs, "format")
            if fmt and fmt != "swap" and not _get(fs, "path") and not partial:
                ld.error(f"{what}: file system {path} ({fmt}) has no `path`",
                         _loc(fs, "format", default=key_loc),
                         "add path: /mount/point")
        # A node with other errors is still returned (the cluster is not) so
        # that its MACs and addresses take part in the uniqueness checks.
        if network is None:
            return None
        primary = next(d.name for d in network.values() if d.primary)
        return Node(
            name=name, image=image, kernel=Kernel(_get(t, "kernel", "version", default=""),
                                                  tuple(_get(t, "kernel", "args", default=[]))),
            init=_get(t, "init", default="/sbin/init"), root=root, ipxe_template=template,
            system_overlays=tuple(_get(t, "system_overlays", default=[])),
            runtime_overlays=tuple(_get(t, "runtime_overlays", default=[])),
            network=network, primary_network=primary, ipmi=ipmi,
            tags={k: v.value for k, v in t.get("tags", {}).items()},
            resources=_get(t, "resources", default={}),
            disks={d: _plain_struct(v) for d, v in t.get("disks", {}).items()},
            filesystems={d: _plain_struct(v) for d, v in t.get("filesystems", {}).items()},
            profiles=chain, comment=_get(t, "comment", default=""),
            standalone_iso=_get(t, "standalone_iso", default=False),
            discoverable=discoverable,
            asset_key=_get(t, "asset_key", default=""))

    def network(self, ld: _Loader, what: str, devs: Tree, head: Head | None,
                key_loc: Loc, partial: bool, discoverable: bool = False) -> dict[str, NetDev] | None:
        if not devs:
            if partial:
                return None
            ld.error(f"{what} has no network device", key_loc,
                     'add network: {default: {mac: "52:54:00:12:34:56", ip: 10.0.0.11}}')
            return None
        primaries = [n for n, d in devs.items() if _get(d, "primary")]
        if len(primaries) > 1:
            ld.error(f"{what} has several primary network devices: {', '.join(primaries)}",
                     _loc(devs[primaries[1]], "primary", default=key_loc),
                     "mark only one device primary: true")
            return None
        # Without `primary: true`: `default`, else the first by name, but never
        # a device marked `primary: false`.
        allowed = sorted(n for n, d in devs.items() if _get(d, "primary") is not False)
        if not primaries and not allowed:
            ld.error(f"{what}: every network device is marked primary: false", key_loc,
                     "mark the device the node boots from primary: true")
            return None
        primary = primaries[0] if primaries else ("default" if "default" in allowed else allowed[0])
        out: dict[str, NetDev] = {}
        for name in sorted(devs):
            d = devs[name]
            dwhat = f"{what} network {name}"
            ip, mac = _get(d, "ip"), _get(d, "mac")
            if "ip" in d and ip is None:
                ld.error(f"{dwhat}: ip counted past 255.255.255.255", _loc(d, "ip", default=key_loc),
                         "choose a lower first address")
                continue
            netmask = _get(d, "netmask")
            if netmask is None and ip is not None and head is not None and ip in head.network:
                netmask = str(head.network.netmask)
            if name == primary:
                # A discoverable node gets its MAC from `wwstatic discover --assign`.
                if not mac and not partial and not discoverable:
                    ld.error(f"{dwhat} (the primary device) has no `mac`", key_loc,
                             'the boot chain knows a node by its MAC: add mac: "52:54:00:12:34:56", '
                             "or mark the node discoverable: true")
                if ip is None:
                    if not partial:
                        ld.error(f"{dwhat} (the primary device) has no `ip`", key_loc,
                                 "add ip: <address in the cluster network>")
                elif head is not None and (ip not in head.network or ip in (
                        head.network.network_address, head.network.broadcast_address)):
                    ld.error(f"{dwhat}: IP {ip} is outside the usable addresses of the cluster "
                             f"network {head.network}", _loc(d, "ip", default=key_loc),
                             "the boot device must be on the head's network; for a hostlist, "
                             "choose a first IP that leaves room for every node")
                    continue
            if ip is not None and netmask is None and head is not None and not partial:
                ld.error(f"{dwhat}: IP {ip} is outside the cluster network and has no netmask",
                         _loc(d, "ip", default=key_loc), "add netmask: 255.255.255.0 (or the right one)")
                continue
            prefix = ipaddress.IPv4Network(f"0.0.0.0/{netmask}").prefixlen if netmask else 0
            gateway = _get(d, "gateway")
            if gateway is not None and ip is not None:
                net = ipaddress.IPv4Network(f"{ip}/{prefix}", strict=False)
                if gateway not in net:
                    ld.error(f"{dwhat}: gateway {gateway} is not in {net}",
                             _loc(d, "gateway", default=key_loc), "fix the gateway or the netmask")
            out[name] = NetDev(
                name=name, type=_get(d, "type", default="ethernet"), device=_get(d, "device", default=""),
                mac=mac or "", ip=str(ip) if ip is not None else "", netmask=netmask or "",
                prefix=prefix, gateway=str(gateway) if gateway is not None else "",
                mtu=_get(d, "mtu", default=0), primary=name == primary,
                onboot=_get(d, "onboot", default=True),
                tags={k: v.value for k, v in d.get("tags", {}).items()})
        return out if len(out) == len(devs) else None


def _plain_struct(tree: Tree) -> dict[str, Any]:
    out = plain(tree)
    assert isinstance(out, dict)
    return out
