"""The cluster model: cluster.yaml in, immutable resolved nodes out.

One table (`SETTINGS`) lists every per-node setting with its parser, how it
merges and its help; the loader, the merge and the docs all read it. Profiles
and nodes share it; `mac` and `ip` belong to nodes only.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import schema
from .errors import Loc, WWError
from .hostlist import HostlistError, expand
from .yamlsrc import YMap, YNode, YScalar, YSeq, load_file


class Merge(StrEnum):
    SCALAR = "scalar"  # the last profile that sets it wins; the node wins over all
    LIST = "list"      # appended in merge order; `~item` removes an item


@dataclass(frozen=True)
class Setting:
    key: str
    parse: Callable[[YNode, str], Any]
    merge: Merge
    help: str
    node_only: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting("profiles", schema.as_list, Merge.LIST,
            "profiles merged into this one, in order; `~name` drops a profile"),
    Setting("comment", schema.as_str, Merge.SCALAR, "free text"),
    Setting("image", schema.as_name, Merge.SCALAR, "the image (under `images:`) the node boots"),
    Setting("kernel_args", schema.as_list, Merge.LIST,
            "kernel command line arguments; `~arg` removes one set by a profile"),
    Setting("init", schema.as_path, Merge.SCALAR,
            "what wwinit executes when it is done (default /sbin/init)"),
    Setting("system_overlays", schema.as_list, Merge.LIST,
            "overlays unpacked at boot before init runs; `~name` removes one"),
    Setting("runtime_overlays", schema.as_list, Merge.LIST,
            "overlays unpacked at boot and refreshed by wwclient; `~name` removes one"),
    Setting("device", schema.as_name, Merge.SCALAR,
            "interface name the node gives its cluster NIC (default: the kernel's name)"),
    Setting("gateway", schema.as_ipv4, Merge.SCALAR, "default route of the node"),
    Setting("mac", schema.as_mac, Merge.SCALAR,
            "MAC of the cluster NIC; a list with one MAC per name for a hostlist key",
            node_only=True),
    Setting("ip", schema.as_ipv4, Merge.SCALAR,
            "IPv4 address; for a hostlist key, the first node's, counted up per node",
            node_only=True),
)
_BY_KEY = {s.key: s for s in SETTINGS}
DEFAULT_INIT = "/sbin/init"


@dataclass(frozen=True)
class Head:
    ip: ipaddress.IPv4Address
    network: ipaddress.IPv4Network
    http: str  # base URL the nodes fetch from, no trailing slash
    http_host: str
    http_port: int


@dataclass(frozen=True)
class Image:
    name: str
    builder: str            # "demo" or "root"
    root: str = ""          # for "root": the directory
    kernel_package: str = "linux-image-cloud-amd64"
    modules: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class Node:
    name: str
    mac: str
    ip: str
    netmask: str
    prefix: int
    gateway: str
    device: str
    image: str
    init: str
    kernel_args: tuple[str, ...]
    system_overlays: tuple[str, ...]
    runtime_overlays: tuple[str, ...]
    profiles: tuple[str, ...]
    comment: str = ""

    @property
    def mac_hyphen(self) -> str:
        """The MAC as iPXE's ${mac:hexhyp} writes it."""
        return self.mac.replace(":", "-")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


@dataclass(frozen=True)
class Cluster:
    path: str
    head: Head
    images: dict[str, Image]
    nodes: tuple[Node, ...]
    node_locs: dict[str, Loc] = field(default_factory=dict, compare=False, repr=False)

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)


# --- reading --------------------------------------------------------------

_TOP = {
    "head": "the provisioning server: its IP, the cluster network, the HTTP base URL",
    "images": "OS images the nodes boot, by name",
    "profiles": "named groups of settings that nodes list under `profiles`",
    "nodes": "the nodes, by name or hostlist such as n[01-04]",
}
_HEAD = {
    "ip": "the head's IPv4 address on the cluster network",
    "network": "the cluster network, e.g. 10.0.0.0/24",
    "http": "base URL nodes fetch files from (default http://<ip>)",
}
_IMAGE = {
    "demo": "build a small busybox image with a Debian kernel (keys: kernel_package, modules)",
    "root": "use this root directory (a chroot) as the image",
    "exclude": "glob patterns of image paths left out of the archive, e.g. /boot/*",
}
_DEMO = {
    "kernel_package": "Debian package whose kernel the demo boots",
    "modules": "kernel modules (and their dependencies) copied into the image",
}


