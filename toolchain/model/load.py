"""The cluster model: cluster.yaml in, immutable resolved nodes out.

Reading follows the field table in spec.py (see reader.py); this module merges
each node's profiles and its own settings, fills in defaults, checks the whole
cluster (names, MACs and addresses unique across nodes and devices; images,
overlays and templates that exist) and reports every error of the file at once.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

from toolchain.errors import Loc, WWError, WWErrors
from toolchain.hostlist import HostlistError, count, expand
from toolchain.model import spec
from toolchain.model.checks import NodeChecks
from toolchain.model.grammar import Grammar, GrammarError, check, shown
from toolchain.model.images import read_images
from toolchain.model.reader import Reader, Tree, Val, flatten, get, instantiate, loc_at, merge, setting
from toolchain.model.spec import DHCP, HEAD, NFS_EXPORT, NODE, TOP, DhcpBackend
from toolchain.model.types import (
    Cluster,
    Dhcp,
    Export,
    Head,
    Image,
    Node,
)
from toolchain.model.values import as_map, as_name, as_str
from toolchain.model.yamlsrc import YMap, YNode, YScalar, load_file
from toolchain.project import IPXE_TEMPLATES, overlay_dirs


def known_overlays(project: Path) -> set[str]:
    return {p.parent.name for base in overlay_dirs(project)
            for p in base.glob("*/rootfs") if p.is_dir()}


def known_ipxe_templates() -> set[str]:
    return {p.name.removesuffix(".ipxe.j2") for p in IPXE_TEMPLATES.glob("*.ipxe.j2")}


# --- loading --------------------------------------------------------------------

def load_cluster(path: Path, keep_sources: bool = False) -> Cluster:
    """Read, validate and resolve cluster.yaml; raise WWErrors with every mistake."""
    return _Loader(path, keep_sources).load()


class _Loader:
    def __init__(self, path: Path, keep_sources: bool) -> None:
        self.path = path
        self.keep_sources = keep_sources
        self.r = Reader()
        self.file_loc = Loc(str(path), 1, 1)
        # Where each node's MACs and addresses are written, for the uniqueness
        # checks: (node, device or "ipmi", "mac" or "ip") -> the value's place.
        self.value_locs: dict[tuple[str, str, str], Loc] = {}

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
        images = read_images(r, self.path, ymap.get("images"))
        profiles = self.profiles(ymap.get("profiles"))
        nodes, locs, sources = self.nodes(ymap.get("nodes"), head, images, profiles)
        dhcp = self.dhcp(top.get("dhcp", {}), ymap.get("dhcp"), head, nodes, locs)
        if head is not None:
            self.check_unique(nodes, locs, head)
        if r.errors:
            raise WWErrors(r.errors)
        assert head is not None
        exports = tuple(Export(get(e, "path"), setting(NFS_EXPORT, e, "options"))
                        for e in setting(TOP, top, "nfs", "exports"))
        return Cluster(
            str(self.path), head, images, tuple(nodes), dhcp=dhcp, nfs_exports=exports,
            ssh_key_types=tuple(setting(TOP, top, "ssh", "key_types")),
            ssh_authorized_keys=tuple(setting(TOP, top, "ssh", "authorized_keys")),
            ssh_authorized_key_files=tuple(setting(TOP, top, "ssh", "authorized_key_files")),
            wwclient_interval=setting(TOP, top, "wwclient", "interval"),
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
        http = str(get(tree, "http") or f"http://{ip}").rstrip("/")
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
                       loc_at(tree, "http", default=raw.loc),
                       "iPXE fetches over plain HTTP; write e.g. http://10.0.0.1 or http://10.0.0.1:8080")
            return None
        return Head(ip, net, http, host, port, setting(HEAD, tree, "fqdn"),
                    setting(HEAD, tree, "access_log"))

    def dhcp(self, tree: Tree, raw: YNode | None, head: Head | None, nodes: list[Node],
             locs: dict[str, Loc]) -> Dhcp:
        settings = Dhcp(lease_time=setting(DHCP, tree, "lease_time"),
                        backend=DhcpBackend(setting(DHCP, tree, "backend")),
                        interface=setting(DHCP, tree, "interface"),
                        dnsmasq_tftp=setting(DHCP, tree, "dnsmasq_tftp"))
        start, end = get(tree, "range", "start"), get(tree, "range", "end")
        if "range" in tree and (start is None or end is None):
            ranges = [v for k, v in raw.items if k.text == "range"] if isinstance(raw, YMap) else []
            if ranges and isinstance(ranges[0], YMap) and not {"start", "end"} <= set(ranges[0].keys()):
                self.error("dhcp range needs both `start` and `end`", ranges[0].loc,
                           "write range: {start: 10.0.0.200, end: 10.0.0.250}")
            return settings
        if start is not None and head is not None and start <= head.ip <= end:
            self.error(f"dhcp range {start}-{end} holds the head's own address {head.ip}",
                       loc_at(tree, "range", "start", default=self.file_loc),
                       "start the range after the head's address or end it before")
        if start is None or head is None:
            return settings
        for key, ip in (("start", start), ("end", end)):
            if ip not in head.network:
                self.error(f"dhcp range {key} {ip} is outside the cluster network {head.network}",
                           loc_at(tree, "range", key, default=self.file_loc),
                           "choose addresses of the cluster network")
        if end < start:
            self.error(f"dhcp range ends ({end}) before it starts ({start})",
                       loc_at(tree, "range", "end", default=self.file_loc), "swap start and end")
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
        checks = NodeChecks(known_overlays(project), known_ipxe_templates(), images)
        folded: dict[str, str] = {}   # lower case -> name: host names ignore case
        total = 0
        for key, value in ymap.items if ymap else ():
            if self.r.guard(as_str, key, "node name") is None:
                continue
            try:
                size = count(key.text)
            except HostlistError as exc:
                self.error(f"node key {shown(key.text)} is not a valid hostlist: {exc}", key.loc,
                           "write a name (n01) or a hostlist (n[01-04], r[1-2]n[01-32])")
                continue
            total += size
            if total > spec.MAX_NODES:
                # Counted, not expanded: a typo of one digit too many stops here at once.
                self.error(f"node key {shown(key.text)} brings the cluster to {total} nodes, "
                           f"more than {spec.MAX_NODES}", key.loc,
                           "check the hostlist's ranges; a cluster has at most "
                           f"{spec.MAX_NODES} nodes")
                break
            before, miscounted = len(self.r.errors), self.r.miscounted
            # Read before the names are built: a list of the wrong length is
            # reported without expanding the hostlist.
            own = self.r.struct(NODE, value, f"node {key.text}", "node", count=size)
            if self.r.miscounted > miscounted:
                continue
            names = expand(key.text)
            if not self.names_ok(names, key.text, key.loc, folded):
                continue
            # With a value already rejected, check the rest but do not also call it missing.
            partial = len(self.r.errors) > before
            plist = own.get("profiles")
            chosen = self.r.guard(self.expand_profiles, plist.value if plist else [], profiles,
                                  plist.loc if plist else key.loc)
            if chosen is None:
                continue
            base = chains.get(tuple(chosen))
            if base is None:
                base = self.r.guard(self.chain, chosen, profiles)
                if base is None:
                    continue
                chains[tuple(chosen)] = base
            # The lists are the same for every node of the key: check its `~x` once.
            if self.r.guard(merge, NODE, base, own) is None:
                continue
            for i, name in enumerate(names):
                if name in locs:
                    self.error(f"node {name} is defined twice (first at line {locs[name].line})",
                               key.loc, "each node name may appear in one node key only")
                    continue
                locs[name] = key.loc
                merged = merge(NODE, base, instantiate(NODE, own, i))
                built = checks.node(self.error, name, merged, tuple(chosen), head, key.loc, partial)
                if built is not None:
                    nodes.append(built)
                    for dev in built.network:
                        for what in ("mac", "ip"):
                            self.value_locs[name, dev, what] = loc_at(
                                merged, "network", dev, what, default=key.loc)
                    self.value_locs[name, "ipmi", "ip"] = loc_at(merged, "ipmi", "ip", default=key.loc)
                    if self.keep_sources:
                        sources[name] = flatten(merged)
        return nodes, locs, sources

    @staticmethod
    def chain(chosen: list[str], profiles: dict[str, Tree]) -> Tree:
        base: Tree = {}
        for p in chosen:
            base = merge(NODE, base, profiles[p])
        return base

    def names_ok(self, names: list[str], key: str, loc: Loc, folded: dict[str, str]) -> bool:
        for name in names:
            try:
                check(Grammar.HOST, name)
            except GrammarError as exc:
                what = f"node name {shown(name)}" + (f" (of {shown(key)})" if name != key else "")
                self.error(f"{what} {exc}", loc, exc.hint)
                return False
            other = folded.setdefault(name.lower(), name)
            if other != name:
                self.error(f"node {name} and node {other} differ only in case", loc,
                           "host names ignore case: rename one of them")
                return False
        return True

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
                                   self.value_locs.get((n.name, dev.name, "mac"), locs[n.name]),
                                   "every device needs its own MAC")
                    macs.setdefault(dev.mac, what)
                if dev.ip:
                    if dev.ip in ips:
                        self.error(f"{what} has IP {dev.ip}, already used by {ips[dev.ip]}",
                                   self.value_locs.get((n.name, dev.name, "ip"), locs[n.name]),
                                   "give every device its own address")
                    ips.setdefault(dev.ip, what)
            if n.ipmi.ip:
                # BMCs may share an address on distinct UDP ports (a chassis
                # manager, port forwarding, simulators), but not with a device.
                what = f"node {n.name} ipmi"
                at = f"{n.ipmi.ip}:{n.ipmi.port}"
                if n.ipmi.ip in ips and not ips[n.ipmi.ip].endswith(" ipmi"):
                    self.error(f"{what} has IP {n.ipmi.ip}, already used by {ips[n.ipmi.ip]}",
                               self.value_locs.get((n.name, "ipmi", "ip"), locs[n.name]),
                               "give every BMC its own address")
                elif at in bmcs:
                    self.error(f"{what} has address {at}, already used by {bmcs[at]}",
                               self.value_locs.get((n.name, "ipmi", "ip"), locs[n.name]),
                               "give every BMC its own address or port")
                ips.setdefault(n.ipmi.ip, what)
                bmcs.setdefault(at, what)


