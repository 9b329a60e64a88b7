"""Profiles and nodes of nodes.conf: Warewulf keys in, wwstatic settings out."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from toolchain.model import spec
from toolchain.model.values import NAME
from toolchain.model.warewulf.files import Settings, is_null, typed
from toolchain.model.warewulf.scalars import UNSET, Reader
from toolchain.model.yamlsrc import YNode, YScalar

# What wwstatic's cluster.yaml accepts: the field table's choices.
NETDEV_TYPES = spec.field_at("nodes.network.type").choices
IPMI_INTERFACES = spec.field_at("nodes.ipmi.interface").choices
FS_FORMATS = spec.field_at("nodes.filesystems.format").choices
# v4.6 split v4.5's `generic` runtime overlay into these (`wwctl upgrade nodes --replace-overlays`).
GENERIC_SPLIT = ("hosts", "ssh.authorized_keys", "syncuser")


def _maximum(path: str) -> int:
    return spec.field_at(path).maximum


class EntityReader(Reader):
    def __init__(self, known_overlays: set[str], known_templates: set[str]) -> None:
        super().__init__()
        self.overlays = known_overlays
        self.templates = known_templates
        self.images: dict[str, None] = {}  # ordered set of the image names referenced
        self.secrets = False

    def entity(self, where: str, raw: dict[str, YNode], is_node: bool) -> Settings:
        """One profile or node: Warewulf keys in, wwstatic settings out."""
        used: set[str] = set()

        def take(key: str) -> YNode | None:
            used.add(key)
            return raw.get(key)

        s: Settings = {}
        if profiles := self.strlist(take("profiles"), where, "profiles"):
            s["profiles"] = profiles
        if (comment := self.scalar(take("comment"), where, "comment")) is not None:
            s["comment"] = comment
        if (cluster := self.scalar(take("cluster name"), where, "cluster name")) is not None:
            self.note(where, f"cluster name `{cluster}` not carried over (wwstatic has no cluster groups)")
        image = self.scalar(take("image name"), where, "image name")
        container = self.scalar(take("container name"), where, "container name")
        if image and container and image != container:
            self.note(where, f"both `image name: {image}` and `container name: {container}`; "
                             "kept the image name")
        if image := image or container:
            if NAME.match(image):
                s["image"] = image
                self.images[image] = None
            else:
                self.note(where, f"image name `{image}` is not a valid wwstatic name (letters, digits, "
                                 ". _ -); not carried over")
        if kernel := self.kernel(where, take):
            s["kernel"] = kernel
        if (init := self.scalar(take("init"), where, "init")) is not None:
            if init.startswith("/"):
                s["init"] = init
            else:
                self.note(where, f"init `{init}` is not an absolute path; not carried over")
        if (root := self.scalar(take("root"), where, "root")) is not None:
            if root in spec.RAM_ROOTS or root.startswith("/dev/"):
                s["root"] = root
            else:
                self.note(where, f"root `{root}` is not supported by wwstatic (initramfs, tmpfs or a "
                                 "/dev/ device); not carried over")
        if (template := self.scalar(take("ipxe template"), where, "ipxe template")) is not None:
            if template in self.templates:
                s["ipxe_template"] = template
            else:
                self.note(where, f"iPXE template `{template}` does not exist in wwstatic "
                                 f"(it has {', '.join(sorted(self.templates)) or 'none'}); not carried over")
        for out_key, kind, keys in (("system_overlays", "system", ("system overlay", "wwinit")),
                                    ("runtime_overlays", "runtime", ("runtime overlay", "runtime"))):
            names: list[str] = []
            for key in keys:
                node = take(key)
                if key != keys[0] and node is not None and not is_null(node):
                    self.note(where, f"`{key}` is a wwctl flag name, not a nodes.conf key; "
                                     f"read as `{keys[0]}`")
                names += self.strlist(node, where, key)
            if names := self.overlay_list(where, kind, names):
                s[out_key] = names
        if network := self.network(where, take):
            s["network"] = network
        if ipmi := self.ipmi(where, take):
            s["ipmi"] = ipmi
        tags = self.tags(take("keys"), where, "keys")  # v4.5's old name for tags
        tags.update(self.tags(take("tags"), where, "tags"))
        if tags := self.tagsdel(tags, take("tagsdel"), where):
            s["tags"] = tags
        if resources := self.mapping(take("resources"), where, "resources"):
            s["resources"] = {k: typed(v) for k, v in resources.items()}
        if disks := self.disks(where, self.mapping(take("disks"), where, "disks")):
            s["disks"] = disks
        if filesystems := self.filesystems(where, self.mapping(take("filesystems"), where, "filesystems")):
            s["filesystems"] = filesystems
        if (disabled := self.scalar(take("disabled"), where, "disabled")) is not None:
            self.note(where, f"`disabled: {disabled}` (obsolete in Warewulf) not carried over")
        discoverable = self.boolean(take("discoverable"), where, "discoverable")
        asset = self.scalar(take("asset key"), where, "asset key")
        if is_node:
            if discoverable is not None:
                s["discoverable"] = discoverable
            if asset is not None:
                self.note(where, f"`asset key: {asset}` not carried over: static files cannot check "
                                 "it (see docs/migrating.md)")
        else:
            for key, value in (("discoverable", discoverable), ("asset key", asset)):
                if value is not None:
                    self.note(where, f"`{key}` is for nodes only (Warewulf ignores it in profiles); "
                                     "not carried over")
        self.unknown(raw, used, where)
        return s

    def overlay_list(self, where: str, kind: str, names: list[str]) -> list[str]:
        expanded: list[str] = []
        for item in names:
            neg = "~" if item.startswith("~") else ""
            if item.removeprefix("~") == "generic":
                self.note(where, f"{kind} overlay `{item}` (v4.5) was split in v4.6 into "
                                 f"{', '.join(GENERIC_SPLIT)}; read as those")
                expanded += [neg + n for n in GENERIC_SPLIT]
            else:
                expanded.append(item)
        kept = [n for n in expanded if n.removeprefix("~") in self.overlays]
        dropped = [n for n in expanded if n.removeprefix("~") not in self.overlays]
        if len(dropped) == 1:
            self.note(where, f"overlay {dropped[0]} does not exist in wwstatic; dropped from the "
                             f"{kind} overlays")
        elif dropped:
            self.note(where, f"overlays {', '.join(dropped)} do not exist in wwstatic; dropped from the "
                             f"{kind} overlays")
        return kept

    def kernel(self, where: str, take: Callable[[str], YNode | None]) -> Settings:
        nested = self.mapping(take("kernel"), where, "kernel")
        self.unknown(nested, {"version", "args", "override"}, where, "kernel.")
        version = self.scalar(nested.get("version"), where, "kernel.version")
        flat_version = self.scalar(take("kernel version"), where, "kernel version")
        args = self.strlist(nested.get("args"), where, "kernel.args", None)
        flat_args = self.strlist(take("kernel args"), where, "kernel args", None)
        for key, node in (("kernel.override", nested.get("override")),
                          ("kernel override", take("kernel override"))):
            if (override := self.scalar(node, where, key)) is not None:
                self.note(where, f"`{key}: {override}` not carried over: the kernel comes from the image "
                                 "(set kernel.version to choose one of the image's kernels)")
        out: Settings = {}
        if version or flat_version:
            out["version"] = version or flat_version
        if args or flat_args:
            out["args"] = args or flat_args
        return out

    def network(self, where: str, take: Callable[[str], YNode | None]) -> Settings:
        devs = self.mapping(take("network devices"), where, "network devices")
        out: Settings = {}
        flagged: list[str] = []
        for name, node in devs.items():
            dwhere = f"{where}, network {name}"
            raw = self.mapping(node, dwhere, "network devices." + name)
            dev, legacy_primary = self.netdev(dwhere, raw)
            out[name] = dev
            if legacy_primary:
                flagged.append(name)
        primary = self.scalar(take("primary network"), where, "primary network")
        if primary is None and flagged:
            primary = flagged[0]  # v4.5: `primary: true` / `default: true` on the device
        if primary is not None:
            out.setdefault(primary, {})["primary"] = True
        return out

    def netdev(self, where: str, raw: dict[str, YNode]) -> tuple[Settings, bool]:
        d: Settings = {}
        if (t := self.choice(raw.get("type"), where, "type", NETDEV_TYPES)) is not None:
            d["type"] = t
        if (device := self.scalar(raw.get("device"), where, "device")) is not None:
            d["device"] = device
        if (mac := self.mac(raw.get("hwaddr"), where, "hwaddr")) is not None:
            d["mac"] = mac
        ip = self.ipv4(raw.get("ipaddr"), where, "ipaddr")
        netmask = self.netmask(raw.get("netmask"), where, "netmask")
        if (cidr := self.scalar(raw.get("ipcidr"), where, "ipcidr")) is not None:
            try:
                iface = ipaddress.IPv4Interface(cidr)
                ip = ip or str(iface.ip)
                netmask = netmask or str(iface.netmask)
            except ValueError:
                self.note(where, f"`ipcidr: {cidr}` is not an IPv4 address/prefix; not carried over")
        if ip is not None:
            d["ip"] = ip
        if netmask is not None:
            d["netmask"] = netmask
        if (gateway := self.ipv4(raw.get("gateway"), where, "gateway")) is not None:
            d["gateway"] = gateway
        if (mtu := self.integer(raw.get("mtu"), where, "mtu", _maximum("nodes.network.mtu"))) is not None:
            d["mtu"] = mtu
        if (onboot := self.boolean(raw.get("onboot"), where, "onboot")) is not None:
            d["onboot"] = onboot
        if tags := self.tagsdel(self.tags(raw.get("tags"), where, "tags"), raw.get("tagsdel"), where):
            d["tags"] = tags
        legacy = bool(self.boolean(raw.get("primary"), where, "primary")) \
            | bool(self.boolean(raw.get("default"), where, "default"))
        for key in ("ipaddr6", "ip6addr", "prefixlen6", "gateway6", "prefix"):
            if (value := self.scalar(raw.get(key), where, key)) is not None:
                self.note(where, f"`{key}: {value}` not carried over (wwstatic is IPv4 only)")
        self.unknown(raw, {"type", "device", "hwaddr", "ipaddr", "netmask", "ipcidr", "gateway", "mtu",
                           "onboot", "tags", "primary", "default", "ipaddr6", "ip6addr", "prefixlen6",
                           "gateway6", "prefix", "tagsdel"}, where)
        return d, legacy

    def ipmi(self, where: str, take: Callable[[str], YNode | None]) -> Settings:
        nested = self.mapping(take("ipmi"), where, "ipmi")
        iwhere = f"{where}, ipmi"

        def get(key: str) -> tuple[YNode | None, str]:
            """The nested `ipmi: {key}` wins over the v4.5 flat `ipmi key`, as in `wwctl upgrade`."""
            flat = take(f"ipmi {key}")
            node = nested.get(key)
            if node is None or is_null(node) or (isinstance(node, YScalar)
                                                  and node.text.strip().lower() in UNSET):
                return flat, f"ipmi {key}"
            return node, key

        out: Settings = {}
        readers: tuple[tuple[str, str, Callable[[YNode | None, str, str], Any]], ...] = (
            ("ip", "ipaddr", self.ipv4), ("netmask", "netmask", self.netmask),
            ("gateway", "gateway", self.ipv4), ("user", "username", self.scalar),
            ("password", "password", self.scalar),
            ("interface", "interface",
             lambda n, w, k: self.choice(n, w, k, IPMI_INTERFACES)),
            ("port", "port", lambda n, w, k: self.integer(n, w, k, _maximum("nodes.ipmi.port"))),
            ("write", "write", self.boolean))
        for out_key, key, read in readers:
            node, shown = get(key)
            value = read(node, iwhere, shown)
            if value is not None:
                out[out_key] = value
        if tags := self.tagsdel(self.tags(nested.get("tags"), iwhere, "tags"), nested.get("tagsdel"), iwhere):
            out["tags"] = tags
        if "password" in out:
            self.secrets = True
        for key in ("escapechar", "template"):
            node, shown = get(key)
            if (value := self.scalar(node, iwhere, shown)) is not None:
                self.note(iwhere, f"`{shown}: {value}` not carried over (wwstatic has no "
                                  "power/console commands)")
        self.unknown(nested, {"ipaddr", "netmask", "gateway", "username", "password", "interface", "port",
                              "write", "tags", "escapechar", "template", "tagsdel"}, iwhere)
        return out

    def disks(self, where: str, raw: dict[str, YNode]) -> Settings:
        out: Settings = {}
        for device, node in raw.items():
            dwhere = f"{where}, disk {device}"
            d = self.mapping(node, dwhere, f"disks.{device}")
            disk: Settings = {}
            if (wipe := self.boolean(d.get("wipe_table"), dwhere, "wipe_table")) is not None:
                disk["wipe_table"] = wipe
            parts: Settings = {}
            for label, pnode in self.mapping(d.get("partitions"), dwhere, "partitions").items():
                pwhere = f"{dwhere}, partition {label}"
                p = self.mapping(pnode, pwhere, f"partitions.{label}")
                part: Settings = {}
                for key in ("number", "size_mib", "start_mib"):
                    maximum = _maximum(f"nodes.disks.partitions.{key}")
                    if (n := self.integer(p.get(key), pwhere, key, maximum)) is not None:
                        part[key] = n
                for key in ("type_guid", "guid"):
                    if (text := self.scalar(p.get(key), pwhere, key)) is not None:
                        part[key] = text
                for out_key, key in (("wipe", "wipe_partition_entry"), ("create", "should_exist"),
                                     ("resize", "resize")):
                    if (b := self.boolean(p.get(key), pwhere, key)) is not None:
                        part[out_key] = b
                self.unknown(p, {"number", "size_mib", "start_mib", "type_guid", "guid",
                                 "wipe_partition_entry", "should_exist", "resize"}, pwhere)
                parts[label] = part
            if parts:
                disk["partitions"] = parts
            self.unknown(d, {"wipe_table", "partitions"}, dwhere)
            out[device] = disk
        return out

    def filesystems(self, where: str, raw: dict[str, YNode]) -> Settings:
        out: Settings = {}
        for device, node in raw.items():
            fwhere = f"{where}, filesystem {device}"
            f = self.mapping(node, fwhere, f"filesystems.{device}")
            fs: Settings = {}
            fmt = self.choice(f.get("format"), fwhere, "format", FS_FORMATS)
            if fmt is not None:
                fs["format"] = fmt
            if (path := self.scalar(f.get("path"), fwhere, "path")) is not None:
                if path.startswith("/"):
                    fs["path"] = path
                elif fmt != "swap":  # Warewulf writes `path: swap` for swap; wwstatic needs none
                    self.note(fwhere, f"path `{path}` is not absolute; not carried over")
            if (wipe := self.boolean(f.get("wipe_filesystem"), fwhere, "wipe_filesystem")) is not None:
                fs["wipe"] = wipe
            for key in ("label", "uuid"):
                if (text := self.scalar(f.get(key), fwhere, key)) is not None:
                    fs[key] = text
            if options := self.strlist(f.get("options"), fwhere, "options", None):
                fs["options"] = options
            # v4.6+ has one string; v4.5 allowed a list.
            if mount := self.strlist(f.get("mount_options"), fwhere, "mount_options", "\0"):
                fs["mount_options"] = ",".join(mount)
            self.unknown(f, {"format", "path", "wipe_filesystem", "label", "uuid", "options",
                             "mount_options"}, fwhere)
            out[device] = fs
        return out
