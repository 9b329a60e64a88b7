"""warewulf.conf: the head, DHCP range, NFS exports, SSH key types and wwclient interval."""

from __future__ import annotations

import ipaddress

from toolchain.errors import WWError
from toolchain.model import spec
from toolchain.model.warewulf.files import Settings, as_items, is_null
from toolchain.model.warewulf.scalars import Reader
from toolchain.model.yamlsrc import YMap, YNode, YSeq

WAREWULF_CHROOTS = "/var/lib/warewulf/chroots"
# What cluster.yaml says when Warewulf's file does not: the field table's defaults.
DEFAULT_EXPORT_OPTIONS = spec.field_at("nfs.exports.options").default
DEFAULT_LEASE_TIME = spec.field_at("dhcp.lease_time").default


class ServerReader(Reader):
    def server(self, root: YMap) -> tuple[Settings, str]:
        """head, dhcp, nfs, ssh and wwclient from warewulf.conf; and the chroot directory."""
        where = "warewulf.conf"
        top = as_items(root)
        out: Settings = {}
        head = self.head(top, root)
        if head:
            out["head"] = head

        ww = self.mapping(top.get("warewulf"), where, "warewulf")
        interval = self.integer(ww.get("update interval"), where, "warewulf.update interval",
                                spec.field_at("wwclient.interval").maximum)
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
            if dhcp.get(key) is not None and not is_null(dhcp[key]):
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
        cidr = ipaddr if "/" in ipaddr else f"{ipaddr}/{netmask}"
        try:
            iface = ipaddress.IPv4Interface(cidr)
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
        if node is not None and not is_null(node) and not isinstance(node, YSeq):
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