def _read_head(node: YNode) -> Head:
    m = schema.as_map(node, "head")
    schema.check_keys(m, _HEAD, "head")
    vals = dict(m.items)
    keys = {k.text: v for k, v in vals.items()}
    for req in ("ip", "network"):
        if req not in keys:
            raise WWError(f"head has no `{req}`", loc=m.loc, hint=f"add `{req}:` under head")
    ip = schema.as_ipv4(keys["ip"], "head ip")
    net = schema.as_network(keys["network"], "head network")
    if ip not in net:
        raise WWError(f"head ip {ip} is not inside the cluster network {net}",
                      loc=keys["ip"].loc, hint="fix either the ip or the network")
    http = f"http://{ip}"
    if "http" in keys:
        http = schema.as_str(keys["http"], "head http").rstrip("/")
    try:
        url = urlsplit(http)
        port = url.port or 80
    except ValueError:
        # A bad port or an unclosed `[`: report it like any other bad URL below.
        url, port = urlsplit(""), 0
    if url.scheme != "http" or not url.hostname or url.path or url.query:
        raise WWError(f"head http `{http}` is not a plain http://host[:port] URL",
                      loc=keys.get("http", m).loc,
                      hint="iPXE fetches over plain HTTP; write e.g. http://10.0.0.1 or http://10.0.0.1:8080")
    return Head(ip, net, http, url.hostname, port)


def _read_image(name: str, node: YNode) -> Image:
    m = schema.as_map(node, f"image {name}")
    schema.check_keys(m, _IMAGE, f"image {name}")
    keys = {k.text: v for k, v in m.items}
    builders = [b for b in ("demo", "root") if b in keys]
    if len(builders) != 1:
        raise WWError(f"image {name} needs exactly one of `demo` or `root`", loc=m.loc,
                      hint="`root: /path/to/chroot`, or `demo: {}` for the built-in demo image")
    exclude = tuple(schema.as_list(keys["exclude"], "exclude")) if "exclude" in keys else ()
    if builders[0] == "root":
        return Image(name, "root", root=schema.as_path(keys["root"], f"image {name} root"),
                     exclude=exclude)
    demo = schema.as_map(keys["demo"], f"image {name} demo")
    schema.check_keys(demo, _DEMO, f"image {name} demo")
    opts = {k.text: v for k, v in demo.items}
    package = (schema.as_name(opts["kernel_package"], "kernel_package")
               if "kernel_package" in opts else Image.kernel_package)
    mods = tuple(schema.as_list(opts["modules"], "modules")) if "modules" in opts else ()
    return Image(name, "demo", kernel_package=package, modules=mods,
                 exclude=exclude or ("/boot/*",))


# A layer of settings (a profile or a node) as read: key -> (value, where set).
Layer = dict[str, tuple[Any, Loc]]


def _read_layer(node: YNode, what: str, is_node: bool) -> tuple[Layer, YMap]:
    m = schema.as_map(node, what)
    allowed = {s.key: s.help for s in SETTINGS if is_node or not s.node_only}
    schema.check_keys(m, allowed, what)
    layer: Layer = {}
    for key, value in m.items:
        setting = _BY_KEY[key.text]
        if is_node and key.text in ("mac",) and isinstance(value, YSeq):
            layer[key.text] = ([schema.as_mac(v, "mac") for v in value.items], value.loc)
            continue
        layer[key.text] = (setting.parse(value, key.text), value.loc)
    return layer, m


def _apply_list(acc: list[str], items: list[str]) -> list[str]:
    out = list(acc)
    for item in items:
        if item.startswith("~"):
            out = [x for x in out if x != item[1:]]
        else:
            out.append(item)
    return out


def merge_layers(layers: list[Layer]) -> Layer:
    """Merge profile layers then the node's, left to right (pure; see SETTINGS)."""
    out: Layer = {}
    for layer in layers:
        for key, (value, loc) in layer.items():
            if key == "profiles":
                continue
            if _BY_KEY[key].merge is Merge.LIST:
                prev = out.get(key, ([], loc))[0]
                out[key] = (_apply_list(prev, value), loc)
            else:
                out[key] = (value, loc)
    return out


def expand_profiles(start: list[str], profiles: dict[str, Layer], where: Loc) -> list[str]:
    """Depth-first expansion: a profile's own profiles come before it."""
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
        inner, inner_loc = profiles[name].get("profiles", ([], loc))
        for sub in inner:
            if sub.startswith("~"):
                dropped.add(sub[1:])
            else:
                visit(sub, [*chain, name], inner_loc)
        order.append(name)

    for name in start:
        if not name.startswith("~"):
            visit(name, [], where)
    return [p for p in order if p not in dropped]


