"""Import a Warewulf v4 cluster: nodes.conf (and warewulf.conf) in, cluster.yaml out.

`wwstatic import-warewulf NODES_CONF [WAREWULF_CONF] [-o OUT]` reads Warewulf's
own files, v4.5 spellings (`container name`, `kernel args` as one string, flat
`ipmi username`, `kernel override`) as well as v4.6+ ones (`image name`,
`kernel.args` list), and writes a wwstatic cluster.yaml with the same profiles
and nodes. Whatever has no wwstatic counterpart (IPv6, `kernel override`,
overlays wwstatic does not have, unknown keys, ...) is left out and reported as
a note, never dropped silently.

Warewulf's files are Go-written YAML. Every scalar is read as its text (MACs such
as 08:00:27:39:46:70 are base-60 numbers to YAML 1.1), then converted by what the
key means: "9000" becomes an int for `mtu`, "true" a bool for `onboot`.
`resources` is free-form, so its values are typed the way Go's YAML reader
(YAML 1.2) types them.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from toolchain.errors import WWError
from toolchain.fsutil import write_atomic
from toolchain.model.load import known_ipxe_templates, known_overlays
from toolchain.model.reader import apply_list
from toolchain.model.yamlsrc import TYPE_NAMES, YMap, YNode, YScalar, YSeq, kind_of, load_text

Settings = dict[str, Any]

WAREWULF_CHROOTS = "/var/lib/warewulf/chroots"
DEFAULT_EXPORT_OPTIONS = "rw,sync,no_subtree_check"
DEFAULT_LEASE_TIME = 3600

# Values Warewulf uses for "not set" (`wwctl ... --field UNDEF`), compared lower-case.
_UNSET = frozenset({"", "undef", "unset", "--"})
_BOOL_UNSET = _UNSET | {"delete", "nil"}
_TRUE = frozenset({"true", "yes", "on", "1", "t", "y"})
_FALSE = frozenset({"false", "no", "off", "0", "f", "n"})
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}\Z")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
# What wwstatic's cluster.yaml accepts (toolchain/model/spec.py).
NETDEV_TYPES = ("ethernet", "infiniband", "bond", "vlan")
IPMI_INTERFACES = ("lan", "lanplus")
FS_FORMATS = ("ext4", "ext3", "xfs", "btrfs", "vfat", "swap")
# Keys only v4.5 (and older) nodes.conf files have; v4.6 rewrites them on `wwctl upgrade nodes`.
LEGACY_KEYS = frozenset({"container name", "kernel args", "kernel version", "kernel override", "keys",
                         "disabled", "ipmi username", "ipmi password", "ipmi ipaddr", "ipmi netmask",
                         "ipmi port", "ipmi gateway", "ipmi interface", "ipmi escapechar", "ipmi write"})
# Lists that v4.5 replaced (node over profile, last profile wins) and v4.6+/wwstatic append.
REPLACED_LISTS = ((("kernel", "args"), "kernel args"), (("system_overlays",), "system overlays"),
                  (("runtime_overlays",), "runtime overlays"))
# v4.6 split v4.5's `generic` runtime overlay into these (`wwctl upgrade nodes --replace-overlays`).
GENERIC_SPLIT = ("hosts", "ssh.authorized_keys", "syncuser")

# Canonical key order of the output, as in the cluster.yaml reference.
SETTINGS_ORDER = ("profiles", "comment", "image", "kernel", "init", "root", "ipxe_template",
                  "system_overlays", "runtime_overlays", "network", "ipmi", "tags", "resources",
                  "disks", "filesystems", "discoverable", "asset_key")
NETDEV_ORDER = ("type", "device", "mac", "ip", "netmask", "gateway", "mtu", "primary", "onboot", "tags")


@dataclass
class ImportResult:
    yaml_text: str                                   # a complete cluster.yaml
    notes: list[str] = field(default_factory=list)   # what could not be carried over, for a human
    secrets: bool = False                            # the text holds BMC passwords


def import_warewulf(nodes_conf: Path, warewulf_conf: Path | None, known_overlays: set[str],
                    known_ipxe_templates: set[str] | None = None) -> ImportResult:
    """Convert Warewulf's nodes.conf (and optionally warewulf.conf) to a wwstatic cluster.yaml.

    Overlays not in `known_overlays` and iPXE templates not in `known_ipxe_templates`
    (default: the ones wwstatic ships) are dropped with a note. Raises WWError for
    files that cannot be read or are not Warewulf configuration files.
    """
    if known_ipxe_templates is None:
        known_ipxe_templates = shipped_ipxe_templates()
    imp = _Importer(known_overlays, known_ipxe_templates)
    nodes_root = _load_map(nodes_conf, "nodes.conf")
    server_root = _load_map(warewulf_conf, "warewulf.conf") if warewulf_conf else None
    return imp.run(nodes_root, server_root, nodes_conf, warewulf_conf)


def find_overlays(project: Path | None = None) -> set[str]:
    """Names of the overlays wwstatic has: shipped ones and the project's own (./overlays)."""
    return known_overlays(Path.cwd() if project is None else project)


