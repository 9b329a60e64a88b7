"""Tests of `wwstatic import-warewulf` (toolchain.model.warewulf).

The fixtures in tests/data/warewulf/ are Warewulf files as wwctl writes them: a
v4.6+ nodes.conf, a v4.5 one (legacy spellings), and a warewulf.conf of each era.
Each test imports them and checks the cluster.yaml it gets back field by field,
after reading it with yaml.safe_load, and the notes about what was left out.
Root-free and hermetic: anything written goes under tmp_path.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.project import REPO
from toolchain.cli import parser as cli_parser
from toolchain.errors import WWError
from toolchain.model.warewulf import (
    ImportResult,
    find_overlays,
    import_warewulf,
    run_import,
)
from toolchain.project import SHIPPED_OVERLAYS

DATA = REPO / "tests" / "data" / "warewulf"
V46 = DATA / "nodes-v4.6.conf"
V45 = DATA / "nodes-v4.5.conf"
WWCONF = DATA / "warewulf.conf"
WWCONF45 = DATA / "warewulf-v4.5.conf"
# What wwstatic ships (wwinit, hostname, hosts): the importer drops every other overlay.
SHIPPED = {p.parent.name for p in SHIPPED_OVERLAYS.glob("*/rootfs")}
# The overlay set the import tests assume, fixed so that shipping more overlays
# does not change what they expect.
BASE = {"wwinit", "wwclient", "hostname", "hosts"}


ASSET_NOTE = ("node n1: `asset key: A-0001` not carried over: static files cannot check it "
              "(see docs/migrating.md)")

def run(nodes: Path, server: Path | None = None, overlays: set[str] | None = None) -> tuple[
        dict[str, Any], ImportResult]:
    result = import_warewulf(nodes, server, BASE if overlays is None else overlays)
    data = yaml.safe_load(result.yaml_text)
    assert isinstance(data, dict)
    return data, result


def write(tmp_path: Path, text: str, name: str = "nodes.conf") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def notes_about(result: ImportResult, prefix: str) -> list[str]:
    return [n for n in result.notes if n.startswith(prefix)]


@pytest.fixture(scope="module")
def v46() -> tuple[dict[str, Any], ImportResult]:
    return run(V46, WWCONF)


@pytest.fixture(scope="module")
def v45() -> tuple[dict[str, Any], ImportResult]:
    return run(V45, WWCONF45)


# --- v4.6+ nodes.conf and warewulf.conf ------------------------------------------------

def test_top_level_sections_come_from_warewulf_conf(v46: tuple[dict[str, Any], ImportResult]) -> None:
    data, _ = v46
    assert list(data) == ["head", "dhcp", "nfs", "ssh", "wwclient", "images", "profiles", "nodes"]
    assert data["head"] == {"ip": "10.0.0.1", "network": "10.0.0.0/22", "http": "http://10.0.0.1",
                            "fqdn": "head.cluster.local"}
    assert data["dhcp"] == {"range": {"start": "10.0.1.1", "end": "10.0.1.255"}, "lease_time": 3600}
    assert data["nfs"] == {"exports": [{"path": "/home", "options": "rw,sync"},
                                       {"path": "/opt", "options": "rw,sync,no_subtree_check"}]}
    assert data["ssh"] == {"key_types": ["ed25519", "rsa"]}
    assert data["wwclient"] == {"interval": 120}
    assert data["images"] == {"rockylinux-9": {"root": "/var/lib/warewulf/chroots/rockylinux-9/rootfs"}}


def test_header_says_where_it_came_from(v46: tuple[dict[str, Any], ImportResult]) -> None:
    _, result = v46
    header = result.yaml_text.split("\n\n")[0].splitlines()
    assert all(line.startswith("#") for line in header)
    assert header[0] == "# Imported from Warewulf by `wwstatic import-warewulf`:"
    assert f"#   nodes.conf:    {V46}" in header
    assert f"#   warewulf.conf: {WWCONF}" in header
    # The notes are repeated in the file, so they survive a lost terminal.
    for note in result.notes:
        assert f"#   - {note}" in header


def test_default_profile(v46: tuple[dict[str, Any], ImportResult]) -> None:
    data, result = v46
    default = data["profiles"]["default"]
    assert list(default) == ["comment", "kernel", "init", "root", "ipxe_template", "system_overlays",
                             "runtime_overlays", "resources"]
    assert default["comment"] == "This profile is automatically included for each node"
    assert default["kernel"] == {"args": ["quiet", "crashkernel=no", "net.ifnames=1"]}
    assert default["init"] == "/sbin/init"
    assert default["root"] == "initramfs"
    assert default["ipxe_template"] == "default"
    # Only the overlays wwstatic has survive, in order.
    assert default["system_overlays"] == ["wwinit", "wwclient", "hostname"]
    assert default["runtime_overlays"] == ["hosts"]
    assert "ipmi" not in default  # it held only `template`, which has no counterpart
    # resources are copied with the types Go gives them: lists of maps, ints stay ints.
    assert default["resources"] == {"fstab": [
        {"spec": "warewulf:/home", "file": "/home", "vfstype": "nfs", "mntops": "defaults,nofail",
         "freq": 0, "passno": 0},
        {"spec": "warewulf:/opt", "file": "/opt", "vfstype": "nfs", "mntops": "defaults,noauto,nofail,ro"},
    ]}
    assert "profile default: overlays fstab, ssh.host_keys, NetworkManager do not exist in " \
           "wwstatic; dropped from the system overlays" in result.notes
    assert "profile default: overlay ssh.authorized_keys does not exist in wwstatic; dropped from the " \
           "runtime overlays" in result.notes
    assert "profile default, ipmi: `template: ipmitool.tmpl` not carried over (wwstatic has no " \
           "power/console commands)" in result.notes


def test_other_profiles(v46: tuple[dict[str, Any], ImportResult]) -> None:
    data, _ = v46
    compute = data["profiles"]["compute"]
    assert compute == {
        "profiles": ["default"],
        "image": "rockylinux-9",
        "network": {"default": {"type": "ethernet", "netmask": "255.255.252.0", "gateway": "10.0.0.1",
                                "tags": {"DNS1": "10.0.0.1", "DNSSEARCH": "cluster.local"}}},
        "tags": {"localtime": "Europe/Berlin"},
    }
    # `InfiniBand` is lower-cased, the MTU string "65520" becomes a number.
    assert data["profiles"]["ib"] == {"network": {"ib": {"type": "infiniband", "device": "ib0",
                                                         "netmask": "255.255.0.0", "mtu": 65520}}}


def test_node_scalars_kernel_and_overlays(v46: tuple[dict[str, Any], ImportResult]) -> None:
    data, _ = v46
    n1 = data["nodes"]["n1"]
    assert list(n1) == ["profiles", "comment", "kernel", "network", "ipmi", "tags", "resources", "disks",
                        "filesystems", "discoverable"]
    assert n1["profiles"] == ["compute", "ib"]
    assert n1["comment"] == "first node"
    # ~negations are kept: wwstatic merges lists the same way.
    assert n1["kernel"] == {"version": "5.14.0-427", "args": ["~quiet", "console=ttyS0,115200"]}
    # `~NetworkManager` negates an overlay wwstatic does not have: dropped; `UNDEF` means unset.
    assert "system_overlays" not in n1
    assert "runtime_overlays" not in n1
    assert n1["discoverable"] is False
    assert "asset_key" not in n1   # static files cannot check it: a note says so
    assert any("`asset key: A-0001` not carried over" in note for note in v46[1].notes)


def test_node_network_devices(v46: tuple[dict[str, Any], ImportResult]) -> None:
    data, result = v46
    net = data["nodes"]["n1"]["network"]
    assert list(net) == ["default", "ib", "bond0"]
    assert net["default"] == {"device": "eno1", "mac": "08:00:27:39:46:70", "ip": "10.0.0.11", "mtu": 9000,
                              "primary": True, "onboot": True}
    assert net["ib"] == {"mac": "e6:92:39:49:7b:03", "ip": "10.10.0.11"}  # MACs are lower-cased
    assert net["bond0"] == {"type": "bond", "device": "bond0", "ip": "192.168.50.11",
                            "netmask": "255.255.255.0", "onboot": False,
                            "tags": {"mode": "802.3ad", "miimon": "100"}}
    assert "node n1, network default: `ipaddr6: fd00::11` not carried over (wwstatic is IPv4 only)" \
        in result.notes


def test_macs_are_quoted_strings(v46: tuple[dict[str, Any], ImportResult]) -> None:
    data, result = v46
    # 52:54:00:12:34:56 is a base-60 integer to YAML 1.1 when unquoted (as Go writes it).
    assert data["nodes"]["n2"]["network"]["default"]["mac"] == "52:54:00:12:34:56"
    assert data["nodes"]["n3"]["network"]["default"]["mac"] == "52:54:00:12:34:57"  # was 52-54-00-...
    mac_lines = [line.strip() for line in result.yaml_text.splitlines() if line.strip().startswith("mac:")]
    assert len(mac_lines) == 5
    for line in mac_lines:
        assert line.startswith('mac: "') and line.endswith('"'), line
    for node in data["nodes"].values():
        for dev in node.get("network", {}).values():
            assert isinstance(dev.get("mac", ""), str)


def test_node_ipmi_tags_resources(v46: tuple[dict[str, Any], ImportResult]) -> None:
    data, result = v46
    n1 = data["nodes"]["n1"]
    # gateway: UNDEF is unset; port "623" is a number, write "true" a bool.
    assert n1["ipmi"] == {"ip": "10.1.0.11", "netmask": "255.255.0.0", "user": "admin", "password": "s3cret",
                          "interface": "lanplus", "port": 623, "write": True, "tags": {"vlan": "42"}}
    assert n1["tags"] == {"rack": "r01"}  # role: UNDEF dropped
    assert n1["resources"] == {
        "fstab": [{"spec": "/dev/disk/by-partlabel/scratch", "file": "/scratch", "vfstype": "btrfs"}],
        "gpus": 4,
        "slurm": {"partition": "batch", "features": ["fast", "yes"]},  # Go keeps `yes` a string
    }
    assert result.secrets
    assert "node n1, ipmi: `escapechar: ~` not carried over (wwstatic has no power/console commands)" \
        in result.notes
    assert any(n.startswith("BMC passwords (ipmi.password) were copied") for n in result.notes)


def test_node_disks_and_filesystems(v46: tuple[dict[str, Any], ImportResult]) -> None:
    data, _ = v46
    n1 = data["nodes"]["n1"]
    assert n1["disks"] == {"/dev/vda": {"wipe_table": True, "partitions": {
        "scratch": {"number": 1, "size_mib": 1024, "wipe": False, "create": True},
        "swap": {"number": 2, "start_mib": 1024, "type_guid": "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f",
                 "resize": False},
    }}}
    assert n1["filesystems"] == {
        "/dev/disk/by-partlabel/scratch": {"format": "btrfs", "path": "/scratch", "wipe": True,
                                           "label": "scratch", "options": ["-f"],
                                           "mount_options": "defaults,noatime"},
        "/dev/disk/by-partlabel/swap": {"format": "swap"},  # Warewulf's `path: swap` means none
    }


def test_unset_unknown_and_unsupported_values_are_noted(v46: tuple[dict[str, Any], ImportResult]) -> None:
    data, result = v46
    n2, n3 = data["nodes"]["n2"], data["nodes"]["n3"]
    assert "image" not in n2  # image name: UNDEF
    assert "frobnicate" not in n2
    assert n3["profiles"] == ["compute", "~default"]
    assert "ipxe_template" not in n3 and "root" not in n3
    assert notes_about(result, "node n2") == [
        "node n2: cluster name `rack1` not carried over (wwstatic has no cluster groups)",
        "node n2: unknown key `frobnicate` not carried over",
    ]
    assert notes_about(result, "node n3") == [
        "node n3: root `ramfs` is not supported by wwstatic (initramfs, tmpfs or a /dev/ device); "
        "not carried over",
        "node n3: iPXE template `dracut` does not exist in wwstatic (it has default); not carried over",
    ]
    assert ASSET_NOTE in result.notes
    assert "warewulf.conf: `api.enabled: true` not carried over: wwstatic has no REST API" in result.notes


def test_primary_network_follows_warewulf(v46: tuple[dict[str, Any], ImportResult]) -> None:
    data, _ = v46
    # n1 names its primary network; n2 has one device; n3 names none, so Warewulf boots the
    # first by name (`aaa`) where wwstatic would take `default`: the import says so explicitly.
    assert data["nodes"]["n1"]["network"]["default"]["primary"] is True
    assert "primary" not in data["nodes"]["n2"]["network"]["default"]
    assert data["nodes"]["n3"]["network"]["aaa"]["primary"] is True
    assert "primary" not in data["nodes"]["n3"]["network"]["default"]


def test_import_is_deterministic() -> None:
    first = import_warewulf(V46, WWCONF, SHIPPED)
    second = import_warewulf(V46, WWCONF, SHIPPED)
    assert first == second


def test_known_overlays_are_kept() -> None:
    data, result = run(V46, WWCONF, BASE | {"NetworkManager", "ssh.authorized_keys"})
    assert data["profiles"]["default"]["system_overlays"] == ["wwinit", "wwclient", "hostname",
                                                              "NetworkManager"]
    assert data["profiles"]["default"]["runtime_overlays"] == ["hosts", "ssh.authorized_keys"]
    assert data["nodes"]["n1"]["system_overlays"] == ["~NetworkManager"]
    assert not [n for n in result.notes if "NetworkManager" in n]


def test_imported_file_loads_as_a_cluster(tmp_path: Path) -> None:
    from toolchain.model.load import load_cluster

    out = tmp_path / "cluster.yaml"
    out.write_text(import_warewulf(V46, WWCONF, find_overlays(tmp_path)).yaml_text)
    cluster = load_cluster(out)
    assert [n.name for n in cluster.nodes] == ["n1", "n2", "n3"]
    n1 = cluster.node("n1")
    assert n1.network["default"].ip == "10.0.0.11"
    assert n1.primary_network == "default"
    assert cluster.node("n3").primary_network == "aaa"


# --- v4.5 nodes.conf -------------------------------------------------------------------

def test_v45_profile(v45: tuple[dict[str, Any], ImportResult]) -> None:
    data, result = v45
    default = data["profiles"]["default"]
    assert default["image"] == "rocky-8"  # container name
    assert default["kernel"] == {"args": ["quiet", "crashkernel=no", "vga=791", "net.naming-scheme=v238"]}
    assert default["system_overlays"] == ["wwinit"]
    # v4.5's `generic` became hosts, ssh.authorized_keys and syncuser; wwstatic has hosts.
    assert default["runtime_overlays"] == ["hosts"]
    assert default["network"] == {"default": {"netmask": "255.255.255.0", "onboot": True}}  # "yes"
    assert "profile default: runtime overlay `generic` (v4.5) was split in v4.6 into hosts, " \
           "ssh.authorized_keys, syncuser; read as those" in result.notes
    assert data["images"] == {"rocky-8": {"root": "/srv/warewulf/chroots/rocky-8/rootfs"},
                              "rocky-8-gpu": {"root": "/srv/warewulf/chroots/rocky-8-gpu/rootfs"}}


def test_v45_node_legacy_keys(v45: tuple[dict[str, Any], ImportResult]) -> None:
    data, result = v45
    n1 = data["nodes"]["n0001"]
    # Flat `ipmi ...` keys; `ipmi write: "yes"` is a bool.
    assert n1["ipmi"] == {"ip": "192.168.201.1", "user": "root", "password": "calvin", "write": True}
    assert n1["tags"] == {"legacy": "1"}  # from `keys`
    # `primary: "true"` on a device (v4.5) marks the primary network.
    assert n1["network"] == {
        "eth0": {"device": "eth0", "mac": "00:0c:29:23:8b:48", "ip": "192.168.200.11", "primary": True},
        "default": {"mac": "00:0c:29:23:8b:49", "ip": "192.168.200.111"},
    }
    n2 = data["nodes"]["n0002"]
    assert n2["image"] == "rocky-8-gpu"
    assert n2["kernel"] == {"version": "4.18.0-477"}
    # ipcidr fills ip and netmask.
    assert n2["network"] == {"default": {"mac": "00:0c:29:23:8b:4a", "ip": "192.168.200.12",
                                         "netmask": "255.255.255.0"}}
    assert "node n0001: `kernel override: 4.18.0-513.el8.x86_64` not carried over: the kernel comes from " \
           "the image (set kernel.version to choose one of the image's kernels)" in result.notes
    assert "node n0001, ipmi: `ipmi escapechar: &` not carried over (wwstatic has no power/console " \
           "commands)" in result.notes
    assert "node n0002: `disabled: false` (obsolete in Warewulf) not carried over" in result.notes


def test_v45_lists_replaced_profile_lists(v45: tuple[dict[str, Any], ImportResult]) -> None:
    """In v4.5 a node's kernel args/overlays replaced the profile's; wwstatic appends."""
    data, result = v45
    # The node's "quiet console=ttyS0" replaced the profile's four arguments.
    assert data["nodes"]["n0001"]["kernel"]["args"] == [
        "~crashkernel=no", "~vga=791", "~net.naming-scheme=v238", "console=ttyS0"]
    # "wwinit,hostname" (a comma-separated string) replaced the profile's [wwinit].
    assert data["nodes"]["n0002"]["system_overlays"] == ["hostname"]
    assert any(n.startswith("node n0001: in v4.5 the node's kernel args") for n in result.notes)
    assert any(n.startswith("nodes.conf is a v4.5 one") for n in result.notes)


def test_v45_lists_give_the_same_result_in_wwstatic(tmp_path: Path) -> None:
    from toolchain.model.load import load_cluster

    out = tmp_path / "cluster.yaml"
    out.write_text(import_warewulf(V45, WWCONF45, find_overlays(tmp_path)).yaml_text)
    cluster = load_cluster(out)
    assert cluster.node("n0001").kernel.args == ("quiet", "console=ttyS0")
    assert cluster.node("n0001").primary_network == "eth0"
    assert cluster.node("n0002").system_overlays == ("wwinit", "hostname")


def test_v45_warewulf_conf(v45: tuple[dict[str, Any], ImportResult]) -> None:
    data, result = v45
    assert data["head"] == {"ip": "192.168.200.1", "network": "192.168.200.0/24",
                            "http": "http://192.168.200.1"}  # from ipaddr 192.168.200.1/24
    assert data["dhcp"]["range"] == {"start": "192.168.200.50", "end": "192.168.200.99"}
    assert data["nfs"] == {"exports": [{"path": "/home", "options": "rw,sync"}]}
    assert data["wwclient"] == {"interval": 60}
    assert "ssh" not in data
    assert notes_about(result, "warewulf.conf") == [
        "warewulf.conf: `warewulf.secure: true` not carried over: runtime overlays only to privileged ports "
        "is not enforced by wwstatic",
        "warewulf.conf, nfs export /home: `mount: true` (v4.5) not carried over: nodes mount what a "
        "profile's resources.fstab lists (add {spec: 'warewulf:/home', file: /home, vfstype: nfs, "
        "mntops: defaults})",
    ]


def test_without_warewulf_conf_head_comes_from_the_first_node() -> None:
    data, result = run(V45)
    assert data["head"] == {"ip": "192.168.200.1", "network": "192.168.200.0/24",
                            "http": "http://192.168.200.1"}
    assert not {"dhcp", "nfs", "ssh", "wwclient"} & data.keys()
    assert "head: no warewulf.conf given; the cluster network 192.168.200.0/24 comes from node n0001 " \
           "(network eth0), and head ip 192.168.200.1 is a placeholder: check head.ip and head.http" \
           in result.notes
    assert "#   warewulf.conf: (none: head derived from the nodes)" in result.yaml_text
    # n0001's eth0 has no netmask anywhere: assumed /24, and said so.
    assert "head: node n0001 has no netmask; assumed /24" in result.notes


def test_head_netmask_from_profile() -> None:
    data, result = run(V46)
    assert data["head"] == {"ip": "10.0.0.1", "network": "10.0.0.0/22", "http": "http://10.0.0.1"}
    assert not any("assumed /24" in n for n in result.notes)


# --- more value handling, inline -------------------------------------------------------

def test_bad_values_are_dropped_with_notes(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        nodegroups: {}
        nodeprofiles:
          p:
            asset key: nope
            ipmi:
              interface: open
            tags: [a, b]
        nodes:
          n1:
            runtime: [hosts]
            wwinit: hostname
            tagsdel: [gone]
            tags: {keep: "1", gone: x}
            network devices:
              default:
                hwaddr: 80:00:00:48:fe:80:00:00:00:00:00:00:f4:52:14:03:00:7a:3b:f1
                ipaddr: 10.0.0.300
                netmask: 255.0.255.0
                mtu: big
                onboot: maybe
                type: wifi
                speed: fast
                ipaddr: 10.0.0.5
            filesystems:
              /dev/sda1:
                format: zfs
                path: data
        """)
    with pytest.raises(WWError, match="duplicate key 'ipaddr'"):
        import_warewulf(path, None, SHIPPED)
    text = path.read_text().replace("        ipaddr: 10.0.0.300\n", "")
    path.write_text(text.replace("ipaddr: 10.0.0.5", "ipaddr: 10.0.0.300"))
    with pytest.raises(WWError) as info:  # no usable IP anywhere and no warewulf.conf
        import_warewulf(path, None, SHIPPED)
    assert info.value.hint
    server = write(tmp_path, "ipaddr: 10.0.0.1/24\n", "warewulf.conf")
    data, result = run(path, server)
    assert data["nodes"]["n1"] == {"runtime_overlays": ["hosts"], "system_overlays": ["hostname"],
                                   "network": {"default": {}}, "tags": {"keep": "1"}, "filesystems":
                                   {"/dev/sda1": {}}}
    assert data["profiles"]["p"] == {}
    assert result.notes == [
        "nodes.conf: unknown key `nodegroups` not carried over",
        "profile p, ipmi: `interface: open` is not supported by wwstatic (it knows lan, lanplus); "
        "not carried over",
        "profile p: `tags` is a list, not a mapping; not carried over",
        "profile p: `asset key` is for nodes only (Warewulf ignores it in profiles); not carried over",
        "node n1: `wwinit` is a wwctl flag name, not a nodes.conf key; read as `system overlay`",
        "node n1: `runtime` is a wwctl flag name, not a nodes.conf key; read as `runtime overlay`",
        "node n1, network default: `type: wifi` is not supported by wwstatic (it knows ethernet, "
        "infiniband, bond, vlan); not carried over",
        "node n1, network default: `hwaddr: 80:00:00:48:fe:80:00:00:00:00:00:00:f4:52:14:03:00:7a:3b:f1` "
        "is not a 6-byte MAC address (InfiniBand hardware addresses are not used for booting); "
        "not carried over",
        "node n1, network default: `ipaddr: 10.0.0.300` is not an IPv4 address; not carried over",
        "node n1, network default: `netmask: 255.0.255.0` is not a netmask; not carried over",
        "node n1, network default: `mtu: big` is not a number from 0 to 65536; not carried over",
        "node n1, network default: `onboot: maybe` is not true or false; not carried over",
        "node n1, network default: unknown key `speed` not carried over",
        "node n1, filesystem /dev/sda1: `format: zfs` is not supported by wwstatic (it knows ext4, ext3, "
        "xfs, btrfs, vfat, swap); not carried over",
        "node n1, filesystem /dev/sda1: path `data` is not absolute; not carried over",
    ]


