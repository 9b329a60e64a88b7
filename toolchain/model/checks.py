"""What one resolved node must be: its image, overlays, template, network devices and BMC."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from toolchain.errors import Loc
from toolchain.model.reader import Tree, get, loc_at, plain, setting
from toolchain.model.spec import IPMI, NETDEV, NODE, RAM_ROOTS
from toolchain.model.types import Head, Image, Ipmi, Kernel, NetDev, Node

# How a check reports a mistake: message, where, hint.
Report = Callable[[str, Loc | None, str], None]


@dataclass(frozen=True)
class NodeChecks:
    overlays: set[str]
    templates: set[str]
    images: dict[str, Image]

    def node(self, report: Report, name: str, t: Tree, chain: tuple[str, ...], head: Head | None,
             key_loc: Loc, partial: bool = False) -> Node | None:
        what = f"node {name}"

        def loc(*keys: str) -> Loc:
            return loc_at(t, *keys, default=key_loc)

        image = get(t, "image")
        if image is None and not partial:
            report(f"{what} has no `image`", key_loc, "add image: <name>, here or in a profile")
        elif image is not None and image not in self.images:
            report(f"image `{image}` is not defined", loc("image"),
                     "defined images: " + (", ".join(sorted(self.images)) or "none"))
        for kind in ("system_overlays", "runtime_overlays"):
            for ov in setting(NODE, t, kind):
                if ov not in self.overlays:
                    report(f"{what}: overlay `{ov}` does not exist", loc(kind),
                             f"create overlays/{ov}/rootfs/ or use one of: "
                             + ", ".join(sorted(self.overlays)))
        template = setting(NODE, t, "ipxe_template")
        if template not in self.templates:
            report(f"{what}: iPXE template `{template}` does not exist", loc("ipxe_template"),
                     "use one of: " + ", ".join(sorted(self.templates)))
        root = setting(NODE, t, "root")
        if root not in RAM_ROOTS and not (root.startswith("/dev/") and len(root) > 5):
            report(f"{what}: root `{root}` is not initramfs, tmpfs or a device", loc("root"),
                     "write initramfs (run from RAM), tmpfs, or a device such as /dev/sda2")

        discoverable = setting(NODE, t, "discoverable")
        network = self.network(report, what, t.get("network", {}), head, key_loc, partial, discoverable)
        ipmi_tree = t.get("ipmi", {})
        ipmi = Ipmi(ip=str(get(ipmi_tree, "ip") or ""),
                    netmask=get(ipmi_tree, "netmask") or "",
                    gateway=str(get(ipmi_tree, "gateway") or ""),
                    user=setting(IPMI, ipmi_tree, "user"),
                    password=setting(IPMI, ipmi_tree, "password"),
                    interface=setting(IPMI, ipmi_tree, "interface"),
                    port=setting(IPMI, ipmi_tree, "port"),
                    write=setting(IPMI, ipmi_tree, "write"),
                    tags={k: v.value for k, v in ipmi_tree.get("tags", {}).items()})
        if ipmi_tree.get("ip") is not None and ipmi_tree["ip"].value is None:
            report(f"{what}: ipmi ip counted past 255.255.255.255", loc("ipmi", "ip"),
                     "choose a lower first address")
        for path, fs in t.get("filesystems", {}).items():
            fmt = get(fs, "format")
            if fmt and fmt != "swap" and not get(fs, "path") and not partial:
                report(f"{what}: file system {path} ({fmt}) has no `path`",
                         loc_at(fs, "format", default=key_loc),
                         "add path: /mount/point")
        # A node with other errors is still returned (the cluster is not) so
        # that its MACs and addresses take part in the uniqueness checks.
        if network is None:
            return None
        primary = next(d.name for d in network.values() if d.primary)
        return Node(
            name=name, image=image, kernel=Kernel(setting(NODE, t, "kernel", "version"),
                                                  tuple(setting(NODE, t, "kernel", "args"))),
            init=setting(NODE, t, "init"), root=root, ipxe_template=template,
            system_overlays=tuple(setting(NODE, t, "system_overlays")),
            runtime_overlays=tuple(setting(NODE, t, "runtime_overlays")),
            network=network, primary_network=primary, ipmi=ipmi,
            tags={k: v.value for k, v in t.get("tags", {}).items()},
            resources=setting(NODE, t, "resources"),
            disks={d: _plain_struct(v) for d, v in t.get("disks", {}).items()},
            filesystems={d: _plain_struct(v) for d, v in t.get("filesystems", {}).items()},
            profiles=chain, comment=setting(NODE, t, "comment"),
            standalone_iso=setting(NODE, t, "standalone_iso"),
            discoverable=discoverable)

    def network(self, report: Report, what: str, devs: Tree, head: Head | None,
                key_loc: Loc, partial: bool, discoverable: bool = False) -> dict[str, NetDev] | None:
        if not devs:
            if partial:
                return None
            report(f"{what} has no network device", key_loc,
                     'add network: {default: {mac: "52:54:00:12:34:56", ip: 10.0.0.11}}')
            return None
        primaries = [n for n, d in devs.items() if get(d, "primary")]
        if len(primaries) > 1:
            report(f"{what} has several primary network devices: {', '.join(primaries)}",
                     loc_at(devs[primaries[1]], "primary", default=key_loc),
                     "mark only one device primary: true")
            return None
        # Without `primary: true`: `default`, else the first by name, but never
        # a device marked `primary: false`.
        allowed = sorted(n for n, d in devs.items() if get(d, "primary") is not False)
        if not primaries and not allowed:
            report(f"{what}: every network device is marked primary: false", key_loc,
                     "mark the device the node boots from primary: true")
            return None
        primary = primaries[0] if primaries else ("default" if "default" in allowed else allowed[0])
        out: dict[str, NetDev] = {}
        for name in sorted(devs):
            d = devs[name]
            dwhat = f"{what} network {name}"
            ip, mac = get(d, "ip"), get(d, "mac")
            if "ip" in d and ip is None:
                report(f"{dwhat}: ip counted past 255.255.255.255", loc_at(d, "ip", default=key_loc),
                         "choose a lower first address")
                continue
            netmask = get(d, "netmask")
            if netmask is None and ip is not None and head is not None and ip in head.network:
                netmask = str(head.network.netmask)
            if name == primary:
                # A discoverable node gets its MAC from `wwstatic discover --assign`.
                if not mac and not partial and not discoverable:
                    report(f"{dwhat} (the primary device) has no `mac`", key_loc,
                             'the boot chain knows a node by its MAC: add mac: "52:54:00:12:34:56", '
                             "or mark the node discoverable: true")
                if ip is None:
                    if not partial:
                        report(f"{dwhat} (the primary device) has no `ip`", key_loc,
                                 "add ip: <address in the cluster network>")
                elif head is not None and (ip not in head.network or ip in (
                        head.network.network_address, head.network.broadcast_address)):
                    report(f"{dwhat}: IP {ip} is outside the usable addresses of the cluster "
                             f"network {head.network}", loc_at(d, "ip", default=key_loc),
                             "the boot device must be on the head's network; for a hostlist, "
                             "choose a first IP that leaves room for every node")
                    continue
            if ip is not None and netmask is None and head is not None and not partial:
                report(f"{dwhat}: IP {ip} is outside the cluster network and has no netmask",
                         loc_at(d, "ip", default=key_loc), "add netmask: 255.255.255.0 (or the right one)")
                continue
            prefix = ipaddress.IPv4Network(f"0.0.0.0/{netmask}").prefixlen if netmask else 0
            gateway = get(d, "gateway")
            if gateway is not None and ip is not None:
                net = ipaddress.IPv4Network(f"{ip}/{prefix}", strict=False)
                if gateway not in net:
                    report(f"{dwhat}: gateway {gateway} is not in {net}",
                             loc_at(d, "gateway", default=key_loc), "fix the gateway or the netmask")
            out[name] = NetDev(
                name=name, type=setting(NETDEV, d, "type"), device=setting(NETDEV, d, "device"),
                mac=mac or "", ip=str(ip) if ip is not None else "", netmask=netmask or "",
                prefix=prefix, gateway=str(gateway) if gateway is not None else "",
                mtu=setting(NETDEV, d, "mtu"), primary=name == primary,
                onboot=setting(NETDEV, d, "onboot"),
                tags={k: v.value for k, v in d.get("tags", {}).items()})
        return out if len(out) == len(devs) else None


def _plain_struct(tree: Tree) -> dict[str, Any]:
    out = plain(tree)
    assert isinstance(out, dict)
    return out