shipped_ipxe_templates = known_ipxe_templates


# --- reading the files -------------------------------------------------------------

def _load_map(path: Path, what: str) -> YMap:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WWError(f"{path} does not exist",
                      hint=f"give the path of Warewulf's {what} (usually /etc/warewulf/{what})") from None
    except IsADirectoryError:
        raise WWError(f"{path} is a directory, not a file",
                      hint=f"give the path of Warewulf's {what} itself") from None
    except PermissionError:
        raise WWError(f"{path} is not readable by this user",
                      hint=f"Warewulf keeps {what} readable by root only: run as root, "
                           "or copy it somewhere readable") from None
    except UnicodeDecodeError as exc:
        raise WWError(f"{path} is not UTF-8 text ({exc.reason})",
                      hint=f"is this really Warewulf's {what}?") from None
    except OSError as exc:
        raise WWError(f"cannot read {path}: {exc.strerror}",
                      hint="check the path and the permissions") from None
    try:
        root = load_text(text, str(path))
    except WWError as err:
        if err.hint:
            raise
        raise WWError(err.message, loc=err.loc, hint=f"{what} must be valid YAML") from None
    if not isinstance(root, YMap):
        raise WWError(f"{path} is not a Warewulf {what}: YAML reads it as {_kind(root)}, not a mapping",
                      loc=root.loc, hint=f"give the path of Warewulf's {what} (usually /etc/warewulf/{what})")
    return root


def _items(m: YMap) -> dict[str, YNode]:
    return {k.text: v for k, v in m.items}


def _kind(node: YNode) -> str:
    """What YAML reads `node` as, for a human: "a list", "a mapping", "a number", ..."""
    return TYPE_NAMES.get(kind_of(node), kind_of(node))


def _is_null(node: YNode) -> bool:
    return isinstance(node, YScalar) and node.kind == "null" and not node.quoted


_INT12 = re.compile(r"[-+]?[0-9]+\Z")
_OCT12 = re.compile(r"0o[0-7]+\Z")
_HEX12 = re.compile(r"0x[0-9a-fA-F]+\Z")
_FLOAT12 = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z")


def _typed(node: YNode) -> Any:
    """A free-form value typed like YAML 1.2 (core schema), which is how Go reads `resources`."""
    if isinstance(node, YMap):
        return {k.text: _typed(v) for k, v in node.items}
    if isinstance(node, YSeq):
        return [_typed(v) for v in node.items]
    text = node.text
    if node.quoted:
        return text
    if text in ("", "~", "null", "Null", "NULL"):
        return None
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    if _INT12.match(text):
        return int(text)
    if _OCT12.match(text):
        return int(text[2:], 8)
    if _HEX12.match(text):
        return int(text[2:], 16)
    if _FLOAT12.match(text):
        return float(text)
    return text  # YAML 1.1 reads more as non-strings (yes, 1:20, 2024-01-01); Go does not


# --- the importer ------------------------------------------------------------------

class _Mac(str):
    """A MAC address: always written in double quotes."""