def test_node_primary_network_overrides_profile(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        nodeprofiles:
          p:
            primary network: a
            network devices:
              a: {netmask: 255.255.255.0}
        nodes:
          n1:
            profiles: [p]
            primary network: b
            network devices:
              a: {hwaddr: "52:54:00:00:00:01", ipaddr: 10.0.0.2}
              b: {hwaddr: "52:54:00:00:00:02", ipaddr: 10.0.0.3, netmask: 255.255.255.0}
        """)
    data, _ = run(path)
    assert data["profiles"]["p"]["network"] == {"a": {"netmask": "255.255.255.0", "primary": True}}
    # The node's choice wins, as in Warewulf: the profile's flag is turned off on the node.
    assert data["nodes"]["n1"]["network"]["a"]["primary"] is False
    assert data["nodes"]["n1"]["network"]["b"]["primary"] is True
    assert data["head"]["network"] == "10.0.0.0/24"


def test_mount_options_list_and_kernel_args_string(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        nodes:
          n1:
            kernel: {args: "quiet  console=ttyS0", override: vmlinuz-5}
            network devices:
              default: {hwaddr: "52:54:00:00:00:01", ipaddr: 10.0.0.2, netmask: 255.255.255.0}
            filesystems:
              /dev/sda1: {format: ext4, path: /data, mount_options: [defaults, noatime]}
        """)
    data, result = run(path)
    assert data["nodes"]["n1"]["kernel"] == {"args": ["quiet", "console=ttyS0"]}
    assert data["nodes"]["n1"]["filesystems"]["/dev/sda1"]["mount_options"] == "defaults,noatime"
    assert any(n.startswith("node n1: `kernel.override: vmlinuz-5` not carried over") for n in result.notes)