def load_cluster(path: Path) -> Cluster:
    """Read, validate and resolve cluster.yaml; raise WWError on any mistake."""
    root = schema.as_map(load_file(path), "the cluster file")
    schema.check_keys(root, _TOP, "the cluster file")
    top = {k.text: (k, v) for k, v in root.items}
    if "head" not in top:
        raise WWError("the cluster file has no `head` section", loc=root.loc,
                      hint="add head: {ip: ..., network: ...}")
    head = _read_head(top["head"][1])

    images: dict[str, Image] = {}
    if "images" in top:
        for k, v in schema.as_map(top["images"][1], "images").items:
            images[schema.as_name(k, "image name")] = _read_image(k.text, v)

    profiles: dict[str, Layer] = {}
    if "profiles" in top:
        for k, v in schema.as_map(top["profiles"][1], "profiles").items:
            profiles[schema.as_name(k, "profile name")] = _read_layer(v, f"profile {k.text}", False)[0]

    nodes: list[Node] = []
    locs: dict[str, Loc] = {}
    if "nodes" in top:
        for k, v in schema.as_map(top["nodes"][1], "nodes").items:
            nodes.extend(_read_nodes(k, v, head, images, profiles, locs))
    _check_unique(nodes, locs, head)
    return Cluster(str(path), head, images, tuple(nodes), locs)


def _read_nodes(key: YScalar, value: YNode, head: Head, images: dict[str, Image],
                profiles: dict[str, Layer], locs: dict[str, Loc]) -> list[Node]:
    keytext = schema.as_str(key, "node name")
    try:
        names = expand(keytext)
    except HostlistError as exc:
        raise WWError(f"node key `{keytext}` is not a valid hostlist: {exc}", loc=key.loc,
                      hint="write a name (n01) or a hostlist (n[01-04], r[1-2]n[01-32])") from None
    for name in names:
        if not schema.NAME.match(name):
            raise WWError(f"node name `{name}` is not valid", loc=key.loc,
                          hint="use letters, digits, `.`, `_` and `-`")
    own, ymap = _read_layer(value, f"node {keytext}", True)
    chosen = expand_profiles(own.get("profiles", ([], key.loc))[0], profiles,
                             own.get("profiles", (None, key.loc))[1])
    merged = merge_layers([profiles[p] for p in chosen] + [own])
    for req, hint in (("mac", 'mac: "52:54:00:12:34:56"'), ("ip", "ip: 10.0.0.11"),
                      ("image", "image: <name>, here or in a profile")):
        if req not in merged:
            raise WWError(f"node {keytext} has no `{req}`", loc=ymap.loc, hint=f"add {hint}")
    image, image_loc = merged["image"]
    if image not in images:
        raise WWError(f"image `{image}` is not defined", loc=image_loc,
                      hint="defined images: " + (", ".join(sorted(images)) or "none"))

    macs, mac_loc = merged["mac"]
    if isinstance(macs, str):
        macs = [macs]
    if len(macs) != len(names):
        raise WWError(f"`{keytext}` names {len(names)} node(s) but gives {len(macs)} MAC(s)",
                      loc=mac_loc, hint="give a list with exactly one MAC per node, in hostlist order")
    first_ip, ip_loc = merged["ip"]
    out = []
    for i, name in enumerate(names):
        ip = first_ip + i
        if ip not in head.network or ip in (head.network.network_address,
                                            head.network.broadcast_address):
            raise WWError(f"node {name} would get IP {ip}, outside the usable addresses of "
                          f"{head.network}", loc=ip_loc,
                          hint="choose a first IP that leaves room for every node of the hostlist")
        gateway = merged.get("gateway", ("", None))[0]
        out.append(Node(
            name=name,
            mac=macs[i],
            ip=str(ip),
            netmask=str(head.network.netmask),
            prefix=head.network.prefixlen,
            gateway=str(gateway),
            device=merged.get("device", ("", None))[0],
            image=image,
            init=merged.get("init", (DEFAULT_INIT, None))[0],
            kernel_args=tuple(merged.get("kernel_args", ([], None))[0]),
            system_overlays=tuple(merged.get("system_overlays", ([], None))[0]),
            runtime_overlays=tuple(merged.get("runtime_overlays", ([], None))[0]),
            profiles=tuple(chosen),
            comment=merged.get("comment", ("", None))[0],
        ))
        if name in locs:
            raise WWError(f"node {name} is defined twice (first at line {locs[name].line})",
                          loc=key.loc, hint="each node name may appear in one node key only")
        locs[name] = key.loc
    return out


def _check_unique(nodes: list[Node], locs: dict[str, Loc], head: Head) -> None:
    for attr, what in (("mac", "MAC"), ("ip", "IP")):
        seen: dict[str, str] = {}
        for n in nodes:
            value = getattr(n, attr)
            if attr == "ip" and value == str(head.ip):
                raise WWError(f"node {n.name} has the head's IP {value}", loc=locs[n.name],
                              hint="give the node another address")
            if value in seen:
                raise WWError(f"nodes {seen[value]} and {n.name} have the same {what} {value}",
                              loc=locs[n.name], hint=f"every node needs its own {what}")
            seen[value] = n.name