class _Importer:
    def __init__(self, known_overlays: set[str], known_templates: set[str]) -> None:
        self.overlays = known_overlays
        self.templates = known_templates
        self.notes: list[str] = []
        self.images: dict[str, None] = {}  # ordered set of the image names referenced
        self.secrets = False

    def note(self, where: str, message: str) -> None:
        self.notes.append(f"{where}: {message}")

    # --- scalar readers: each returns None for unset or unusable values (with a note) ---
    def scalar(self, node: YNode | None, where: str, key: str, unset: frozenset[str] = _UNSET) -> str | None:
        if node is None or _is_null(node):
            return None
        if not isinstance(node, YScalar):
            self.note(where, f"`{key}` is {_kind(node)}, not a single value; not carried over")
            return None
        text = node.text.strip()
        return None if text.lower() in unset else text

    def boolean(self, node: YNode | None, where: str, key: str) -> bool | None:
        text = self.scalar(node, where, key, _BOOL_UNSET)
        if text is None:
            return None
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        self.note(where, f"`{key}: {text}` is not true or false; not carried over")
        return None

    def integer(self, node: YNode | None, where: str, key: str, maximum: int = 2**31) -> int | None:
        text = self.scalar(node, where, key)
        if text is None:
            return None
        if not text.isdigit() or int(text) > maximum:
            self.note(where, f"`{key}: {text}` is not a number from 0 to {maximum}; not carried over")
            return None
        return int(text)

    def ipv4(self, node: YNode | None, where: str, key: str) -> str | None:
        text = self.scalar(node, where, key)
        if text is None:
            return None
        try:
            return str(ipaddress.IPv4Address(text))
        except ValueError:
            self.note(where, f"`{key}: {text}` is not an IPv4 address; not carried over")
            return None

    def netmask(self, node: YNode | None, where: str, key: str) -> str | None:
        text = self.ipv4(node, where, key)
        if text is None:
            return None
        try:
            ipaddress.IPv4Network(f"0.0.0.0/{text}")
        except ValueError:
            self.note(where, f"`{key}: {text}` is not a netmask; not carried over")
            return None
        return text

    def mac(self, node: YNode | None, where: str, key: str) -> _Mac | None:
        text = self.scalar(node, where, key)
        if text is None:
            return None
        mac = text.lower().replace("-", ":")
        if not _MAC.match(mac):
            self.note(where, f"`{key}: {text}` is not a 6-byte MAC address (InfiniBand hardware "
                             "addresses are not used for booting); not carried over")
            return None
        return _Mac(mac)

    def choice(self, node: YNode | None, where: str, key: str, choices: tuple[str, ...]) -> str | None:
        text = self.scalar(node, where, key)
        if text is None:
            return None
        if text.lower() not in choices:
            self.note(where, f"`{key}: {text}` is not supported by wwstatic (it knows "
                             f"{', '.join(choices)}); not carried over")
            return None
        return text.lower()

    def strlist(self, node: YNode | None, where: str, key: str, sep: str | None = ",") -> list[str]:
        """A list of strings; a single string is split on `sep` (None: on white space)."""
        if node is None or _is_null(node):
            return []
        if isinstance(node, YScalar):
            parts = node.text.split(sep)
        elif isinstance(node, YSeq):
            parts = []
            for item in node.items:
                if isinstance(item, YScalar):
                    parts.append(item.text)
                else:
                    self.note(where, f"an item of `{key}` is {_kind(item)}, not a string; not carried over")
        else:
            self.note(where, f"`{key}` is a mapping, not a list; not carried over")
            return []
        return [p.strip() for p in parts if p.strip().lower() not in _UNSET]

    def tags(self, node: YNode | None, where: str, key: str) -> dict[str, str]:
        if node is None or _is_null(node):
            return {}
        if not isinstance(node, YMap):
            self.note(where, f"`{key}` is {_kind(node)}, not a mapping; not carried over")
            return {}
        out: dict[str, str] = {}
        for k, v in node.items:
            text = self.scalar(v, where, f"{key}.{k.text}")
            if text is not None:
                out[k.text] = text
        return out

    def tagsdel(self, tags: dict[str, str], node: YNode | None, where: str) -> dict[str, str]:
        """Apply a `tagsdel` list (a wwctl request that reached the file), as `wwctl upgrade` does."""
        gone = set(self.strlist(node, where, "tagsdel"))
        return {k: v for k, v in tags.items() if k not in gone}

    def mapping(self, node: YNode | None, where: str, key: str) -> dict[str, YNode]:
        if node is None or _is_null(node):
            return {}
        if not isinstance(node, YMap):
            self.note(where, f"`{key}` is {_kind(node)}, not a mapping; not carried over")
            return {}
        return _items(node)

    def unknown(self, raw: dict[str, YNode], used: set[str], where: str, prefix: str = "") -> None:
        for key, value in raw.items():
            if key not in used and not _is_null(value):
                self.note(where, f"unknown key `{prefix}{key}` not carried over")

    # --- nodes.conf ----------------------------------------------------------------
    def run(self, nodes_root: YMap, server_root: YMap | None, nodes_path: Path,
            server_path: Path | None) -> ImportResult:
        top = _items(nodes_root)
        if "nodes" not in top and "nodeprofiles" not in top:
            raise WWError(f"{nodes_path} is not a Warewulf v4 nodes.conf: it has neither `nodeprofiles` "
                          "nor `nodes`", loc=nodes_root.loc,
                          hint="give the path of Warewulf's nodes.conf (usually /etc/warewulf/nodes.conf)")
        self.unknown(top, {"nodes", "nodeprofiles", "WW_INTERNAL"}, "nodes.conf")
        server: Settings = {}
        chroots = WAREWULF_CHROOTS
        if server_root is not None:
            server, chroots = self.server(server_root)

        raw_profiles = {name: self.entry(v, name, "profile")
                        for name, v in self.entries(top.get("nodeprofiles"), "nodeprofiles").items()}
        raw_nodes = {name: self.entry(v, name, "node")
                     for name, v in self.entries(top.get("nodes"), "nodes").items()}
        legacy = "WW_INTERNAL" in top or any(_is_legacy(raw) for raw in [*raw_profiles.values(),
                                                                          *raw_nodes.values()])
        profiles = {name: self.entity(f"profile {name}", raw, False) for name, raw in raw_profiles.items()}
        nodes = {name: self.entity(f"node {name}", raw, True) for name, raw in raw_nodes.items()}
        for what, table in (("profile", profiles), ("node", nodes)):
            for name, s in table.items():
                for ref in s.get("profiles", []):
                    if ref.removeprefix("~") not in profiles:
                        self.note(f"{what} {name}", f"profile `{ref.removeprefix('~')}` is not defined "
                                                    "in nodes.conf; kept")
        for name, s in nodes.items():
            chain = self.chain(s, profiles)
            self.fix_primary(s, chain)
            if legacy:
                self.fix_replaced_lists(name, s, chain)
        if legacy:
            self.notes.append("nodes.conf is a v4.5 one: settings its profiles leave unset came from "
                              "Warewulf's built-in defaults (defaults.conf: kernel args, init, root, "
                              "system overlay wwinit, runtime overlay generic, ...); they are not added, "
                              "so check the profiles")
        if "head" not in server:
            server = {"head": self.guess_head(nodes, profiles), **server}
        if self.secrets:
            self.notes.append("BMC passwords (ipmi.password) were copied into the output: "
                              "keep it readable by root only, as Warewulf keeps nodes.conf")

        out: Settings = dict(server)
        if self.images:
            out["images"] = {name: {"root": f"{chroots}/{name}/rootfs"} for name in self.images}
        if profiles:
            out["profiles"] = {name: _ordered(s) for name, s in profiles.items()}
        if nodes:
            out["nodes"] = {name: _ordered(s) for name, s in nodes.items()}
        text = _header(nodes_path, server_path, self.notes) + _dump(out)
        return ImportResult(text, self.notes, self.secrets)

    def entries(self, node: YNode | None, key: str) -> dict[str, YNode]:
        if node is None or _is_null(node):
            return {}
        if not isinstance(node, YMap):
            raise WWError(f"nodes.conf: `{key}` is {_kind(node)}, not a mapping of names", loc=node.loc,
                          hint=f"`{key}:` holds one `name:` entry per "
                               f"{'profile' if key == 'nodeprofiles' else 'node'}")
        return _items(node)

    def entry(self, node: YNode, name: str, what: str) -> dict[str, YNode]:
        if _is_null(node):
            return {}
        if not isinstance(node, YMap):
            raise WWError(f"nodes.conf: {what} {name} is {_kind(node)}, not a mapping of settings",
                          loc=node.loc, hint=f"write the {what}'s settings as `key: value` lines below it")
        return _items(node)

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
            if _NAME.match(image):
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
            if root in ("initramfs", "tmpfs") or root.startswith("/dev/"):
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
                if key != keys[0] and node is not None and not _is_null(node):
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
            s["resources"] = {k: _typed(v) for k, v in resources.items()}
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
                s["asset_key"] = asset
                self.note(where, "asset key kept but not checked by static serving")
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
        if (mtu := self.integer(raw.get("mtu"), where, "mtu", 65536)) is not None:
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
            if node is None or _is_null(node) or (isinstance(node, YScalar)
                                                  and node.text.strip().lower() in _UNSET):
                return flat, f"ipmi {key}"
            return node, key

        out: Settings = {}
        readers: tuple[tuple[str, str, Callable[[YNode | None, str, str], Any]], ...] = (
            ("ip", "ipaddr", self.ipv4), ("netmask", "netmask", self.netmask),
            ("gateway", "gateway", self.ipv4), ("user", "username", self.scalar),
            ("password", "password", self.scalar),
            ("interface", "interface",
             lambda n, w, k: self.choice(n, w, k, IPMI_INTERFACES)),
            ("port", "port", lambda n, w, k: self.integer(n, w, k, 65535)),
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
                for key, maximum in (("number", 128), ("size_mib", 2**31), ("start_mib", 2**31)):
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

    # --- across profiles and nodes ---------------------------------------------------
    @staticmethod
    def chain(node: Settings, profiles: dict[str, Settings]) -> list[Settings]:
        """The node's profiles as Warewulf merges them (nested first, `~p` removes p), then the node."""
        order: list[str] = []
        seen: set[str] = set()
        dropped: set[str] = set()

        def visit(name: str) -> None:
            if name.startswith("~"):
                dropped.add(name[1:])
                return
            if name in seen or name not in profiles:
                return
            seen.add(name)
            for sub in profiles[name].get("profiles", []):
                visit(sub)
            order.append(name)

        for p in node.get("profiles", []):
            visit(p)
        return [profiles[p] for p in order if p not in dropped] + [node]

    @staticmethod
    def merged_network(chain: list[Settings]) -> tuple[dict[str, Settings], str | None]:
        """Network devices merged over the chain, and Warewulf's primary device for it."""
        devs: dict[str, Settings] = {}
        declared: str | None = None
        for s in chain:
            for name, dev in s.get("network", {}).items():
                devs.setdefault(name, {}).update(dev)
                if dev.get("primary") is True:
                    declared = name  # a later `primary network` wins, the node's over all
        if declared is not None and declared in devs and len(devs[declared]) > 1:
            return devs, declared
        real = sorted(n for n, d in devs.items() if set(d) - {"primary"})
        return devs, (real[0] if real else None)  # Warewulf: the first by name

    def fix_primary(self, node: Settings, chain: list[Settings]) -> None:
        """Mark the device Warewulf boots from so that wwstatic picks the same one.

        wwstatic takes the device marked primary, else `default`, else the first
        by name; Warewulf takes `primary network` (node over profiles), else the
        first by name. Where they would differ, the node gets explicit flags.
        """
        devs, want = self.merged_network(chain)
        if want is None:
            return
        marked = [n for n, d in devs.items() if d.get("primary") is True]
        if marked == [want]:
            return
        if not marked and ("default" if "default" in devs else min(devs)) == want:
            return
        network = node.setdefault("network", {})
        network.setdefault(want, {})["primary"] = True
        for name in marked:
            if name != want:
                network.setdefault(name, {})["primary"] = False

    def fix_replaced_lists(self, name: str, node: Settings, chain: list[Settings]) -> None:
        """Keep v4.5 list semantics: the node's list (else the last profile's) replaced the others.

        wwstatic appends profile lists, so where that gives another result the
        node's own list becomes `~item` removals of what the profiles add, then
        what is missing.
        """
        for path, label in REPLACED_LISTS:
            lists = [_get_list(s, path) for s in chain]
            want = next((lst for lst in reversed(lists) if lst), [])
            inherited: list[str] = []
            for lst in lists[:-1]:
                inherited = _apply_list(inherited, lst)
            if _apply_list(inherited, lists[-1]) == want:
                continue
            kept = [x for x in inherited if x in want]
            if want[:len(kept)] == kept:
                new = [f"~{x}" for x in dict.fromkeys(inherited) if x not in want] + want[len(kept):]
            else:
                new = [f"~{x}" for x in dict.fromkeys(inherited)] + want
            _set_list(node, path, new)
            self.note(f"node {name}", f"in v4.5 the node's {label} (else its last profile's) replaced the "
                                      f"others; written as [{', '.join(new)}] so that wwstatic, which "
                                      f"appends, gives the same: [{', '.join(want)}]")

    def guess_head(self, nodes: dict[str, Settings], profiles: dict[str, Settings]) -> Settings:
        for name, s in nodes.items():
            devs, primary = self.merged_network(self.chain(s, profiles))
            dev = devs.get(primary or "", {})
            if "ip" not in dev:
                continue
            mask = dev.get("netmask")
            if mask is None:
                mask = "255.255.255.0"
                self.notes.append(f"head: node {name} has no netmask; assumed /24")
            net = ipaddress.IPv4Interface(f"{dev['ip']}/{mask}").network
            head = str(net.network_address + 1)
            self.notes.append(f"head: no warewulf.conf given; the cluster network {net} comes from node "
                              f"{name} (network {primary}), and head ip {head} is a placeholder: "
                              "check head.ip and head.http")
            return {"ip": head, "network": str(net), "http": f"http://{head}"}
        raise WWError("cannot tell the cluster network: no warewulf.conf given and no node has an IPv4 "
                      "address", hint="give Warewulf's warewulf.conf (usually /etc/warewulf/warewulf.conf) "
                                      "as the second argument")

    # --- warewulf.conf ---------------------------------------------------------------
    def server(self, root: YMap) -> tuple[Settings, str]:
        """head, dhcp, nfs, ssh and wwclient from warewulf.conf; and the chroot directory."""
        where = "warewulf.conf"
        top = _items(root)
        out: Settings = {}
        head = self.head(top, root)
        if head:
            out["head"] = head

        ww = self.mapping(top.get("warewulf"), where, "warewulf")
        interval = self.integer(ww.get("update interval"), where, "warewulf.update interval", 86400)
        for key, message in (
                ("secure", "runtime overlays only to privileged ports is not enforced by wwstatic"),
                ("tls", "wwstatic serves plain HTTP"),
                ("grubboot", "wwstatic boots with iPXE only")):
            if self.boolean(ww.get(key), where, f"warewulf.{key}"):
                self.note(where, f"`warewulf.{key}: true` not carried over: {message}")
        self.unknown(ww, {"update interval", "secure", "tls", "grubboot", "port", "tls port",
                          "secure files", "autobuild overlays", "host overlay", "syslog", "datastore",
                          "systemd name"}, where, "warewulf.")

        dhcp = self.mapping(top.get("dhcp"), where, "dhcp")
        start = self.ipv4(dhcp.get("range start"), where, "dhcp.range start")
        end = self.ipv4(dhcp.get("range end"), where, "dhcp.range end")
        if self.boolean(dhcp.get("enabled"), where, "dhcp.enabled") is False:
            self.note(where, "`dhcp.enabled: false`: wwstatic still writes output/etc/dhcpd.conf; "
                             "leave it unused if DHCP is managed elsewhere")
        if (start is None) != (end is None):
            self.note(where, "dhcp range has only one of `range start` and `range end`; not carried over")
        elif start is not None:
            out["dhcp"] = {"range": {"start": start, "end": end}, "lease_time": DEFAULT_LEASE_TIME}
        for key in ("range6 start", "range6 end", "range6"):
            if dhcp.get(key) is not None and not _is_null(dhcp[key]):
                self.note(where, f"`dhcp.{key}` not carried over (wwstatic is IPv4 only)")
        self.unknown(dhcp, {"enabled", "range start", "range end", "range6 start", "range6 end", "range6",
                            "template", "systemd name"}, where, "dhcp.")

        if exports := self.exports(self.mapping(top.get("nfs"), where, "nfs")):
            out["nfs"] = {"exports": exports}

        ssh = self.mapping(top.get("ssh"), where, "ssh")
        if key_types := self.strlist(ssh.get("key types"), where, "ssh.key types"):
            out["ssh"] = {"key_types": key_types}
        self.unknown(ssh, {"key types"}, where, "ssh.")
        if interval is not None:
            out["wwclient"] = {"interval": interval}

        api = self.mapping(top.get("api"), where, "api")
        if self.boolean(api.get("enabled"), where, "api.enabled"):
            self.note(where, "`api.enabled: true` not carried over: wwstatic has no REST API")
        for key in ("ipaddr6", "prefixlen6"):
            if (value := self.scalar(top.get(key), where, key)) is not None:
                self.note(where, f"`{key}: {value}` not carried over (wwstatic is IPv4 only)")
        paths = self.mapping(top.get("paths"), where, "paths")
        chroots = self.scalar(paths.get("wwchrootdir"), where, "paths.wwchrootdir") or WAREWULF_CHROOTS
        self.unknown(top, {"WW_INTERNAL", "comment", "ipaddr", "netmask", "network", "fqdn", "ipaddr6",
                           "prefixlen6", "warewulf", "dhcp", "tftp", "nfs", "ssh", "image mounts",
                           "container mounts", "wwclient", "api", "paths"}, where)
        return out, chroots.rstrip("/")

    def head(self, top: dict[str, YNode], root: YMap) -> Settings:
        where = "warewulf.conf"
        ipaddr = self.scalar(top.get("ipaddr"), where, "ipaddr")
        if ipaddr is None:
            self.note(where, "no `ipaddr` (Warewulf detects it); head derived from the nodes instead")
            return {}
        netmask = self.scalar(top.get("netmask"), where, "netmask")
        network = self.scalar(top.get("network"), where, "network")
        if "/" not in ipaddr and netmask is None:
            netmask = "255.255.255.0"
            self.note(where, "no `netmask`; assumed /24: check head.network")
        spec = ipaddr if "/" in ipaddr else f"{ipaddr}/{netmask}"
        try:
            iface = ipaddress.IPv4Interface(spec)
        except ValueError:
            node = top["ipaddr"]
            raise WWError(f"warewulf.conf: `ipaddr: {ipaddr}` with `netmask: {netmask}` is not an IPv4 "
                          "address and netmask", loc=node.loc,
                          hint="fix ipaddr/netmask in warewulf.conf, or leave warewulf.conf out to derive "
                               "the head from the nodes") from None
        if network is not None and network.split("/")[0] != str(iface.network.network_address):
            self.note(where, f"`network: {network}` does not match ipaddr/netmask; used {iface.network}")
        head: Settings = {"ip": str(iface.ip), "network": str(iface.network), "http": f"http://{iface.ip}"}
        if (fqdn := self.scalar(top.get("fqdn"), where, "fqdn")) is not None:
            head["fqdn"] = fqdn
        return head

    def exports(self, nfs: dict[str, YNode]) -> list[Settings]:
        where = "warewulf.conf"
        self.unknown(nfs, {"enabled", "export paths", "exports", "systemd name"}, where, "nfs.")
        if self.boolean(nfs.get("enabled"), where, "nfs.enabled") is False:
            if nfs.get("export paths") is not None:
                self.note(where, "`nfs.enabled: false`: the NFS exports are not carried over")
            return []
        out: list[Settings] = [{"path": p, "options": DEFAULT_EXPORT_OPTIONS}
                               for p in self.strlist(nfs.get("exports"), where, "nfs.exports")]
        node = nfs.get("export paths")
        items = node.items if isinstance(node, YSeq) else ()
        if node is not None and not _is_null(node) and not isinstance(node, YSeq):
            self.note(where, "`nfs.export paths` is not a list; not carried over")
        for item in items:
            e = self.mapping(item, where, "nfs.export paths[]")
            path = self.scalar(e.get("path"), where, "nfs.export paths[].path")
            if path is None:
                if e:
                    self.note(where, "an NFS export without `path` not carried over")
                continue
            ewhere = f"warewulf.conf, nfs export {path}"
            options = self.scalar(e.get("export options"), ewhere, "export options")
            out.append({"path": path, "options": options or DEFAULT_EXPORT_OPTIONS})
            if self.boolean(e.get("mount"), ewhere, "mount"):
                mount_opts = self.scalar(e.get("mount options"), ewhere, "mount options")
                self.note(ewhere, "`mount: true` (v4.5) not carried over: nodes mount what a profile's "
                                  f"resources.fstab lists (add {{spec: 'warewulf:{path}', file: {path}, "
                                  f"vfstype: nfs, mntops: {mount_opts or 'defaults'}}})")
            self.unknown(e, {"path", "export options", "mount options", "mount"}, ewhere)
        return out


def _is_legacy(raw: dict[str, YNode]) -> bool:
    if LEGACY_KEYS & raw.keys():
        return True
    kernel = raw.get("kernel")
    if isinstance(kernel, YMap):
        k = _items(kernel)
        return "override" in k or (isinstance(k.get("args"), YScalar) and not _is_null(k["args"]))
    return False


# wwstatic's own list merge, to predict what a node's lists resolve to.
_apply_list = apply_list


def _get_list(s: Settings, path: tuple[str, ...]) -> list[str]:
    for key in path[:-1]:
        s = s.get(key, {})
    return list(s.get(path[-1], []))


def _set_list(s: Settings, path: tuple[str, ...], value: list[str]) -> None:
    for key in path[:-1]:
        s = s.setdefault(key, {})
    s[path[-1]] = value


# --- writing cluster.yaml ----------------------------------------------------------

def _ordered(s: Settings) -> Settings:
    out = {k: s[k] for k in SETTINGS_ORDER if k in s}
    if "network" in out:
        out["network"] = {name: {k: dev[k] for k in NETDEV_ORDER if k in dev}
                          for name, dev in out["network"].items()}
    return out


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)  # list items indented below their key