def test_undefined_profile_is_noted(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        nodes:
          n1:
            profiles: [missing]
            network devices:
              default: {hwaddr: "52:54:00:00:00:01", ipaddr: 10.0.0.2}
        """)
    data, result = run(path)
    assert data["nodes"]["n1"]["profiles"] == ["missing"]
    assert "node n1: profile `missing` is not defined in nodes.conf; kept" in result.notes


def test_find_overlays(tmp_path: Path) -> None:
    (tmp_path / "overlays" / "site" / "rootfs").mkdir(parents=True)
    (tmp_path / "overlays" / "empty").mkdir()
    assert find_overlays(tmp_path) == SHIPPED | {"site"}
    assert {"wwinit", "hostname", "hosts"} <= SHIPPED


# --- errors ------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "message"), [
    ("nodes: [a\n", "YAML syntax"),
    ("- a\n- b\n", "YAML reads it as a list, not a mapping"),
    ("just text\n", "YAML reads it as a string, not a mapping"),
    ("", "it has neither `nodeprofiles` nor `nodes`"),
    ("nodegroups: {}\n", "it has neither `nodeprofiles` nor `nodes`"),
    ("nodes: [n1]\n", "`nodes` is a list, not a mapping of names"),
    ("nodes:\n  n1: hello\n", "node n1 is a string, not a mapping of settings"),
    ("nodes:\n  n1: {}\n  n1: {}\n", "duplicate key 'n1'"),
])
def test_invalid_nodes_conf(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(WWError) as info:
        import_warewulf(path, None, SHIPPED)
    assert message in info.value.message
    assert info.value.hint


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(WWError) as info:
        import_warewulf(tmp_path / "nope.conf", None, SHIPPED)
    assert info.value.message == f"{tmp_path / 'nope.conf'} does not exist"
    assert "/etc/warewulf/nodes.conf" in info.value.hint
    with pytest.raises(WWError) as info:
        import_warewulf(tmp_path, None, SHIPPED)
    assert "is a directory" in info.value.message and info.value.hint
    with pytest.raises(WWError) as info:
        import_warewulf(V46, tmp_path / "warewulf.conf", SHIPPED)
    assert "warewulf.conf does not exist" in info.value.message
    assert "/etc/warewulf/warewulf.conf" in info.value.hint
    binary = tmp_path / "binary.conf"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(WWError) as info:
        import_warewulf(binary, None, SHIPPED)
    assert "not UTF-8" in info.value.message and info.value.hint
    if os.geteuid() != 0:  # root reads anything
        locked = write(tmp_path, "nodes: {}\n", "locked.conf")
        locked.chmod(0)
        with pytest.raises(WWError) as info:
            import_warewulf(locked, None, SHIPPED)
        assert "not readable" in info.value.message and info.value.hint


def test_invalid_warewulf_conf(tmp_path: Path) -> None:
    bad = write(tmp_path, "ipaddr: 10.0.0.999\nnetmask: 255.255.255.0\n", "warewulf.conf")
    with pytest.raises(WWError) as info:
        import_warewulf(V46, bad, SHIPPED)
    assert "`ipaddr: 10.0.0.999`" in info.value.message and info.value.hint
    assert info.value.loc is not None and info.value.loc.line == 1
    listed = write(tmp_path, "- ipaddr: 10.0.0.1\n", "warewulf.conf")
    with pytest.raises(WWError, match=r"not a Warewulf warewulf\.conf"):
        import_warewulf(V46, listed, SHIPPED)


# --- command line ------------------------------------------------------------------------

def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "toolchain.cli", "import-warewulf", *args], cwd=REPO,
                          capture_output=True, text=True, check=False)


def test_cli_prints_yaml_and_notes() -> None:
    done = cli(str(V46), str(WWCONF))
    assert done.returncode == 0, done.stderr
    # REPO's ./overlays (motd) is known too; NetworkManager & co are not.
    expected = import_warewulf(V46, WWCONF, find_overlays(REPO))
    assert done.stdout == expected.yaml_text
    lines = done.stderr.splitlines()
    assert lines == [f"wwstatic: note: {n}" for n in expected.notes]
    assert f"wwstatic: note: {ASSET_NOTE}" in lines


def test_cli_output_file_and_force(tmp_path: Path) -> None:
    out = tmp_path / "cluster.yaml"
    done = cli(str(V45), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines()[-1] == f"wwstatic: wrote {out}"
    assert yaml.safe_load(out.read_text())["nodes"]["n0001"]["ipmi"]["password"] == "calvin"
    assert out.stat().st_mode & 0o777 == 0o600  # it holds BMC passwords
    out.write_text("mine\n")
    done = cli(str(V45), "-o", str(out))
    assert done.returncode != 0  # whatever toolchain.errors.report returns
    assert done.stderr == (f"wwstatic: error: {out} already exists\n"
                           "  hint: add --force to overwrite it, or choose another -o file\n")
    assert out.read_text() == "mine\n"
    done = cli(str(V45), "-o", str(out), "--force")
    assert done.returncode == 0, done.stderr
    assert out.read_text().startswith("# Imported from Warewulf")


def test_cli_errors_have_hints_and_no_traceback(tmp_path: Path) -> None:
    done = cli(str(tmp_path / "nodes.conf"))
    assert done.returncode != 0  # whatever toolchain.errors.report returns
    assert done.stderr.startswith(f"wwstatic: error: {tmp_path / 'nodes.conf'} does not exist\n  hint: ")
    assert "Traceback" not in done.stderr
    bad = write(tmp_path, "nodes:\n  n1: {a: [}\n")
    done = cli(str(bad))
    assert done.returncode != 0  # whatever toolchain.errors.report returns
    assert f"wwstatic: {bad}:2:" in done.stderr and "hint:" in done.stderr
    assert "Traceback" not in done.stderr


def test_verb_and_handler_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = cli_parser()
    args = parser.parse_args(["import-warewulf", str(V46), str(WWCONF), "-o", str(tmp_path / "c.yaml")])
    assert args.run is run_import
    assert (args.nodes_conf, args.warewulf_conf, args.force) == (str(V46), str(WWCONF), False)
    assert run_import(args) == 0
    assert "wwstatic: note: " in capsys.readouterr().err
    assert yaml.safe_load((tmp_path / "c.yaml").read_text())["head"]["ip"] == "10.0.0.1"
    args = parser.parse_args(["import-warewulf", str(V46), "-o", str(tmp_path / "c.yaml")])
    with pytest.raises(WWError, match="already exists"):
        run_import(args)
