"""Every setting of cluster.yaml, described once.

This table drives the loader (what keys exist, how each value is read and how
profiles merge it), the JSON Schema shipped for editors, `wwstatic show` and the
reference docs. It is also the only place that says a setting's default and
choices: the dataclasses (types.py), the loader and the Warewulf importer take
them from here. To add a setting, add a `Field` here and read it in load.py,
images.py or checks.py.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from toolchain.model.grammar import RULES, Grammar


class DhcpBackend(StrEnum):
    """The DHCP servers wwstatic writes a configuration for (toolchain/dhcp/)."""
    ISC = "isc"
    DNSMASQ = "dnsmasq"
    KEA = "kea"


class Kind(StrEnum):
    STR = "str"
    NAME = "name"        # letters, digits, . _ -
    PATH = "path"        # absolute path
    INT = "int"
    BOOL = "bool"
    IPV4 = "ipv4"
    NETMASK = "netmask"
    MAC = "mac"
    CHOICE = "choice"
    LIST = "list"        # list of strings; merges by appending, `~item` removes
    TAGS = "tags"        # map of string to string; merges key by key
    FREE = "free"        # any YAML; maps merge recursively, lists are replaced
    STRUCT = "struct"    # a fixed set of sub-fields; merges field by field
    DICT = "dict"        # named entries of a struct; merges entry by entry
    ITEMS = "items"      # a list of structs (cluster level only, not merged)


@dataclass(frozen=True)
class Field:
    key: str
    kind: Kind
    help: str
    default: Any = None
    node_only: bool = False
    fields: tuple[Field, ...] = ()     # for STRUCT and DICT
    choices: tuple[str, ...] = ()      # for CHOICE, and what a LIST may hold
    increments: bool = False           # an IPv4 counted up over a hostlist key
    per_node: bool = False             # a list with one value per node of a hostlist key
    entry: str = "name"                # what a DICT's keys are, for messages
    maximum: int = 2**31
    grammar: Grammar | None = None     # what text a string (or each list item) may hold
    secret: bool = False               # served only to its node: templates reading it are per node

    def text_grammar(self) -> Grammar:
        """The grammar of this field's text: its own, else its kind's."""
        return self.grammar or _KIND_GRAMMAR.get(self.kind, Grammar.TEXT)

    def unset(self) -> Any:
        """What a setting left out reads as: the default, else the kind's empty value.

        Lists and maps are fresh copies, so no caller can change the table's.
        """
        value = self.default if self.default is not None else _EMPTY.get(self.kind)
        if isinstance(value, list | dict):
            return copy.copy(value)  # defaults hold no nested containers
        return value


# What a setting the table gives no default reads as. Addresses, MACs, choices
# and booleans have no empty value: they read as None, "not set".
_EMPTY: dict[Kind, Any] = {
    Kind.STR: "", Kind.NAME: "", Kind.PATH: "", Kind.INT: 0, Kind.LIST: [], Kind.TAGS: {},
    Kind.FREE: {}, Kind.STRUCT: {}, Kind.DICT: {}, Kind.ITEMS: [],
}


# The grammar of a string field that names none (grammar.py).
_KIND_GRAMMAR = {Kind.NAME: Grammar.NAME, Kind.PATH: Grammar.PATH}

# At most this many nodes in one cluster: a hostlist key is counted, before it is
# expanded, against what is left (a typo like n[1-9999999] stops at once).
MAX_NODES = 100_000


_BY_KEY: dict[int, tuple[tuple[Field, ...], dict[str, Field]]] = {}


def by_key(fields: tuple[Field, ...]) -> dict[str, Field]:
    # Asked for once per node and device: keep one dict per field table (they are constants).
    found = _BY_KEY.get(id(fields))
    if found is None or found[0] is not fields:
        found = _BY_KEY[id(fields)] = (fields, {f.key: f for f in fields})
    return found[1]


NETDEV = (
    Field("type", Kind.CHOICE, "kind of interface", "ethernet",
          choices=("ethernet", "infiniband", "bond", "vlan")),
    Field("device", Kind.NAME, "interface name on the node, e.g. eno1 or ib0", grammar=Grammar.IFNAME),
    Field("mac", Kind.MAC, "hardware address; for a hostlist key, a list with one per node "
          "(`null` for a discoverable node whose MAC is not known yet)", per_node=True),
    Field("ip", Kind.IPV4, "IPv4 address; for a hostlist key, the first node's, counted up",
          increments=True),
    Field("netmask", Kind.NETMASK, "IPv4 netmask (default: the cluster network's)"),
    Field("gateway", Kind.IPV4, "IPv4 gateway"),
    Field("mtu", Kind.INT, "MTU in bytes", maximum=65536),
    Field("primary", Kind.BOOL, "the device the node boots and is known by "
          "(default: the one named `default`, else the first by name)"),
    Field("onboot", Kind.BOOL, "bring the interface up at boot", True),
    Field("tags", Kind.TAGS, "free key/values for templates, e.g. DNS1, DNSSEARCH, route1"),
)

IPMI = (
    Field("ip", Kind.IPV4, "BMC IPv4 address; for a hostlist key, counted up", increments=True),
    Field("netmask", Kind.NETMASK, "BMC netmask"),
    Field("gateway", Kind.IPV4, "BMC gateway"),
    Field("user", Kind.STR, "BMC user name"),
    Field("password", Kind.STR, "BMC password (served only to its node)", secret=True),
    Field("interface", Kind.CHOICE, "ipmitool interface", "lanplus", choices=("lan", "lanplus")),
    Field("port", Kind.INT, "BMC UDP port", 623, maximum=65535),
    Field("write", Kind.BOOL, "let the node program its BMC's network and user at boot", False),
    Field("tags", Kind.TAGS, "free key/values, e.g. vlan"),
)

PARTITION = (
    Field("number", Kind.INT, "partition number", maximum=128),
    Field("size_mib", Kind.INT, "size in MiB (default: the rest of the disk)"),
    Field("start_mib", Kind.INT, "start in MiB"),
    Field("type_guid", Kind.STR, "GPT partition type GUID", grammar=Grammar.TOKEN),
    Field("guid", Kind.STR, "GPT partition GUID", grammar=Grammar.TOKEN),
    Field("wipe", Kind.BOOL, "wipe the partition entry", False),
    Field("create", Kind.BOOL, "create the partition if it does not exist", True),
    Field("resize", Kind.BOOL, "grow the partition", False),
)

DISK = (
    Field("wipe_table", Kind.BOOL, "wipe the partition table first", False),
    Field("partitions", Kind.DICT, "partitions by label", fields=PARTITION, entry="partition label"),
)

FILESYSTEM = (
    Field("format", Kind.CHOICE, "file system type",
          choices=("ext4", "ext3", "xfs", "btrfs", "vfat", "swap")),
    Field("path", Kind.PATH, "mount point (not for swap)"),
    Field("wipe", Kind.BOOL, "create the file system even if one exists", False),
    Field("label", Kind.STR, "file system label", grammar=Grammar.TOKEN),
    Field("uuid", Kind.STR, "file system UUID", grammar=Grammar.TOKEN),
    Field("options", Kind.LIST, "extra mkfs arguments", grammar=Grammar.TOKEN),
    Field("mount_options", Kind.STR, "mount options", grammar=Grammar.OPTIONS),
)

KERNEL = (
    Field("version", Kind.STR, "kernel version prefix to boot (default: the newest in the image)",
          grammar=Grammar.TOKEN),
    Field("args", Kind.LIST, "kernel command line arguments; `~arg` removes one set earlier",
          grammar=Grammar.TOKEN),
)

# The root file systems a node unpacks into RAM; any other root is a /dev/ device.
RAM_ROOTS = ("initramfs", "tmpfs")

NODE = (
    Field("profiles", Kind.LIST, "profiles merged in, in order; `~name` drops one",
          grammar=Grammar.NAME),
    Field("comment", Kind.STR, "free text"),
    Field("image", Kind.NAME, "the image (under `images:`) the node boots"),
    Field("kernel", Kind.STRUCT, "kernel selection and command line", fields=KERNEL),
    Field("init", Kind.PATH, "what wwinit executes when it is done", "/sbin/init"),
    Field("root", Kind.STR, "root file system: initramfs, tmpfs, or a device such as /dev/sda2",
          RAM_ROOTS[0], grammar=Grammar.TOKEN),
    Field("ipxe_template", Kind.NAME, "iPXE script template", "default"),
    Field("system_overlays", Kind.LIST, "overlays unpacked at boot, before init; `~name` removes one",
          grammar=Grammar.NAME),
    Field("runtime_overlays", Kind.LIST,
          "overlays unpacked at boot and refreshed by wwclient; `~name` removes one",
          grammar=Grammar.NAME),
    Field("network", Kind.DICT, "network devices by name", fields=NETDEV, entry="network name"),
    Field("ipmi", Kind.STRUCT, "the node's BMC", fields=IPMI),
    Field("tags", Kind.TAGS, "free key/values for templates"),
    Field("resources", Kind.FREE, "free-form data for templates (maps merge, lists are replaced)"),
    Field("disks", Kind.DICT, "disks by device, with their partitions", fields=DISK,
          entry="disk device"),
    Field("filesystems", Kind.DICT, "file systems by device", fields=FILESYSTEM, entry="device"),
    Field("standalone_iso", Kind.BOOL, "also build output/iso/<node>.iso, which boots the node with "
          "no server (kernel, image and overlays on the CD)", False),
    Field("discoverable", Kind.BOOL, "may be bound to an unknown MAC by `wwstatic discover "
          "--assign`; until then it needs no MAC (and gets no iPXE script or DHCP entry)",
          False, node_only=True),
)

HEAD = (
    Field("ip", Kind.IPV4, "the head's IPv4 address on the cluster network"),
    Field("network", Kind.STR, "the cluster network, e.g. 10.0.0.0/24"),
    Field("http", Kind.STR, "base URL the nodes fetch from (default http://<ip>)",
          grammar=Grammar.URL),
    Field("fqdn", Kind.STR, "the head's fully qualified name", grammar=Grammar.HOST),
    Field("access_log", Kind.PATH, "where nginx writes the access log that `wwstatic status` "
          "and `wwstatic discover` read", "/var/log/nginx/wwstatic-access.log"),
)

DHCP_RANGE = (
    Field("start", Kind.IPV4, "first address of the dynamic range"),
    Field("end", Kind.IPV4, "last address of the dynamic range"),
)
DHCP = (
    Field("backend", Kind.CHOICE, "the DHCP server the site runs; all three configs are built, "
          "the README's instructions follow this one", DhcpBackend.ISC,
          choices=tuple(b.value for b in DhcpBackend)),
    Field("interface", Kind.NAME, "the head's interface on the cluster network; dnsmasq and Kea "
          "listen there only (default: dnsmasq and Kea listen on every interface and answer "
          "only where the cluster network is)", grammar=Grammar.IFNAME),
    Field("dnsmasq_tftp", Kind.BOOL, "dnsmasq also serves output/tftp with its own TFTP server",
          False),
    Field("range", Kind.STRUCT, "dynamic range for machines not in cluster.yaml", fields=DHCP_RANGE),
    # Warewulf's 120 s lease expired while 12 GB images downloaded (its #1937).
    Field("lease_time", Kind.INT, "lease time in seconds (long enough for big images)", 3600),
)
NFS_EXPORT = (
    Field("path", Kind.PATH, "exported directory"),
    Field("options", Kind.STR, "export options", "rw,sync,no_subtree_check", grammar=Grammar.OPTIONS),
)
NFS = (
    Field("exports", Kind.ITEMS, "exported directories: a list of {path, options}", fields=NFS_EXPORT),
)
# The host key types overlay/hostkeys.py can generate (with ssh-keygen).
SSH_KEY_TYPES = ("ed25519", "ecdsa", "rsa")
SSH = (
    Field("key_types", Kind.LIST, "host key types to generate", list(SSH_KEY_TYPES),
          choices=SSH_KEY_TYPES),
    Field("authorized_keys", Kind.LIST,
          "public key lines put in root's authorized_keys on the nodes (ssh.authorized_keys overlay)"),
    Field("authorized_key_files", Kind.LIST,
          "files on the head (relative to the project, or absolute) whose keys are added too",
          grammar=Grammar.FILE),
)
WWCLIENT = (
    Field("interval", Kind.INT, "seconds between runtime overlay polls", 60, maximum=86400),
)
DEMO = (
    Field("kernel_package", Kind.NAME, "Debian package whose kernel the demo boots",
          "linux-image-cloud-amd64", grammar=Grammar.PACKAGE),
    Field("modules", Kind.LIST, "kernel modules (with dependencies) copied into the image",
          grammar=Grammar.NAME),
)
OCI = (
    Field("path", Kind.STR, "an OCI image layout directory or oci-archive tar "
          "(relative to cluster.yaml's directory)", grammar=Grammar.FILE),
    Field("ref", Kind.STR, "which image of the layout (its org.opencontainers.image.ref.name), "
          "when it holds several"),
)
DEBOOTSTRAP = (
    Field("suite", Kind.NAME, "Debian release, e.g. bookworm"),
    Field("variant", Kind.CHOICE, "debootstrap variant (`default`: the standard set)", "minbase",
          choices=("minbase", "buildd", "default")),
    Field("include", Kind.LIST, "packages added to the variant's, e.g. systemd-sysv, linux-image-amd64",
          grammar=Grammar.PACKAGE),
    Field("components", Kind.LIST, "archive components", ["main"], grammar=Grammar.NAME),
    Field("mirror", Kind.STR, "Debian mirror URL (default: the first Debian source of this "
          "machine's apt configuration)", grammar=Grammar.URL),
)
IMAGE_KERNEL = (
    Field("version", Kind.STR, "kernel version prefix (default: the newest non-debug kernel)",
          grammar=Grammar.TOKEN),
    Field("from", Kind.NAME, "take the kernel from this other image, and its modules as an extra "
          "initrd layer (for images without a kernel, e.g. containers)"),
)
IMAGE = (
    Field("demo", Kind.STRUCT, "build a small busybox image with a Debian kernel", fields=DEMO),
    Field("root", Kind.PATH, "use this root directory (a chroot) as the image"),
    Field("tarball", Kind.STR, "use this root file system tarball (.tar, .tar.gz, .tar.xz, .tar.zst; "
          "e.g. `docker export` output), relative to cluster.yaml's directory", grammar=Grammar.FILE),
    Field("oci", Kind.STRUCT, "use an OCI image (layers applied in order, whiteouts honoured)",
          fields=OCI),
    Field("debootstrap", Kind.STRUCT, "build a Debian image with debootstrap (needs root; the "
          "result is cached under ~/.cache/wwstatic)", fields=DEBOOTSTRAP),
    Field("kernel", Kind.STRUCT, "which kernel the image boots", fields=IMAGE_KERNEL),
    Field("compression", Kind.CHOICE, "compression of the image's initrd archives (zstd unpacks "
          "faster; kernels before 5.9 cannot read it)", "gzip", choices=("gzip", "zstd", "none")),
    Field("exclude", Kind.LIST, "glob patterns of image paths left out of the archive, e.g. /boot/*"),
)

TOP = (
    Field("head", Kind.STRUCT, "the provisioning server", fields=HEAD),
    Field("dhcp", Kind.STRUCT, "DHCP settings", fields=DHCP),
    Field("nfs", Kind.STRUCT, "NFS exports of the head", fields=NFS),
    Field("ssh", Kind.STRUCT, "SSH settings", fields=SSH),
    Field("wwclient", Kind.STRUCT, "runtime overlay client settings", fields=WWCLIENT),
    Field("images", Kind.DICT, "OS images by name", fields=IMAGE, entry="image name"),
    Field("profiles", Kind.DICT, "named groups of node settings", fields=NODE, entry="profile name"),
    Field("nodes", Kind.DICT, "nodes by name or hostlist (n[01-04])", fields=NODE, entry="node name"),
)


_FIELD_IN: dict[tuple[int, tuple[str, ...]], tuple[tuple[Field, ...], Field]] = {}


def secret_paths(fields: tuple[Field, ...] | None = None, prefix: str = "") -> tuple[str, ...]:
    """Dotted paths of the node settings marked secret (e.g. `ipmi.password`)."""
    out: list[str] = []
    for f in NODE if fields is None else fields:
        if f.secret:
            out.append(prefix + f.key)
        if f.kind is Kind.STRUCT:   # a DICT's entries are named by the user: no fixed path
            out += secret_paths(f.fields, f"{prefix}{f.key}.")
    return tuple(out)


def field_in(fields: tuple[Field, ...], keys: tuple[str, ...]) -> Field:
    """The field at `keys` below a table; named entries and list items are passed through.

    `field_in(TOP, ("nodes", "ipmi", "port"))` is the BMC port of any node.
    """
    # Asked for each default of each node: remembered per table, as by_key does.
    found = _FIELD_IN.get((id(fields), keys))
    if found is None or found[0] is not fields:
        found = _FIELD_IN[(id(fields), keys)] = (fields, _field_in(fields, keys))
    return found[1]


def _field_in(fields: tuple[Field, ...], keys: tuple[str, ...]) -> Field:
    f: Field | None = None
    for key in keys:
        if f is not None:
            fields = f.fields
        f = by_key(fields).get(key)
        if f is None:
            raise KeyError(".".join(keys))
    assert f is not None, "no keys"
    return f


def field_at(path: str) -> Field:
    """The field at a dotted path from the top of cluster.yaml, e.g. "nodes.ipmi.port"."""
    return field_in(TOP, tuple(path.split(".")))


def json_schema() -> dict[str, Any]:
    """A JSON Schema of cluster.yaml, for editors (yaml-language-server)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "wwstatic cluster.yaml",
        **_struct_schema(TOP),
    }