def _represent_mac(dumper: yaml.SafeDumper, data: _Mac) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(data), style='"')


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.SequenceNode:
    flow = bool(data) and all(isinstance(v, str | int | float | bool) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(_Mac, _represent_mac)
_Dumper.add_representer(list, _represent_list)


def _dump(data: Settings) -> str:
    """Block YAML, key order kept, one blank line between top-level sections."""
    return "\n".join(yaml.dump({k: v}, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                               allow_unicode=True, width=100)
                     for k, v in data.items())


def _header(nodes_conf: Path, warewulf_conf: Path | None, notes: list[str]) -> str:
    lines = [
        "# Imported from Warewulf by `wwstatic import-warewulf`:",
        f"#   nodes.conf:    {nodes_conf}",
        f"#   warewulf.conf: {warewulf_conf if warewulf_conf else '(none: head derived from the nodes)'}",
        "# Check it with `wwstatic check` before building.",
    ]
    if notes:
        lines.append("# Not carried over, or to check:")
        lines += ["#   - " + n.replace("\n", "\\n") for n in notes]
    return "\n".join(lines) + "\n\n"


# --- command line --------------------------------------------------------------------

def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `import-warewulf` to the `wwstatic` command."""
    p = subparsers.add_parser(
        "import-warewulf", help="convert Warewulf's nodes.conf (and warewulf.conf) to cluster.yaml",
        description="Convert a Warewulf v4 nodes.conf, and optionally warewulf.conf, into a wwstatic "
                    "cluster.yaml. What cannot be carried over is reported as notes on stderr.")
    p.add_argument("nodes_conf", metavar="NODES_CONF", help="Warewulf's nodes.conf")
    p.add_argument("warewulf_conf", metavar="WAREWULF_CONF", nargs="?",
                   help="Warewulf's warewulf.conf (head address, DHCP range, NFS exports, ...)")
    p.add_argument("-o", "--output", metavar="OUT", help="write cluster.yaml here (default: stdout)")
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    p.set_defaults(func=run_import)


def run_import(args: argparse.Namespace) -> int:
    out = Path(args.output) if args.output else None
    if out is not None and out.exists() and not args.force:
        raise WWError(f"{out} already exists", hint="add --force to overwrite it, or choose another -o file")
    result = import_warewulf(Path(args.nodes_conf),
                             Path(args.warewulf_conf) if args.warewulf_conf else None,
                             find_overlays())
    for note in result.notes:
        print(f"wwstatic: note: {note}", file=sys.stderr)
    if out is None:
        sys.stdout.write(result.yaml_text)
        return 0
    try:
        write_atomic(out, result.yaml_text, mode=0o600 if result.secrets else 0o644)
    except OSError as exc:
        raise WWError(f"cannot write {out}: {exc.strerror}",
                      hint="check that its directory exists and is writable") from None
    print(f"wwstatic: wrote {out}", file=sys.stderr)
    return 0