_SIMPLE: dict[Kind, dict[str, Any]] = {
    Kind.STR: {"type": "string"},
    Kind.NAME: {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]*$"},
    Kind.PATH: {"type": "string", "pattern": "^/"},
    Kind.INT: {"type": "integer", "minimum": 0},
    Kind.BOOL: {"type": "boolean"},
    Kind.IPV4: {"type": "string", "format": "ipv4"},
    Kind.NETMASK: {"type": "string", "format": "ipv4"},
    # Unicast: the first octet's lowest bit (the second hex digit's) is clear.
    Kind.MAC: {"type": "string", "pattern": "^[0-9a-fA-F][02468aceACE]([:-][0-9a-fA-F]{2}){5}$"},
    Kind.LIST: {"type": ["array", "string"], "items": {"type": "string"}},
    Kind.TAGS: {"type": "object", "additionalProperties": {"type": "string"}},
    Kind.FREE: {},
}


# The kinds whose value is text that a grammar (grammar.py) describes.
_TEXT_KINDS = (Kind.STR, Kind.NAME, Kind.PATH, Kind.LIST)


def _field_schema(f: Field) -> dict[str, Any]:
    if f.kind is Kind.STRUCT:
        out = _struct_schema(f.fields)
    elif f.kind is Kind.DICT:
        out = {"type": ["object", "null"], "additionalProperties": _struct_schema(f.fields)}
    elif f.kind is Kind.ITEMS:
        out = {"type": ["array", "null"], "items": _struct_schema(f.fields)}
    elif f.kind is Kind.CHOICE:
        out = {"enum": list(f.choices)}
    else:
        out = dict(_SIMPLE[f.kind])
        if f.kind is Kind.LIST and f.choices:
            out["items"] = {"enum": list(f.choices)}
        elif f.kind is Kind.LIST and (pattern := RULES[f.text_grammar()].pattern):
            # An item may be `~item`, which removes one added earlier.
            out["items"] = {"type": "string", "pattern": "^~?" + pattern.removeprefix("^")}
        elif f.kind in _TEXT_KINDS and (pattern := RULES[f.text_grammar()].pattern):
            out["pattern"] = pattern
        if f.kind is Kind.INT:
            out["maximum"] = f.maximum
    if f.per_node:
        out = {"anyOf": [out, {"type": "array", "items": {"anyOf": [out, {"type": "null"}]}}]}
    out["description"] = f.help
    if f.default is not None and f.kind not in (Kind.STRUCT, Kind.DICT):
        out["default"] = f.default
    return out


def _struct_schema(fields: tuple[Field, ...]) -> dict[str, Any]:
    return {
        "type": ["object", "null"],
        "additionalProperties": False,
        "properties": {f.key: _field_schema(f) for f in fields},
    }


def markdown() -> str:
    """The cluster.yaml reference, generated from this table (docs/cluster-yaml.md)."""
    lines = [
        "# cluster.yaml reference",
        "",
        "Generated from `toolchain/model/spec.py` by `wwstatic schema --markdown`; do not edit.",
        "Lists merge by appending (`~item` removes an item added earlier); maps merge key",
        "by key; for anything else the last profile wins and the node wins over all.",
        "",
    ]

    def walk(fields: tuple[Field, ...], prefix: str, depth: int) -> None:
        for f in fields:
            path = f"{prefix}{f.key}"
            kind = f.kind.value
            if f.kind is Kind.CHOICE:
                kind = " \\| ".join(f.choices)
            notes = []
            if f.default is not None and f.kind not in (Kind.STRUCT, Kind.DICT):
                notes.append(f"default `{f.default}`")
            if f.kind in _TEXT_KINDS and not f.choices:
                notes.append(RULES[f.text_grammar()].describe)
            if f.node_only:
                notes.append("nodes only")
            if f.increments:
                notes.append("counted up over a hostlist")
            if f.per_node:
                notes.append("a list, one per node, for a hostlist")
            extra = f" ({'; '.join(notes)})" if notes else ""
            lines.append(f"{'  ' * depth}- `{path}` — *{kind}* — {f.help}{extra}")
            if f.kind is Kind.DICT:
                walk(f.fields, f"{path}.<{f.entry}>.", depth + 1)
            elif f.kind is Kind.ITEMS:
                walk(f.fields, f"{path}[].", depth + 1)
            elif f.kind is Kind.STRUCT:
                walk(f.fields, f"{path}.", depth + 1)

    top = tuple(f for f in TOP if f.key not in ("profiles", "nodes"))
    lines += ["## Cluster settings", ""]
    walk(top, "", 0)
    lines += ["", "## Node and profile settings (`profiles.<name>.…`, `nodes.<name or hostlist>.…`)", ""]
    walk(NODE, "", 0)
    return "\n".join(lines) + "\n"
