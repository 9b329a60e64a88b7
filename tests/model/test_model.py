"""Unit tests of reading cluster.yaml: toolchain.model: yamlsrc, values, reader, load.

Hermetic and root-free: each test writes its own YAML under tmp_path (or reads
the shipped cluster.yaml). Error tests check the exact file:line:col against the
YAML text they write; in texts built with `cluster()`, the body starts at line 7.

`load_cluster` reports every mistake of a file at once (WWErrors); `errors_of`
returns that list and `expect_error` picks the one a test is about.
"""

from __future__ import annotations

import ipaddress
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.support.model import errors_of, expect_error, load, show
from tests.support.project import REPO
from toolchain.errors import Loc, WWError, WWErrors
from toolchain.model import values as schema
from toolchain.model.load import load_cluster
from toolchain.model.reader import Tree, Val, apply_list, deep_merge, flatten, instantiate, merge, plain
from toolchain.model.spec import NETDEV, NODE
from toolchain.model.types import Cluster, Dhcp, Export, Head, Image, Ipmi, Kernel, NetDev
from toolchain.model.yamlsrc import YMap, YNode, YScalar, YSeq, kind_of, load_file, load_text

# Lines 1-6 of most test files.
HEAD = """\
head:
  ip: 10.0.0.1
  network: 10.0.0.0/24
images:
  img:
    root: /srv/img
"""

# A node's boot device, two lines (for a node key on line N: lines N+1 and N+2).
NET = '    network:\n      default: {ip: 10.0.0.11, mac: "52:54:00:00:00:01"}\n'

MACS4 = '["52:54:00:00:00:01", "52:54:00:00:00:02", "52:54:00:00:00:03", "52:54:00:00:00:04"]'


def cluster(body: str) -> str:
    """HEAD followed by `body` (dedented): the body's first line is line 7.

    A line `<NET>` (at any indentation) stands for the two lines of NET.
    """
    return HEAD + re.sub(r"^ *<NET>\n", lambda _: NET, textwrap.dedent(body), flags=re.M)


def find_error(errors: list[WWError], message: str) -> WWError:
    """The one error whose message contains `message`."""
    found = [e for e in errors if message in e.message]
    assert len(found) == 1, f"{len(found)} errors with {message!r} in:\n{show(errors)}"
    return found[0]


def value_node(yaml_value: str) -> YNode:
    """The YAML node of `yaml_value`, as it would appear after `v: ` on line 1."""
    root = load_text(f"v: {yaml_value}\n", "f.yaml")
    assert isinstance(root, YMap)
    return root.items[0][1]


def val(value: object, line: int = 1, source: str = "node") -> Val:
    """A reader leaf set at line `line` of f.yaml."""
    return Val(value, Loc("f.yaml", line, 1), source)


# --- the shipped example ----------------------------------------------------


def test_shipped_cluster_yaml_loads() -> None:
    c = load_cluster(REPO / "cluster.yaml")
    assert c.head == Head(ipaddress.IPv4Address("10.99.0.1"), ipaddress.IPv4Network("10.99.0.0/24"),
                          "http://10.99.0.1", "10.99.0.1", 80)
    assert c.images == {"demo": Image("demo", "demo", kernel_package="linux-image-cloud-amd64",
                                      modules=("virtio_pci", "virtio_net"), exclude=("/boot/*",))}
    assert [n.name for n in c.nodes] == ["n01", "n02", "n03", "n04"]
    assert [n.ip for n in c.nodes] == ["10.99.0.11", "10.99.0.12", "10.99.0.13", "10.99.0.14"]
    assert [n.mac for n in c.nodes] == ["52:54:00:99:00:11", "52:54:00:99:00:12",
                                        "52:54:00:99:00:13", "52:54:00:99:00:14"]
    for n in c.nodes:
        assert n.profiles == ("default",)
        assert n.image == "demo"
        assert n.kernel == Kernel("", ("console=ttyS0", "quiet"))
        assert n.system_overlays == ("wwinit", "hostname")
        assert n.runtime_overlays == ("hosts", "motd")
        assert list(n.network) == ["default"]
        assert n.primary_network == "default"
        assert (n.netmask, n.prefix) == ("255.255.255.0", 24)
        assert (n.init, n.gateway, n.device, n.comment) == ("/sbin/init", "", "eth0", "")
        assert (n.root, n.ipxe_template) == ("initramfs", "default")
    # Every node of the hostlist points at the `n[01-04]:` key (line 29).
    assert set(c.node_locs) == {"n01", "n02", "n03", "n04"}
    assert {loc.line for loc in c.node_locs.values()} == {29}


def test_cluster_node_lookup_and_helpers() -> None:
    c = load_cluster(REPO / "cluster.yaml")
    n = c.node("n02")
    assert n.ip == "10.99.0.12"
    assert n.mac_hyphen == "52-54-00-99-00-12"
    assert n.primary is n.network["default"]
    assert n.primary.cidr == "10.99.0.12/24"
    assert '"name": "n02"' in n.to_json()
    with pytest.raises(KeyError):
        c.node("n05")


def test_minimal_cluster_defaults(tmp_path: Path) -> None:
    c = load(tmp_path, cluster("""\
        nodes:
          n01:
            network:
              default: {ip: 10.0.0.11, mac: "52:54:00:AB:CD:EF"}
            image: img
        """))
    assert c.head.http == "http://10.0.0.1"
    assert c.images["img"] == Image("img", "root", root="/srv/img")
    assert (c.dhcp, c.nfs_exports, c.ssh_key_types, c.wwclient_interval) == (
        Dhcp(), (), ("ed25519", "ecdsa", "rsa"), 60)
    (n,) = c.nodes
    assert n.mac == "52:54:00:ab:cd:ef"  # normalised to lower case
    assert n.network == {"default": NetDev(
        name="default", type="ethernet", device="", mac="52:54:00:ab:cd:ef", ip="10.0.0.11",
        netmask="255.255.255.0", prefix=24, gateway="", mtu=0, primary=True, onboot=True, tags={})}
    assert (n.init, n.kernel, n.profiles) == ("/sbin/init", Kernel(), ())
    assert (n.root, n.ipxe_template) == ("initramfs", "default")
    assert (n.system_overlays, n.runtime_overlays) == ((), ())
    assert (n.ipmi, n.tags, n.resources, n.disks, n.filesystems) == (Ipmi(), {}, {}, {}, {})
    assert (n.discoverable, n.comment) == (False, "")
    assert c.node_locs["n01"] == Loc(str(tmp_path / "cluster.yaml"), 8, 3)
    assert c.sources == {}  # only with keep_sources


def test_cluster_level_settings(tmp_path: Path) -> None:
    c = load(tmp_path, cluster("""\
        dhcp:
          range: {start: 10.0.0.200, end: 10.0.0.250}
          lease_time: 600
        nfs:
          exports:
            - path: /home
            - {path: /opt, options: ro}
        ssh: {key_types: ed25519}
        wwclient: {interval: 30}
        """))
    assert c.dhcp == Dhcp("10.0.0.200", "10.0.0.250", 600)
    assert c.nfs_exports == (Export("/home", "rw,sync,no_subtree_check"), Export("/opt", "ro"))
    assert c.ssh_key_types == ("ed25519",)
    assert c.wwclient_interval == 30


def test_empty_nodes_and_hostlist_ip_counting(tmp_path: Path) -> None:
    assert load(tmp_path, cluster("nodes:\n")).nodes == ()
    c = load(tmp_path, cluster(f"""\
        nodes:
          r[1-2]n[1-2]:
            network:
              default:
                ip: 10.0.0.100
                mac: {MACS4}
            image: img
        """))
    assert [(n.name, n.ip, n.mac[-2:]) for n in c.nodes] == [
        ("r1n1", "10.0.0.100", "01"), ("r1n2", "10.0.0.101", "02"),
        ("r2n1", "10.0.0.102", "03"), ("r2n2", "10.0.0.103", "04"),
    ]


def test_head_http_with_port(tmp_path: Path) -> None:
    text = "head:\n  ip: 10.0.0.1\n  network: 10.0.0.0/24\n  http: http://10.0.0.1:8080/\n"
    head = load(tmp_path, text).head
    assert (head.http, head.http_host, head.http_port) == ("http://10.0.0.1:8080", "10.0.0.1", 8080)


# --- user mistakes: YAML syntax ------------------------------------------------


def test_yaml_syntax_error(tmp_path: Path) -> None:
    err = expect_error(tmp_path, "head:\n  ip: 10.0.0.1: x\n", 2, 15, "YAML syntax")
    assert "mapping values are not allowed" in err.message


def test_yaml_tab_indentation(tmp_path: Path) -> None:
    expect_error(tmp_path, "head:\n\tip: 10.0.0.1\n", 2, 1, "YAML syntax")


def test_yaml_unclosed_flow_list(tmp_path: Path) -> None:
    expect_error(tmp_path, "head:\n  ip: [1, 2\nnodes: {}\n", 3, 6, "YAML syntax")


def test_yaml_control_character(tmp_path: Path) -> None:
    # `    comment: a` is 14 characters, so the control character is column 15.
    text = cluster("nodes:\n  n01:\n    comment: a\x01b\n")
    expect_error(tmp_path, text, 9, 15, "control character U+0001")


def test_yaml_recursive_alias(tmp_path: Path) -> None:
    expect_error(tmp_path, "head: &h\n  ip: *h\n", 1, 7, "alias refers to itself")


def test_yaml_merge_of_a_non_mapping(tmp_path: Path) -> None:
    text = cluster("""\
        profiles:
          p: &list [a]
          q:
            <<: *list
        """)
    expect_error(tmp_path, text, 10, 5, "`<<` must merge a mapping")


def test_yaml_mapping_key_not_a_name(tmp_path: Path) -> None:
    expect_error(tmp_path, cluster("nodes:\n  [n01]: {}\n"), 8, 3, "a mapping key must be a plain name")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(WWError) as info:
        load_cluster(tmp_path / "nope.yaml")
    assert "does not exist" in info.value.message
    assert info.value.hint


def test_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_bytes(b"head:\n  ip: \xff\n")
    with pytest.raises(WWError, match="not UTF-8"):
        load_cluster(path)


# --- user mistakes: unknown keys ---------------------------------------------


def test_unknown_top_level_key_near_miss(tmp_path: Path) -> None:
    err = expect_error(tmp_path, cluster("nodez: {}\n"), 7, 1, "unknown key `nodez` in the cluster file")
    assert err.hint == "did you mean `nodes`?"


def test_unknown_top_level_key_lists_allowed(tmp_path: Path) -> None:
    err = expect_error(tmp_path, cluster("colour: red\n"), 7, 1, "unknown key `colour`")
    assert err.hint == "allowed here: dhcp, head, images, nfs, nodes, profiles, ssh, wwclient"


def test_unknown_key_in_head(tmp_path: Path) -> None:
    text = "head:\n  ip: 10.0.0.1\n  network: 10.0.0.0/24\n  htp: http://10.0.0.1\n"
    err = expect_error(tmp_path, text, 4, 3, "unknown key `htp` in the cluster file: head")
    assert err.hint == "did you mean `http`?"


def test_unknown_key_in_image(tmp_path: Path) -> None:
    text = "head:\n  ip: 10.0.0.1\n  network: 10.0.0.0/24\nimages:\n  img:\n    rot: /srv/img\n"
    # The image then has no builder either: see test_one_mistake_one_error.
    err = expect_error(tmp_path, text, 6, 5, "unknown key `rot` in image img",
                       single=False)
    assert err.hint == "did you mean `root`?"


def test_unknown_key_in_demo_image(tmp_path: Path) -> None:
    text = ("head:\n  ip: 10.0.0.1\n  network: 10.0.0.0/24\n"
            "images:\n  img:\n    demo:\n      kernal_package: foo\n")
    err = expect_error(tmp_path, text, 7, 7,
                       "unknown key `kernal_package` in image img: demo")
    assert err.hint == "did you mean `kernel_package`?"


def test_unknown_key_in_profile(tmp_path: Path) -> None:
    text = cluster("""\
        profiles:
          p:
            image: img
            kernel_arg: [quiet]
        """)
    err = expect_error(tmp_path, text, 10, 5, "unknown key `kernel_arg` in profile p")
    assert err.hint == "did you mean `kernel`?"


@pytest.mark.parametrize("key", ["discoverable: true"])
def test_node_only_key_in_profile(tmp_path: Path, key: str) -> None:
    text = cluster(f"profiles:\n  p:\n    {key}\n")
    err = expect_error(tmp_path, text, 9, 5, f"unknown key `{key.split(':')[0]}` in profile p")
    assert err.hint.startswith("allowed here: comment, disks, filesystems, image, init, ipmi, ")


def test_node_only_keys_in_node(tmp_path: Path) -> None:
    c = load(tmp_path, cluster(f"nodes:\n  n01:\n    image: img\n    discoverable: true\n{NET}"))
    assert c.nodes[0].discoverable is True


def test_asset_key_is_gone(tmp_path: Path) -> None:
    # Removed: static files cannot check an asset tag (docs/migrating.md).
    text = cluster(f"nodes:\n  n01:\n    image: img\n    asset_key: A-1\n{NET}")
    expect_error(tmp_path, text, 10, 5, "unknown key `asset_key` in node n01")


def test_unknown_key_in_node(tmp_path: Path) -> None:
    text = cluster("""\
        nodes:
          n01:
            <NET>
            imgae: img
        """)
    err = expect_error(tmp_path, text, 11, 5, "unknown key `imgae` in node n01")
    assert err.hint == "did you mean `image`?"


# Each unknown key is on line 10 at column `col`; `where` is in the message.
@pytest.mark.parametrize(("body", "col", "where", "near"), [
    ("nodes:\n  n01:\n    kernel:\n      arg: [quiet]\n", 7, "node n01: kernel", "args"),
    ("nodes:\n  n01:\n    network:\n      default: {ipp: 10.0.0.11}\n", 17, "node n01: network default",
     "ip"),
    ("nodes:\n  n01:\n    ipmi:\n      usr: admin\n", 7, "node n01: ipmi", "user"),
    ("nodes:\n  n01:\n    disks:\n      /dev/sda: {wipe_tabel: true}\n", 18, "node n01: disks /dev/sda",
     "wipe_table"),
    ("nodes:\n  n01:\n    disks:\n      /dev/sda:\n        partitions:\n          p1: {sise_mib: 1}\n",
     None, "node n01: disks /dev/sda: partitions p1", "size_mib"),
    ("nodes:\n  n01:\n    filesystems:\n      /dev/sda1: {fromat: ext4}\n", 19,
     "node n01: filesystems /dev/sda1", "format"),
    ("dhcp:\n  range:\n    start: 10.0.0.200\n    edn: 10.0.0.250\n", 5, "the cluster file: dhcp: range",
     "end"),
    ("dhcp:\n  # a comment\n  lease_time: 60\n  rnage: {}\n", 3, "the cluster file: dhcp", "range"),
    ("nfs:\n  exports:\n    - path: /home\n      option: rw\n", 7, "the cluster file: nfs: exports item 1",
     "options"),
    ("ssh:\n  # a comment\n  key_types: [rsa]\n  key_type: [rsa]\n", 3, "the cluster file: ssh",
     "key_types"),
    ("wwclient:\n  # a comment\n  interval: 60\n  intervall: 60\n", 3, "the cluster file: wwclient",
     "interval"),
])
def test_unknown_key_at_every_level(tmp_path: Path, body: str, col: int | None, where: str,
                                    near: str) -> None:
    errors = errors_of(tmp_path, cluster(body))
    err = find_error(errors, f"in {where}")
    assert err.message.startswith("unknown key `")
    assert err.hint == f"did you mean `{near}`?"
    assert err.loc is not None
    if col is not None:
        assert (err.loc.line, err.loc.col) == (10, col)


# --- user mistakes: wrong types ----------------------------------------------


def test_list_where_string_expected(tmp_path: Path) -> None:
    text = cluster("""\
        nodes:
          n01:
            <NET>
            image: [img]
        """)
    err = expect_error(tmp_path, text, 11, 12, "image must be a string")
    assert "reads as a list" in err.message


def test_block_list_where_string_expected(tmp_path: Path) -> None:
    text = cluster("""\
        nodes:
          n01:
            network:
              default:
                ip:
                  - 10.0.0.11
        """)
    expect_error(tmp_path, text, 12, 11, "network default: ip must be a string, but YAML reads as a list")


def test_mapping_where_list_expected(tmp_path: Path) -> None:
    text = cluster("""\
        profiles:
          p:
            kernel:
              args:
                quiet: yes
        """)
    err = expect_error(tmp_path, text, 11, 9, "kernel: args must be a list")
    assert "reads as a mapping" in err.message


def test_flow_mapping_where_list_expected(tmp_path: Path) -> None:
    text = cluster("profiles:\n  p:\n    system_overlays: {wwinit: 1}\n")
    expect_error(tmp_path, text, 9, 22, "system_overlays must be a list")


def test_list_where_mapping_expected(tmp_path: Path) -> None:
    err = expect_error(tmp_path, cluster("nodes: [n01]\n"), 7, 8, "nodes must be a mapping")
    assert "reads as a list" in err.message


def test_scalar_where_struct_expected(tmp_path: Path) -> None:
    err = expect_error(tmp_path, cluster("profiles:\n  p:\n    kernel: 6.1\n"), 9, 13,
                       "kernel must be a mapping")
    assert "reads `6.1` as a number" in err.message


def test_number_in_a_list_of_strings(tmp_path: Path) -> None:
    text = cluster("profiles:\n  p:\n    kernel: {args: [quiet, 1]}\n")
    err = expect_error(tmp_path, text, 9, 28, "each item of profile p: kernel: args must be a string")
    assert err.hint == 'put it in quotes: "1"'


@pytest.mark.parametrize(("value", "kind"), [
    ("no", "a boolean"), ("yes", "a boolean"), ("off", "a boolean"), ("On", "a boolean"),
    ("12", "a number"), ("1.5", "a number"), ("2024-01-02", "a date"),
])
def test_yaml_typed_value_where_string_expected(tmp_path: Path, value: str, kind: str) -> None:
    text = cluster(f"nodes:\n  n01:\n    comment: {value}\n")
    err = expect_error(tmp_path, text, 9, 14, f"comment must be a string, but YAML reads `{value}` as {kind}")
    assert err.hint == f'put it in quotes: "{value}"'


def test_null_where_string_expected(tmp_path: Path) -> None:
    text = cluster("nodes:\n  n01:\n    image: ~\n")
    err = expect_error(tmp_path, text, 9, 12, "image must be a string")
    assert "null" in err.message
    assert "quotes" not in err.hint


@pytest.mark.parametrize(("value", "message"), [
    ("'60'", "interval must be a whole number, but YAML reads `60` as a string"),
    ("1.5", "interval must be a whole number, but YAML reads `1.5` as a number"),
    ("-1", "interval -1 is out of range"),
    ("86401", "interval 86401 is out of range"),
])
def test_bad_int(tmp_path: Path, value: str, message: str) -> None:
    expect_error(tmp_path, cluster(f"wwclient:\n  interval: {value}\n"), 8, 13, message)


@pytest.mark.parametrize("value", ["0x10", "0b10000", "1_6", "+16"])
def test_yaml_int_forms(tmp_path: Path, value: str) -> None:
    assert load(tmp_path, cluster(f"wwclient:\n  interval: {value}\n")).wwclient_interval == 16


@pytest.mark.parametrize(("value", "number"), [("020", 16), ("1:30", 90)])
def test_yaml_int_forms_octal_and_base60(tmp_path: Path, value: str, number: int) -> None:
    try:
        c = load(tmp_path, cluster(f"wwclient:\n  interval: {value}\n"))
    except WWError as err:  # an error at the value would do too
        assert err.loc == Loc(str(tmp_path / "cluster.yaml"), 8, 13)
        return
    assert c.wwclient_interval == number


def test_bool_written_as_string(tmp_path: Path) -> None:
    text = cluster("""\
        nodes:
          n01:
            network:
              default: {ip: 10.0.0.11, mac: "52:54:00:00:00:01", onboot: "yes"}
        """)
    err = expect_error(tmp_path, text, 10, 66,
                       "onboot must be true or false, but YAML reads `yes` as a string")
    assert err.hint == "write true or false"


@pytest.mark.parametrize(("value", "message"), [
    ("wifi", "type `wifi` is not one of ethernet, infiniband, bond, vlan"),
    ("[ethernet]", "type must be a string"),
])
def test_bad_choice(tmp_path: Path, value: str, message: str) -> None:
    text = cluster(f"nodes:\n  n01:\n    network:\n      default:\n        type: {value}\n")
    expect_error(tmp_path, text, 11, 15, message)


@pytest.mark.parametrize(("value", "message", "hint"), [
    ("'24'", "netmask `24` is a prefix length, not a netmask", "write 255.255.255.0"),
    ("24", "netmask must be a string", 'put it in quotes: "24"'),
    ("255.0.255.0", "netmask `255.0.255.0` is not an IPv4 netmask", "write it like 255.255.255.0"),
    ("banana", "netmask `banana` is not an IPv4 netmask", "write it like 255.255.255.0"),
])
def test_bad_netmask(tmp_path: Path, value: str, message: str, hint: str) -> None:
    text = cluster(f"nodes:\n  n01:\n    network:\n      default:\n        netmask: {value}\n")
    err = expect_error(tmp_path, text, 11, 18, message)
    assert err.hint == hint


def test_empty_entry_name(tmp_path: Path) -> None:
    text = cluster('nodes:\n  n01:\n    network:\n      "": {ip: 10.0.0.11}\n')
    expect_error(tmp_path, text, 10, 7, "node n01: network: empty network name")


def test_items_must_be_a_list(tmp_path: Path) -> None:
    text = cluster("nfs:\n  exports: {path: /home}\n")
    expect_error(tmp_path, text, 8, 12, "nfs: exports must be a list")


def test_tag_must_be_a_single_value(tmp_path: Path) -> None:
    text = cluster("nodes:\n  n01:\n    tags:\n      dns: [a, b]\n")
    expect_error(tmp_path, text, 10, 12, "tags: tag `dns` must be a single value")


def test_boolean_node_name(tmp_path: Path) -> None:
    text = cluster(f"nodes:\n  no:\n    image: img\n{NET}")
    err = expect_error(tmp_path, text, 8, 3, "node name must be a string")
    assert err.hint == 'put it in quotes: "no"'


def test_boolean_profile_name(tmp_path: Path) -> None:
    err = expect_error(tmp_path, cluster("profiles:\n  off: {}\n"), 8, 3, "profile name must be a string")
    assert err.hint == 'put it in quotes: "off"'


def test_invalid_profile_name(tmp_path: Path) -> None:
    text = cluster("profiles:\n  -bad: {}\n")
    expect_error(tmp_path, text, 8, 3, "profile name `-bad` is not a valid name")


def test_invalid_image_name(tmp_path: Path) -> None:
    text = cluster("profiles:\n  p:\n    image: my image\n")
    expect_error(tmp_path, text, 9, 12, "image `my image` is not a valid name")


@pytest.mark.parametrize("name", ["my img", "../../x"])
def test_invalid_image_key(tmp_path: Path, name: str) -> None:
    text = f'head:\n  ip: 10.0.0.1\n  network: 10.0.0.0/24\nimages:\n  "{name}":\n    root: /x\n'
    expect_error(tmp_path, text, 5, 3, f"`{name}` is not a valid name")


# --- user mistakes: MAC addresses --------------------------------------------


def test_unquoted_mac_is_base60(tmp_path: Path) -> None:
    text = cluster("""\
        nodes:
          n01:
            network:
              default:
                mac: 52:54:00:12:34:56
                ip: 10.0.0.11
            image: img
        """)
    err = expect_error(tmp_path, text, 11, 14, "base-60")
    assert err.hint == 'put the MAC in quotes: "52:54:00:12:34:56"'


def test_unquoted_mac_in_a_list(tmp_path: Path) -> None:
    text = cluster("""\
        nodes:
          n[1-2]:
            network:
              default:
                ip: 10.0.0.11
                mac:
                  - "52:54:00:12:34:55"
                  - 52:54:00:12:34:56
            image: img
        """)
    err = expect_error(tmp_path, text, 14, 13, "base-60")
    assert "quotes" in err.hint


@pytest.mark.parametrize("mac", [
    "52:54:00:12:34", "52:54:00:12:34:5g", "52:54-00:12:34:56", "5254.0012.3456",
    "52:54:00:12:34:56:78", "52:54:00:12:34:567", "",
])
def test_bad_mac_string(tmp_path: Path, mac: str) -> None:
    text = cluster(f'nodes:\n  n01:\n    network:\n      default:\n        mac: "{mac}"\n'
                   f"        ip: 10.0.0.11\n    image: img\n")
    expect_error(tmp_path, text, 11, 14, f"mac `{mac}` is not a MAC address")


def hostlist_macs(key: str, macs: str) -> str:
    """A node key on line 8 whose `mac:` value is at line 11, column 14."""
    return cluster(f"nodes:\n  {key}:\n    network:\n      default:\n        mac: {macs}\n"
                   f"        ip: 10.0.0.11\n    image: img\n")


def test_wrong_mac_count_for_hostlist(tmp_path: Path) -> None:
    text = hostlist_macs("n[01-03]", '["52:54:00:00:00:01", "52:54:00:00:00:02"]')
    err = expect_error(tmp_path, text, 11, 14, "node n[01-03]: network default: mac: 2 values for 3 node(s)")
    assert err.hint == "give exactly one per node of the hostlist, in its order"


def test_single_mac_for_hostlist(tmp_path: Path) -> None:
    text = hostlist_macs("n[1-2]", '"52:54:00:00:00:01"')
    expect_error(tmp_path, text, 11, 14, "mac: one value for 2 nodes; each node needs its own")


def test_mac_list_for_single_node(tmp_path: Path) -> None:
    text = hostlist_macs("n1", '["52:54:00:00:00:01", "52:54:00:00:00:02"]')
    expect_error(tmp_path, text, 11, 14, "mac: 2 values for 1 node(s)")


def test_mac_list_of_one_for_single_node(tmp_path: Path) -> None:
    c = load(tmp_path, hostlist_macs("n1", '["52:54:00:00:00:01"]'))
    assert c.node("n1").mac == "52:54:00:00:00:01"


# --- user mistakes: duplicates -----------------------------------------------


def test_duplicate_node_key(tmp_path: Path) -> None:
    text = cluster("""\
        nodes:
          n01:
            network:
              default: {ip: 10.0.0.11, mac: "52:54:00:00:00:01"}
            image: img
          n01:
            network:
              default: {ip: 10.0.0.12, mac: "52:54:00:00:00:02"}
            image: img
        """)
    expect_error(tmp_path, text, 12, 3, "duplicate key 'n01' (first at line 8)")


def test_duplicate_node_key_quoted_and_plain(tmp_path: Path) -> None:
    text = cluster('nodes:\n  n01: {}\n  "n01": {}\n')
    expect_error(tmp_path, text, 9, 3, "duplicate key 'n01' (first at line 8)")


def test_duplicate_key_inside_node(tmp_path: Path) -> None:
    text = cluster("""\
        nodes:
          n01:
            image: img
            image: img
        """)
    expect_error(tmp_path, text, 10, 5, "duplicate key 'image' (first at line 9)")


def test_duplicate_top_level_key(tmp_path: Path) -> None:
    expect_error(tmp_path, cluster("images: {}\n"), 7, 1, "duplicate key 'images' (first at line 4)")


def test_duplicate_node_from_overlapping_hostlists(tmp_path: Path) -> None:
    text = cluster("""\
        nodes:
          n[01-02]:
            network:
              default: {ip: 10.0.0.11, mac: ["52:54:00:00:00:01", "52:54:00:00:00:02"]}
            image: img
          n02:
            network:
              default: {ip: 10.0.0.20, mac: "52:54:00:00:00:03"}
            image: img
        """)
    expect_error(tmp_path, text, 12, 3, "node n02 is defined twice (first at line 8)")


def test_duplicate_mac(tmp_path: Path) -> None:
    # Same MAC written differently: both normalise to 52:54:00:aa:00:01.
    text = cluster("""\
        nodes:
          n01:
            network:
              default: {ip: 10.0.0.11, mac: "52:54:00:AA:00:01"}
            image: img
          n02:
            network:
              default: {ip: 10.0.0.12, mac: "52-54-00-aa-00-01"}
            image: img
        """)
    expect_error(tmp_path, text, 14, 37, "node n02 network default has MAC 52:54:00:aa:00:01, "
                 "already used by node n01 network default")


def test_duplicate_mac_within_hostlist(tmp_path: Path) -> None:
    text = hostlist_macs("n[1-2]", '["52:54:00:00:00:01", "52:54:00:00:00:01"]')
    expect_error(tmp_path, text, 11, 36,
                 "node n2 network default has MAC 52:54:00:00:00:01, already used by node n1")


def test_duplicate_ip(tmp_path: Path) -> None:
    text = cluster("""\
        nodes:
          n01:
            network:
              default: {ip: 10.0.0.11, mac: "52:54:00:00:00:01"}
            image: img
          n02:
            network:
              default: {ip: 10.0.0.11, mac: "52:54:00:00:00:02"}
            image: img
        """)
    expect_error(tmp_path, text, 14, 21, "node n02 network default has IP 10.0.0.11, "
                 "already used by node n01 network default")


def test_duplicate_ip_from_auto_increment(tmp_path: Path) -> None:
    # n[01-03] takes .11, .12 and .13; n04 asks for .13 again.
    text = cluster("""\
        nodes:
          n[01-03]:
            network:
              default: {ip: 10.0.0.11, mac: ["52:54:00:00:00:01", "52:54:00:00:00:02", "52:54:00:00:00:03"]}
            image: img
          n04:
            network:
              default: {ip: 10.0.0.13, mac: "52:54:00:00:00:04"}
            image: img
        """)
    expect_error(tmp_path, text, 14, 21,
                 "node n04 network default has IP 10.0.0.13, already used by node n03")


def test_duplicates_across_devices_and_bmcs(tmp_path: Path) -> None:
    # Warewulf's #1264: a MAC or address used twice on different devices or a BMC.
    errors = errors_of(tmp_path, cluster("""\
        nodes:
          n1:
            image: img
            network:
              default: {ip: 10.0.0.11, mac: "52:54:00:00:00:01"}
              ib: {ip: 10.1.0.11, netmask: 255.255.255.0, mac: "52:54:00:00:00:99"}
            ipmi: {ip: 10.2.0.11}
          n2:
            image: img
            network:
              default: {ip: 10.0.0.12, mac: "52:54:00:00:00:99"}
            ipmi: {ip: 10.1.0.11}
          n3:
            image: img
            network:
              default: {ip: 10.0.0.13, mac: "52:54:00:00:00:03"}
            ipmi: {ip: 10.2.0.11}
          n4:
            image: img
            network:
              default: {ip: 10.0.0.14, mac: "52:54:00:00:00:04"}
            ipmi: {ip: 10.0.0.14}
        """))
    file = str(tmp_path / "cluster.yaml")
    got = [(e.loc, e.message) for e in errors]
    assert got == [
        (Loc(file, 17, 37),
         "node n2 network default has MAC 52:54:00:00:00:99, already used by node n1 network ib"),
        (Loc(file, 18, 16), "node n2 ipmi has IP 10.1.0.11, already used by node n1 network ib"),
        (Loc(file, 23, 16), "node n3 ipmi has address 10.2.0.11:623, already used by node n1 ipmi"),
        (Loc(file, 28, 16), "node n4 ipmi has IP 10.0.0.14, already used by node n4 network default"),
    ], show(errors)
    assert all(e.hint for e in errors)


# --- user mistakes: addresses ------------------------------------------------


def test_node_ip_is_head_ip(tmp_path: Path) -> None:
    text = cluster(f"nodes:\n  n01:\n    image: img\n{NET.replace('10.0.0.11', '10.0.0.1')}")
    expect_error(tmp_path, text, 11, 21, "node n01 network default has IP 10.0.0.1, already used by the head")


def test_node_ip_is_head_ip_via_auto_increment(tmp_path: Path) -> None:
    text = hostlist_macs("n[1-2]", '["52:54:00:00:00:01", "52:54:00:00:00:02"]')
    text = text.replace("10.0.0.11", "10.0.0.0")
    # n1 gets the network address, n2 the head's: two mistakes.
    errors = errors_of(tmp_path, text)
    assert len(errors) == 2, show(errors)
    expect_error(tmp_path, text, 12, 13, "node n1 network default: IP 10.0.0.0 is outside the usable "
                 "addresses of the cluster network 10.0.0.0/24", single=False)
    expect_error(tmp_path, text, 12, 13, "node n2 network default has IP 10.0.0.1, already used by the head",
                 single=False)


def one_node_with_ip(ip: str) -> str:
    """Node n01 on line 8 whose `ip:` value is at line 12, column 13."""
    return cluster(f"nodes:\n  n01:\n    network:\n      default:\n        mac: \"52:54:00:00:00:01\"\n"
                   f"        ip: {ip}\n    image: img\n")


@pytest.mark.parametrize("ip", ["10.0.0.0", "10.0.0.255"])
def test_node_ip_not_usable(tmp_path: Path, ip: str) -> None:
    expect_error(tmp_path, one_node_with_ip(ip), 12, 13,
                 f"node n01 network default: IP {ip} is outside the usable addresses of the cluster "
                 "network 10.0.0.0/24")


@pytest.mark.parametrize("ip", ["10.0.1.11", "192.168.0.11"])
def test_node_ip_outside_head_network(tmp_path: Path, ip: str) -> None:
    # Also reported as "outside the cluster network and has no netmask": see
    # test_one_mistake_one_error.
    expect_error(tmp_path, one_node_with_ip(ip), 12, 13,
                 f"node n01 network default: IP {ip} is outside the usable addresses of the cluster "
                 "network 10.0.0.0/24", single=False)


def test_auto_increment_runs_past_network_end(tmp_path: Path) -> None:
    text = hostlist_macs("n[1-4]", MACS4).replace("10.0.0.11", "10.0.0.252")
    err = expect_error(tmp_path, text, 12, 13, "node n4 network default: IP 10.0.0.255 is outside the usable")
    assert "leaves room for every node" in err.hint


def test_auto_increment_runs_into_next_network(tmp_path: Path) -> None:
    text = ("head:\n  ip: 10.0.0.1\n  network: 10.0.0.0/23\nimages:\n  img:\n    root: /srv/img\n"
            "nodes:\n  n[1-3]:\n    network:\n      default:\n        ip: 10.0.1.253\n"
            '        mac: ["52:54:00:00:00:01", "52:54:00:00:00:02", "52:54:00:00:00:03"]\n    image: img\n')
    expect_error(tmp_path, text, 11, 13, "node n3 network default: IP 10.0.1.255 is outside the usable")


def test_auto_increment_past_255_255_255_255(tmp_path: Path) -> None:
    text = cluster("""\
        nodes:
          n[1-2]:
            image: img
            network:
              default: {ip: 10.0.0.11, mac: ["52:54:00:00:00:01", "52:54:00:00:00:02"]}
            ipmi: {ip: 255.255.255.255}
        """)
    expect_error(tmp_path, text, 12, 16, "node n2: ipmi ip counted past 255.255.255.255")


def test_bad_node_ip(tmp_path: Path) -> None:
    expect_error(tmp_path, one_node_with_ip("10.0.0.256"), 12, 13, "ip `10.0.0.256` is not an IPv4 address")


def test_head_ip_outside_head_network(tmp_path: Path) -> None:
    text = "head:\n  ip: 10.0.1.1\n  network: 10.0.0.0/24\n"
    expect_error(tmp_path, text, 2, 7, "head ip 10.0.1.1 is not inside the cluster network 10.0.0.0/24")


@pytest.mark.parametrize(("network", "problem"), [
    ("10.0.0.1/24", "has host bits set"), ("banana", "Expected 4 octets"), ("10.0.0.0/33", "")])
def test_bad_head_network(tmp_path: Path, network: str, problem: str) -> None:
    text = f"head:\n  ip: 10.0.0.1\n  network: {network}\n"
    err = expect_error(tmp_path, text, 3, 12, f"head network `{network}` is not an IPv4 network")
    assert problem in err.message


@pytest.mark.parametrize("url", [
    "https://10.0.0.1", "http://10.0.0.1/boot", "http://10.0.0.1?x=1", "10.0.0.1",
    "http://10.0.0.1:99999", "http://10.0.0.1:port",
    "http://[::1", "http://10.0.0.1#boot",
])
def test_bad_head_http(tmp_path: Path, url: str) -> None:
    text = f"head:\n  ip: 10.0.0.1\n  network: 10.0.0.0/24\n  http: {url}\n"
    # Refused by the URL grammar, or by the head's own check (plain http, no path).
    expect_error(tmp_path, text, 4, 9, f"http `{url}` is not")


@pytest.mark.parametrize(("text", "line", "col"), [
    ("nodes: {}\n", 1, 1),
    ("# a comment\n\nimages: {}\n", 3, 1),
    ("", 1, 1),
    ("# only a comment\n", 1, 1),
])
def test_missing_head(tmp_path: Path, text: str, line: int, col: int) -> None:
    expect_error(tmp_path, text, line, col, "the cluster file has no `head` section")


@pytest.mark.parametrize("missing", ["ip", "network"])
def test_head_setting_missing(tmp_path: Path, missing: str) -> None:
    lines = {"ip": "  ip: 10.0.0.1\n", "network": "  network: 10.0.0.0/24\n"}
    del lines[missing]
    errors = errors_of(tmp_path, "head:\n" + "".join(lines.values()))
    err = find_error(errors, f"head has no `{missing}`")
    assert err.hint == f"add `{missing}:` under head"
    assert len(errors) == 1


def test_head_setting_missing_points_at_head(tmp_path: Path) -> None:
    text = "images: {}\nhead:\n  network: 10.0.0.0/24\n"
    (err,) = errors_of(tmp_path, text)
    assert err.loc is not None
    assert (err.loc.line, err.loc.col) in ((2, 1), (3, 3)), str(err)


@pytest.mark.parametrize(("text", "kind"), [("- head\n", "a list"), ("hello\n", "`hello` as a string")])
def test_cluster_file_not_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    err = expect_error(tmp_path, text, 1, 1, "the cluster file must be a mapping")
    assert kind in err.message


# --- user mistakes: references and hostlists --------------------------------


def test_undefined_profile(tmp_path: Path) -> None:
    text = cluster("""\
        profiles:
          base: {image: img}
        nodes:
          n01:
            profiles: [base, nope]
            <NET>
        """)
    err = expect_error(tmp_path, text, 11, 15, "profile `nope` is not defined")
    assert err.hint == "defined profiles: base"


def test_undefined_profile_none_defined(tmp_path: Path) -> None:
    text = cluster("nodes:\n  n01:\n    profiles: default\n")
    err = expect_error(tmp_path, text, 9, 15, "profile `default` is not defined")
    assert err.hint == "defined profiles: none"


def test_undefined_nested_profile(tmp_path: Path) -> None:
    text = cluster("""\
        profiles:
          a:
            profiles: [missing]
        nodes:
          n01:
            profiles: [a]
        """)
    expect_error(tmp_path, text, 9, 15, "profile `missing` is not defined")


def test_undefined_image_in_profile(tmp_path: Path) -> None:
    text = cluster("""\
        profiles:
          p:
            image: nope
        nodes:
          n01:
            profiles: [p]
            <NET>
        """)
    err = expect_error(tmp_path, text, 9, 12, "image `nope` is not defined")
    assert err.hint == "defined images: img"


def test_undefined_image_in_node(tmp_path: Path) -> None:
    text = cluster(f"nodes:\n  n01:\n{NET}    image: nope\n")
    expect_error(tmp_path, text, 11, 12, "image `nope` is not defined")


def test_profile_cycle(tmp_path: Path) -> None:
    text = cluster("""\
        profiles:
          a:
            profiles: [b]
          b:
            profiles: [a]
        nodes:
          n01:
            profiles: [a]
            image: img
            <NET>
        """)
    # The reference that closes the cycle: b's list, on line 11.
    expect_error(tmp_path, text, 11, 15, "profiles include each other in a cycle: a -> b -> a")


def test_profile_includes_itself(tmp_path: Path) -> None:
    text = cluster("profiles:\n  a:\n    profiles: [a]\nnodes:\n  n01:\n    profiles: [a]\n")
    expect_error(tmp_path, text, 9, 15, "cycle: a -> a")


@pytest.mark.parametrize(("missing", "message"), [
    ("ip", "node n01 network default (the primary device) has no `ip`"),
    ("mac", "node n01 network default (the primary device) has no `mac`"),
    ("image", "node n01 has no `image`"),
    ("network", "node n01 has no network device"),
])
def test_node_setting_missing(tmp_path: Path, missing: str, message: str) -> None:
    settings = {"ip": "ip: 10.0.0.11", "mac": 'mac: "52:54:00:00:00:01"'}
    settings.pop(missing, None)
    text = "nodes:\n  n01:\n"
    if missing != "network":
        text += f"    network:\n      default: {{{', '.join(settings.values())}}}\n"
    if missing != "image":
        text += "    image: img\n"
    expect_error(tmp_path, cluster(text), 8, 3, message)


@pytest.mark.parametrize(("key", "problem"), [
    ("n[1-", "`[` without `]`"),
    ("n[3-1]", "goes backwards"),
    ("n[a-b]", "is not a number"),
    ('"n 01"', "characters not allowed"),
    ('"n1,,n2"', "empty name between commas"),
    ('""', "empty hostlist"),
])
def test_bad_hostlist_key(tmp_path: Path, key: str, problem: str) -> None:
    text = cluster(f"nodes:\n  {key}:\n    image: img\n")
    err = expect_error(tmp_path, text, 8, 3, "is not a valid hostlist")
    assert problem in err.message


@pytest.mark.parametrize(("key", "macs"), [
    ("-n[1-2]", '["52:54:00:00:00:01", "52:54:00:00:00:02"]'), ('".."', '"52:54:00:00:00:01"')])
def test_hostlist_key_gives_invalid_node_name(tmp_path: Path, key: str, macs: str) -> None:
    text = cluster(f"nodes:\n  {key}:\n    image: img\n    network:\n"
                   f"      default: {{ip: 10.0.0.11, mac: {macs}}}\n")
    assert load(tmp_path, text.replace(key, "n[1-2]" if "[" in key else "n1")).nodes  # fine otherwise
    expect_error(tmp_path, text, 8, 3, "node name `", single=False)


def test_image_needs_one_builder(tmp_path: Path) -> None:
    for body in ("    exclude: [a]\n", "    root: /x\n    demo: {}\n", ""):
        text = f"head:\n  ip: 10.0.0.1\n  network: 10.0.0.0/24\nimages:\n  img:\n{body}"
        err = find_error(errors_of(tmp_path, text),
                         "image img needs exactly one source: demo, root, tarball, oci or debootstrap")
        assert err.hint


def test_image_needs_one_builder_location(tmp_path: Path) -> None:
    text = "head:\n  ip: 10.0.0.1\n  network: 10.0.0.0/24\nimages:\n  img:\n    exclude: [a]\n"
    (err,) = errors_of(tmp_path, text)
    assert err.loc is not None
    assert (err.loc.line, err.loc.col) in ((5, 3), (6, 5)), str(err)


def test_image_root_must_be_absolute(tmp_path: Path) -> None:
    text = "head:\n  ip: 10.0.0.1\n  network: 10.0.0.0/24\nimages:\n  img:\n    root: srv/img\n"
    err = expect_error(tmp_path, text, 6, 11, "image img: root `srv/img` must be an absolute path",
                       single=False)
    assert err.hint == "write /srv/img if that is what you mean"


def test_bad_init_path(tmp_path: Path) -> None:
    text = cluster("profiles:\n  p:\n    init: sbin/init\n")
    expect_error(tmp_path, text, 9, 11, "init `sbin/init` must be an absolute path")


# One mistake, and the model reports a second, misleading error as well
# (a value that was written but rejected counts as missing).
@pytest.mark.parametrize("text", [
    pytest.param("head:\n  ip: 10.0.0.1\n  network: 10.0.0.0/24\nimages:\n  img:\n    root: srv/img\n",
                 id="image-root-relative"),
    pytest.param("head:\n  ip: 10.0.0.1\n  network: 10.0.0.0/24\nimages:\n  img:\n    rot: /srv/img\n",
                 id="image-unknown-key"),
    pytest.param("head: 10.0.0.1\n", id="head-scalar"),
    pytest.param(HEAD + "dhcp:\n  range: {start: 10.0.0.x, end: 10.0.0.250}\n", id="dhcp-bad-start"),
    pytest.param(HEAD + 'nodes:\n  n01:\n    image: img\n    network:\n'
                 '      default: {ip: 10.0.1.11, mac: "52:54:00:00:00:01"}\n', id="primary-off-network"),
    pytest.param("images:\n  img:\n    root: /srv/img\nnodes:\n  n01:\n    image: img\n    network:\n"
                 '      default: {ip: 10.0.0.11, mac: "52:54:00:00:00:01"}\n', id="no-head"),
])
def test_one_mistake_one_error(tmp_path: Path, text: str) -> None:
    errors = errors_of(tmp_path, text)
    assert len(errors) == 1, show(errors)


# --- network devices -----------------------------------------------------------


def test_several_devices_count_up_with_ipmi(tmp_path: Path) -> None:
    # Warewulf's #2041: only one device can be counted up over a node range.
    c = load(tmp_path, cluster("""\
        nodes:
          n[1-3]:
            image: img
            network:
              default:
                device: eth0
                ip: 10.0.0.11
                mac: ["52:54:00:00:00:01", "52:54:00:00:00:02", "52:54:00:00:00:03"]
              ib:
                type: infiniband
                device: ib0
                ip: 10.1.0.11
                netmask: 255.255.0.0
                mac: ["52:54:00:00:01:01", "52:54:00:00:01:02", "52:54:00:00:01:03"]
                mtu: 65520
                onboot: false
                tags: {DNS1: 10.1.0.1}
            ipmi:
              ip: 10.2.0.11
              netmask: 255.255.255.0
              gateway: 10.2.0.1
              user: admin
              password: secret
              interface: lan
              write: true
        """))
    assert [n.name for n in c.nodes] == ["n1", "n2", "n3"]
    for i, n in enumerate(c.nodes):
        assert n.primary_network == "default"
        assert n.network["default"].ip == f"10.0.0.{11 + i}"
        assert n.network["default"].mac == f"52:54:00:00:00:0{1 + i}"
        assert n.network["ib"] == NetDev(
            name="ib", type="infiniband", device="ib0", mac=f"52:54:00:00:01:0{1 + i}",
            ip=f"10.1.0.{11 + i}", netmask="255.255.0.0", prefix=16, gateway="", mtu=65520,
            primary=False, onboot=False, tags={"DNS1": "10.1.0.1"})
        assert n.ipmi == Ipmi(ip=f"10.2.0.{11 + i}", netmask="255.255.255.0", gateway="10.2.0.1",
                              user="admin", password="secret", interface="lan", port=623, write=True)


@pytest.mark.parametrize(("devices", "primary"), [
    # `primary: true` wins over the name.
    ('default: {ip: 10.0.0.11, mac: "52:54:00:00:00:01"}\n'
     '      boot: {ip: 10.0.0.12, mac: "52:54:00:00:00:02", primary: true}', "boot"),
    # Else the device named `default`, even if another sorts first.
    ('a: {ip: 10.5.0.11, netmask: 255.255.255.0}\n'
     '      default: {ip: 10.0.0.11, mac: "52:54:00:00:00:01"}', "default"),
    # Else the first by name, not the first written.
    ('z: {ip: 10.5.0.11, netmask: 255.255.255.0}\n'
     '      b: {ip: 10.0.0.11, mac: "52:54:00:00:00:01"}\n'
     '      c: {ip: 10.0.0.12}', "b"),
])
def test_primary_device(tmp_path: Path, devices: str, primary: str) -> None:
    c = load(tmp_path, cluster(f"nodes:\n  n1:\n    image: img\n    network:\n      {devices}\n"))
    n = c.node("n1")
    assert n.primary_network == primary
    assert [d.name for d in n.network.values() if d.primary] == [primary]
    assert n.ip == n.network[primary].ip


def test_more_than_one_primary(tmp_path: Path) -> None:
    text = cluster("""\
        nodes:
          n1:
            image: img
            network:
              a:
                ip: 10.0.0.11
                mac: "52:54:00:00:00:01"
                primary: true
              b:
                ip: 10.0.0.12
                mac: "52:54:00:00:00:02"
                primary: true
        """)
    err = expect_error(tmp_path, text, 18, 18, "node n1 has several primary network devices: a, b")
    assert err.hint == "mark only one device primary: true"


def test_secondary_device_needs_neither_mac_nor_ip(tmp_path: Path) -> None:
    c = load(tmp_path, cluster(f"nodes:\n  n1:\n    image: img\n{NET}      bmc: {{device: eth1}}\n"))
    assert c.node("n1").network["bmc"].cidr == ""
    assert c.node("n1").network["bmc"].mac == ""


def test_second_device_outside_cluster_network_needs_netmask(tmp_path: Path) -> None:
    text = cluster(f"nodes:\n  n1:\n    image: img\n{NET}      ib: {{ip: 10.1.0.11}}\n")
    err = expect_error(tmp_path, text, 12, 16, "node n1 network ib: IP 10.1.0.11 is outside the cluster "
                       "network and has no netmask")
    assert "netmask" in err.hint
    c = load(tmp_path, text.replace("ip: 10.1.0.11", "ip: 10.1.0.11, netmask: 255.255.252.0"))
    assert c.node("n1").network["ib"].cidr == "10.1.0.11/22"


def test_second_device_in_cluster_network_gets_its_netmask(tmp_path: Path) -> None:
    c = load(tmp_path, cluster(f"nodes:\n  n1:\n    image: img\n{NET}      eth1: {{ip: 10.0.0.111}}\n"))
    eth1 = c.node("n1").network["eth1"]
    assert (eth1.netmask, eth1.prefix) == ("255.255.255.0", 24)


@pytest.mark.parametrize(("device", "col", "message"), [
    ('default: {ip: 10.0.0.11, mac: "52:54:00:00:00:01", gateway: 10.0.1.1}', 67,
     "node n1 network default: gateway 10.0.1.1 is not in 10.0.0.0/24"),
    ('default: {ip: 10.0.0.11, mac: "52:54:00:00:00:01"}\n'
     "      ib: {ip: 10.1.0.11, netmask: 255.255.0.0, gateway: 10.2.0.1}", 58,
     "node n1 network ib: gateway 10.2.0.1 is not in 10.1.0.0/16"),
])
def test_gateway_outside_device_network(tmp_path: Path, device: str, col: int, message: str) -> None:
    text = cluster(f"nodes:\n  n1:\n    image: img\n    network:\n      {device}\n")
    line = 11 + device.count("\n")
    err = expect_error(tmp_path, text, line, col, message)
    assert err.hint == "fix the gateway or the netmask"


def test_gateway_inside_device_network(tmp_path: Path) -> None:
    text = cluster("nodes:\n  n1:\n    image: img\n    network:\n      default: "
                   '{ip: 10.0.0.11, mac: "52:54:00:00:00:01", gateway: 10.0.0.254, mtu: 9000}\n')
    n = load(tmp_path, text).node("n1")
    assert (n.gateway, n.primary.mtu) == ("10.0.0.254", 9000)


# --- dhcp ------------------------------------------------------------------------


def dhcp(start: str, end: str, node_ip: str = "10.0.0.11") -> str:
    """dhcp on lines 7-10 (start at 9:12, end at 10:10); node n1 on line 12."""
    return cluster(f"dhcp:\n  range:\n    start: {start}\n    end: {end}\nnodes:\n  n1:\n    image: img\n"
                   f"{NET.replace('10.0.0.11', node_ip)}")


def test_dhcp_range(tmp_path: Path) -> None:
    assert load(tmp_path, dhcp("10.0.0.200", "10.0.0.250")).dhcp == Dhcp("10.0.0.200", "10.0.0.250", 3600)


def test_dhcp_range_outside_network(tmp_path: Path) -> None:
    err = expect_error(tmp_path, dhcp("10.0.0.200", "10.0.1.10"), 10, 10,
                       "dhcp range end 10.0.1.10 is outside the cluster network 10.0.0.0/24")
    assert err.hint == "choose addresses of the cluster network"


def test_dhcp_range_reversed(tmp_path: Path) -> None:
    err = expect_error(tmp_path, dhcp("10.0.0.250", "10.0.0.200"), 10, 10,
                       "dhcp range ends (10.0.0.200) before it starts (10.0.0.250)")
    assert err.hint == "swap start and end"


def test_dhcp_range_contains_node_ip(tmp_path: Path) -> None:
    expect_error(tmp_path, dhcp("10.0.0.200", "10.0.0.250", "10.0.0.220"), 12, 3,
                 "node n1 has 10.0.0.220, inside the dynamic DHCP range")


def test_dhcp_range_needs_both_ends(tmp_path: Path) -> None:
    text = cluster("dhcp:\n  range:\n    start: 10.0.0.200\n")
    expect_error(tmp_path, text, 9, 5, "dhcp range needs both `start` and `end`")


def test_dhcp_range_needs_both_ends_location(tmp_path: Path) -> None:
    text = cluster("dhcp:\n  range:\n    end: 10.0.0.250\n")
    (err,) = errors_of(tmp_path, text)
    assert err.loc is not None
    assert (err.loc.line, err.loc.col) in ((8, 3), (9, 5), (9, 10)), str(err)


def test_dhcp_range_contains_head_ip(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, dhcp("10.0.0.1", "10.0.0.9"))
    assert any("10.0.0.1" in e.message for e in errors), show(errors)


# --- root, overlays, templates ---------------------------------------------------


@pytest.mark.parametrize("root", ["initramfs", "tmpfs", "/dev/sda2", "/dev/disk/by-label/root"])
def test_root_accepted(tmp_path: Path, root: str) -> None:
    c = load(tmp_path, cluster(f"nodes:\n  n1:\n    image: img\n    root: {root}\n{NET}"))
    assert c.node("n1").root == root


@pytest.mark.parametrize("root", ["nfs", "/srv/root", "ramfs", "dev/sda2"])
def test_root_rejected(tmp_path: Path, root: str) -> None:
    text = cluster(f"nodes:\n  n1:\n    image: img\n    root: {root}\n{NET}")
    err = expect_error(tmp_path, text, 10, 11, f"node n1: root `{root}` is not initramfs, tmpfs or a device")
    assert "/dev/sda2" in err.hint


def test_root_bare_dev_rejected(tmp_path: Path) -> None:
    text = cluster(f"nodes:\n  n1:\n    image: img\n    root: /dev/\n{NET}")
    expect_error(tmp_path, text, 10, 11, "is not initramfs, tmpfs or a device")


def test_unknown_overlay(tmp_path: Path) -> None:
    text = cluster("""\
        profiles:
          p:
            system_overlays: [wwinit, nope]
        nodes:
          n1:
            profiles: [p]
            image: img
            <NET>
        """)
    err = expect_error(tmp_path, text, 9, 22, "node n1: overlay `nope` does not exist")
    assert err.hint.startswith("create overlays/nope/rootfs/ or use one of: ")
    assert ", hostname, hosts, " in err.hint and err.hint.endswith(", wwinit")


def test_overlays_of_the_project_directory(tmp_path: Path) -> None:
    (tmp_path / "overlays" / "mine" / "rootfs").mkdir(parents=True)
    (tmp_path / "overlays" / "nofs").mkdir()  # no rootfs/: not an overlay
    text = cluster(f"nodes:\n  n1:\n    image: img\n    runtime_overlays: [hosts, mine, nofs]\n{NET}")
    err = expect_error(tmp_path, text, 10, 23, "node n1: overlay `nofs` does not exist")
    known = err.hint.split("use one of: ")[1].split(", ")
    assert {"hostname", "hosts", "mine", "wwinit"} <= set(known) and "nofs" not in known
    c = load(tmp_path, text.replace(", nofs", ""))
    assert c.node("n1").runtime_overlays == ("hosts", "mine")


def test_unknown_ipxe_template(tmp_path: Path) -> None:
    text = cluster(f"nodes:\n  n1:\n    image: img\n    ipxe_template: fancy\n{NET}")
    err = expect_error(tmp_path, text, 10, 20, "node n1: iPXE template `fancy` does not exist")
    assert err.hint == "use one of: default"


# --- tags, resources, disks, file systems ----------------------------------------


def test_tags_keep_their_text(tmp_path: Path) -> None:
    c = load(tmp_path, cluster("""\
        profiles:
          p:
            tags: {a: from profile, b: from profile}
        nodes:
          n1:
            profiles: [p]
            image: img
            tags: {b: no, mode: 0755, f: 1.0, d: 2024-01-02, y: yes}
            ipmi:
              tags: {vlan: 42}
            <NET>
        """))
    n = c.node("n1")
    assert n.tags == {"a": "from profile", "b": "no", "mode": "0755", "f": "1.0", "d": "2024-01-02",
                      "y": "yes"}
    assert n.ipmi.tags == {"vlan": "42"}


def test_resources_merge_maps_and_replace_lists(tmp_path: Path) -> None:
    c = load(tmp_path, cluster("""\
        profiles:
          p:
            resources:
              fstab: {a: 1, b: {x: 1, y: [1, 2]}}
              list: [1, 2, 3]
              keep: here
        nodes:
          n1:
            profiles: [p]
            image: img
            resources:
              fstab: {b: {y: [3], z: yes}, c: no}
              list: [9]
            <NET>
        """))
    assert c.node("n1").resources == {
        "fstab": {"a": 1, "b": {"x": 1, "y": [3], "z": True}, "c": False},
        "list": [9],
        "keep": "here",
    }


def test_disks_and_filesystems(tmp_path: Path) -> None:
    c = load(tmp_path, cluster("""\
        nodes:
          n1:
            image: img
            disks:
              /dev/sda:
                wipe_table: true
                partitions:
                  scratch: {number: 1, size_mib: 1024, start_mib: 0}
                  swap: {number: 2, create: no, resize: yes}
            filesystems:
              /dev/disk/by-partlabel/scratch:
                format: ext4
                path: /scratch
                wipe: yes
                options: [-F, -m0]
                mount_options: noatime
              /dev/disk/by-partlabel/swap: {format: swap}
            <NET>
        """))
    n = c.node("n1")
    assert n.disks == {"/dev/sda": {"wipe_table": True, "partitions": {
        "scratch": {"number": 1, "size_mib": 1024, "start_mib": 0},
        "swap": {"number": 2, "create": False, "resize": True}}}}
    assert n.filesystems == {
        "/dev/disk/by-partlabel/scratch": {"format": "ext4", "path": "/scratch", "wipe": True,
                                           "options": ["-F", "-m0"], "mount_options": "noatime"},
        "/dev/disk/by-partlabel/swap": {"format": "swap"},
    }


@pytest.mark.parametrize(("body", "col", "message"), [
    ("disks:\n      /dev/sda: {wipe_table: 1}", 30, "wipe_table must be true or false"),
    ("disks:\n      /dev/sda: {partitions: {p: {number: 129}}}", 43, "number 129 is out of range"),
    ("disks:\n      /dev/sda: {partitions: {p: {size_mib: big}}}", 45, "size_mib must be a whole number"),
    ("filesystems:\n      /dev/sda1: {format: zfs, path: /x}", 27, "format `zfs` is not one of"),
    ("filesystems:\n      /dev/sda1: {format: ext4, path: x}", 39, "path `x` must be an absolute path"),
])
def test_bad_disk_and_filesystem_values(tmp_path: Path, body: str, col: int, message: str) -> None:
    text = cluster(f"nodes:\n  n1:\n    image: img\n    {body}\n{NET}")
    expect_error(tmp_path, text, 11, col, message)


def test_filesystem_without_path(tmp_path: Path) -> None:
    text = cluster(f"nodes:\n  n1:\n    image: img\n    filesystems:\n"
                   f"      /dev/sda1: {{format: ext4}}\n{NET}")
    err = expect_error(tmp_path, text, 11, 27, "node n1: file system /dev/sda1 (ext4) has no `path`")
    assert err.hint == "add path: /mount/point"


def test_two_filesystems_without_path(tmp_path: Path) -> None:
    text = cluster(f"nodes:\n  n1:\n    image: img\n    filesystems:\n      /dev/sda1: {{format: ext4}}\n"
                   f"      /dev/sda2: {{format: xfs}}\n{NET}")
    errors = errors_of(tmp_path, text)
    assert "/dev/sda2" in show(errors)


# --- reporting all errors at once ------------------------------------------------


def test_all_errors_of_a_file_in_line_order(tmp_path: Path) -> None:
    text = cluster("""\
        wwclient: {interval: 100000}
        ssh: {key_types: [ed25519, 1]}
        profiles:
          p:
            kernel: {argz: [quiet]}
        nodes:
          n1:
            profiles: [p]
            image: nope
            network:
              default: {ip: 10.0.0.11, mac: "52:54:00:00:00:01"}
          n2:
            image: img
            root: nfs
            network:
              default: {ip: 10.0.0.12, mac: "52:54:00:00:00:02"}
        """)
    errors = errors_of(tmp_path, text)
    file = str(tmp_path / "cluster.yaml")
    assert [(e.loc, e.message) for e in errors] == [
        (Loc(file, 7, 22), "the cluster file: wwclient: interval 100000 is out of range"),
        (Loc(file, 8, 28), "each item of the cluster file: ssh: key_types must be a string, "
                           "but YAML reads `1` as a number"),
        (Loc(file, 11, 14), "unknown key `argz` in profile p: kernel"),
        (Loc(file, 15, 12), "image `nope` is not defined"),
        (Loc(file, 20, 11), "node n2: root `nfs` is not initramfs, tmpfs or a device"),
    ], show(errors)
    assert all(e.hint for e in errors)
    with pytest.raises(WWErrors) as info:
        load_cluster(tmp_path / "cluster.yaml")
    assert str(info.value).count(": error: ") == 5
    assert info.value.loc == errors[0].loc  # the first error is the exception's own


def test_all_errors_of_one_node(tmp_path: Path) -> None:
    text = cluster(f"nodes:\n  n1:\n    comment: no\n    image: nope\n    root: nfs\n{NET}")
    errors = errors_of(tmp_path, text)
    assert len(errors) == 3, show(errors)


def test_profile_mistake_reported_once(tmp_path: Path) -> None:
    text = cluster(f"""\
        profiles:
          default:
            image: img
            ipxe_template: nope
        nodes:
          n[1-4]:
            profiles: [default]
            network:
              default: {{ip: 10.0.0.11, mac: {MACS4}}}
        """)
    err = expect_error(tmp_path, text, 10, 20, "iPXE template `nope` does not exist")
    assert err.message == "node n1: iPXE template `nope` does not exist (and 3 more like it)"


def test_errors_sorted_by_position() -> None:
    a, b, c = Loc("f", 2, 5), Loc("f", 2, 1), Loc("f", 1, 9)
    errs = WWErrors([WWError("A", loc=a, hint="h"), WWError("B", loc=b, hint="h"),
                     WWError("C", loc=c, hint="h"), WWError("A2", loc=a, hint="h")])
    assert [(e.message, e.loc) for e in errs.errors] == [("C", c), ("B", b), ("A (and 1 more like it)", a)]
    assert (errs.message, errs.loc) == ("C", c)


# --- provenance --------------------------------------------------------------------


def test_keep_sources(tmp_path: Path) -> None:
    text = cluster(f"""\
        profiles:
          default:
            image: img
            kernel: {{args: [quiet]}}
            network:
              default: {{device: eth0}}
        nodes:
          n[1-4]:
            profiles: [default]
            network:
              default:
                ip: 10.0.0.11
                mac: {MACS4}
          n5:
            profiles: [default]
            kernel: {{args: [debug]}}
            network:
              default: {{ip: 10.0.0.20, mac: "52:54:00:00:00:05"}}
        """)
    c = load(tmp_path, text, keep_sources=True)
    file = str(tmp_path / "cluster.yaml")
    n2 = c.sources["n2"]
    assert n2["kernel.args"] == Val(["quiet"], Loc(file, 10, 20), "profile default")
    assert n2["image"].source == "profile default"
    assert n2["network.default.device"].source == "profile default"
    # Per node: its own MAC, its IP counted up, at the place written.
    assert n2["network.default.ip"] == Val(ipaddress.IPv4Address("10.0.0.12"), Loc(file, 18, 13), "node")
    assert n2["network.default.mac"] == Val("52:54:00:00:00:02", Loc(file, 19, 36), "node")
    n5 = c.sources["n5"]
    assert n5["kernel.args"].source == "node"
    assert n5["kernel.args"].value == ["quiet", "debug"]
    assert n5["network.default.ip"].source == "node"
    assert set(c.sources) == {"n1", "n2", "n3", "n4", "n5"}
    assert load(tmp_path, text).sources == {}


# --- merge semantics through load_cluster ------------------------------------

MERGE = """\
    profiles:
      base:
        image: img
        comment: from base
        init: /sbin/base
        kernel: {version: "6.1", args: [console=ttyS0, quiet]}
        system_overlays: [wwinit]
        runtime_overlays: [hosts]
      extra:
        comment: from extra
        network: {default: {device: eth9}}
        kernel: {args: [~quiet, debug]}
        system_overlays: [hostname]
      extra2:
        comment: from extra
        network: {default: {device: eth9}}
        kernel: {args: [debug]}
        system_overlays: [hostname]
    nodes:
      forward:
        profiles: [base, extra]
        network: {default: {ip: 10.0.0.11, mac: "52:54:00:00:00:01"}}
      backward:
        profiles: [extra2, base]
        network: {default: {ip: 10.0.0.12, mac: "52:54:00:00:00:02"}}
      own:
        profiles: [base, extra]
        comment: from node
        init: /sbin/own
        kernel: {version: "6.6", args: [~console=ttyS0, nomodeset]}
        runtime_overlays: [~hosts]
        network: {default: {device: ib0, ip: 10.0.0.13, mac: "52:54:00:00:00:03"}}
      dropped:
        profiles: [base, extra, ~extra]
        network: {default: {ip: 10.0.0.14, mac: "52:54:00:00:00:04"}}
    """


@pytest.fixture
def merged(tmp_path: Path) -> Cluster:
    return load(tmp_path, cluster(MERGE))


def test_merge_rightmost_profile_wins_and_lists_append(merged: Cluster) -> None:
    n = merged.node("forward")
    assert n.profiles == ("base", "extra")
    assert (n.comment, n.init, n.device, n.image) == ("from extra", "/sbin/base", "eth9", "img")
    # extra's `~quiet` removes base's quiet; its debug is appended after.
    assert n.kernel == Kernel("6.1", ("console=ttyS0", "debug"))
    assert n.system_overlays == ("wwinit", "hostname")
    assert n.runtime_overlays == ("hosts",)


def test_merge_order_follows_profiles_list(merged: Cluster) -> None:
    n = merged.node("backward")
    assert n.profiles == ("extra2", "base")
    assert n.comment == "from base"
    # Profiles merge in the order named, so base's args come after extra2's.
    assert n.kernel.args == ("debug", "console=ttyS0", "quiet")
    assert n.system_overlays == ("hostname", "wwinit")


def test_merge_node_wins_over_profiles(merged: Cluster) -> None:
    n = merged.node("own")
    assert (n.comment, n.init, n.device) == ("from node", "/sbin/own", "ib0")
    assert n.kernel == Kernel("6.6", ("debug", "nomodeset"))
    assert n.runtime_overlays == ()


def test_merge_tilde_profile_drops_it(merged: Cluster) -> None:
    n = merged.node("dropped")
    assert n.profiles == ("base",)
    assert (n.comment, n.device) == ("from base", "")
    assert n.kernel.args == ("console=ttyS0", "quiet")


NESTED = """\
    profiles:
      base: {image: img, kernel: {args: [base]}}
      net: {kernel: {args: [net]}, comment: net}
      compute: {profiles: [base, net], kernel: {args: [compute]}}
      gpu: {profiles: [compute], kernel: {args: [gpu]}}
    nodes:
      n1: {profiles: [gpu], network: {default: {ip: 10.0.0.11, mac: "52:54:00:00:00:01"}}}
      n2: {profiles: [base, gpu, base], network: {default: {ip: 10.0.0.12, mac: "52:54:00:00:00:02"}}}
      n3: {profiles: [gpu, ~net], network: {default: {ip: 10.0.0.13, mac: "52:54:00:00:00:03"}}}
      n4: {profiles: [compute, net], network: {default: {ip: 10.0.0.14, mac: "52:54:00:00:00:04"}}}
    """


def test_nested_profiles_depth_first(tmp_path: Path) -> None:
    c = load(tmp_path, cluster(NESTED))
    n1 = c.node("n1")
    assert n1.profiles == ("base", "net", "compute", "gpu")
    assert n1.kernel.args == ("base", "net", "compute", "gpu")
    assert n1.comment == "net"


def test_profile_listed_twice_merges_once(tmp_path: Path) -> None:
    c = load(tmp_path, cluster(NESTED))
    assert c.node("n2").profiles == ("base", "net", "compute", "gpu")
    assert c.node("n2").kernel.args == ("base", "net", "compute", "gpu")
    # net comes in through compute already; listing it again does not move it.
    assert c.node("n4").profiles == ("base", "net", "compute")


def test_tilde_drops_nested_profile(tmp_path: Path) -> None:
    n3 = load(tmp_path, cluster(NESTED)).node("n3")
    assert n3.profiles == ("base", "compute", "gpu")
    assert n3.kernel.args == ("base", "compute", "gpu")
    assert n3.comment == ""


def chains(tmp_path: Path, profiles: str, lists: list[str]) -> list[tuple[str, ...]]:
    """node.profiles of one node per profile list in `lists`."""
    nodes = "".join(f"  n{i}:\n    profiles: {plist}\n    image: img\n"
                    f"    network: {{default: {{ip: 10.0.0.{10 + i}, "
                    f'mac: "52:54:00:00:00:{10 + i}"}}}}\n' for i, plist in enumerate(lists))
    c = load(tmp_path, cluster(f"profiles:\n{textwrap.indent(textwrap.dedent(profiles), '  ')}"
                               f"nodes:\n{nodes}"))
    return [c.node(f"n{i}").profiles for i in range(len(lists))]


def test_expand_profiles_depth_first_and_once(tmp_path: Path) -> None:
    profiles = """\
        a: {image: img}
        b: {profiles: [a]}
        d: {}
        c: {profiles: [b, d]}
        """
    assert chains(tmp_path, profiles, ["[c]", "[a, c, a]", "[d, b]", "[]", "[a]"]) == [
        ("a", "b", "d", "c"), ("a", "b", "d", "c"), ("d", "a", "b"), (), ("a",)]


def test_expand_profiles_tilde(tmp_path: Path) -> None:
    profiles = """\
        a: {image: img}
        b: {profiles: [a]}
        c: {profiles: [~a], image: img}
        """
    assert chains(tmp_path, profiles, ["[b, ~b]", "[~a, b]", "[a, c]", "[a, ~b]"]) == [
        # Dropping b keeps what b brought in; where `~` stands in the list does not matter.
        ("a",), ("b",),
        # A profile's own `~a` drops a too; dropping a defined profile that is not in the
        # chain is harmless (an undefined one is an error, tested below).
        ("c",), ("a",)]


def test_expand_profiles_cycle_of_three(tmp_path: Path) -> None:
    text = cluster("""\
        profiles:
          a: {profiles: [b]}
          b: {profiles: [c]}
          c: {profiles: [a]}
        nodes:
          n1:
            profiles: [a]
            image: img
            <NET>
        """)
    err = expect_error(tmp_path, text, 10, 17, "a -> b -> c -> a")
    assert err.hint == "remove one of these profile references"


# --- merge semantics: the pure functions in reader ------------------------------


def test_apply_list() -> None:
    acc = ["quiet", "console=ttyS0"]
    assert apply_list(acc, ["~quiet", "debug"]) == ["console=ttyS0", "debug"]
    assert apply_list(["a", "b", "a"], ["~a"]) == ["b"]  # every copy
    assert apply_list(["a"], ["~nothing", "a"]) == ["a", "a"]
    assert apply_list([], []) == []
    assert acc == ["quiet", "console=ttyS0"]  # pure


def test_deep_merge() -> None:
    acc: dict[str, Any] = {"a": 1, "m": {"x": 1, "l": [1, 2], "n": {"k": 1}}}
    new = {"m": {"l": [3], "n": {"j": 2}, "y": 2}, "b": 2}
    assert deep_merge(acc, new) == {"a": 1, "b": 2, "m": {"x": 1, "l": [3], "n": {"k": 1, "j": 2}, "y": 2}}
    assert acc == {"a": 1, "m": {"x": 1, "l": [1, 2], "n": {"k": 1}}}  # pure
    assert deep_merge({"a": 1}, [1]) == [1]
    assert deep_merge([1], {"a": 1}) == {"a": 1}
    assert deep_merge({"a": {"b": 1}}, {"a": None}) == {"a": None}


def test_merge_scalars_last_wins() -> None:
    out = merge(NODE, {"comment": val("one", 1), "init": val("/a", 1)}, {"comment": val("two", 2)})
    assert out == {"comment": val("two", 2), "init": val("/a", 1)}


def test_merge_lists_append_and_remove() -> None:
    layers: list[Tree] = [
        {"system_overlays": val(["quiet", "console=ttyS0"], 1, "profile a")},
        {"system_overlays": val(["~quiet", "debug"], 2, "profile b")},
        {"system_overlays": val(["quiet"], 3, "node")},
    ]
    out: Tree = {}
    for layer in layers:
        out = merge(NODE, out, layer)
    # The merged list is where the last layer set it.
    assert out == {"system_overlays": val(["console=ttyS0", "debug", "quiet"], 3, "node")}
    # Pure: the input layers are unchanged.
    assert layers[0]["system_overlays"].value == ["quiet", "console=ttyS0"]


def test_merge_structs_dicts_tags_and_free() -> None:
    acc: Tree = {
        "kernel": {"version": val("6.1", 1), "args": val(["quiet"], 1)},
        "network": {"default": {"device": val("eth0", 2)}, "ib": {"ip": val("10.1.0.1", 2)}},
        "tags": {"a": val("1", 3), "b": val("1", 3)},
        "resources": val({"m": {"x": 1, "l": [1]}}, 4),
    }
    layer: Tree = {
        "kernel": {"args": val(["debug"], 5)},
        "network": {"default": {"ip": val("10.0.0.1", 6)}, "eth1": {"device": val("eth1", 6)}},
        "tags": {"b": val("2", 7)},
        "resources": val({"m": {"l": [2]}}, 8),
    }
    out = merge(NODE, acc, layer)
    assert out == {
        "kernel": {"version": val("6.1", 1), "args": val(["quiet", "debug"], 5)},
        "network": {"default": {"device": val("eth0", 2), "ip": val("10.0.0.1", 6)},
                    "ib": {"ip": val("10.1.0.1", 2)}, "eth1": {"device": val("eth1", 6)}},
        "tags": {"a": val("1", 3), "b": val("2", 7)},
        "resources": val({"m": {"x": 1, "l": [2]}}, 8),
    }
    # Pure: neither input changes.
    assert acc["network"] == {"default": {"device": val("eth0", 2)}, "ib": {"ip": val("10.1.0.1", 2)}}
    assert acc["resources"].value == {"m": {"x": 1, "l": [1]}}
    assert merge(NODE, {}, {}) == {}
    assert merge(NODE, acc, {}) == acc


def test_instantiate_per_node_and_counting() -> None:
    ip = ipaddress.IPv4Address("10.0.0.11")
    tree: Tree = {
        "comment": val("c"),
        "network": {"default": {"mac": val(["m0", "m1", "m2"]), "ip": val(ip), "device": val("eth0")}},
        "ipmi": {"ip": val(ipaddress.IPv4Address("10.2.0.1")), "user": val("u")},
    }
    first = instantiate(NODE, tree, 0)
    assert first["network"]["default"] == {"mac": val("m0"), "ip": val(ip), "device": val("eth0")}
    third = instantiate(NODE, tree, 2)
    assert third["comment"] == val("c")
    assert third["network"]["default"] == {"mac": val("m2"), "ip": val(ip + 2), "device": val("eth0")}
    assert third["ipmi"] == {"ip": val(ipaddress.IPv4Address("10.2.0.3")), "user": val("u")}
    # Past the last address: None, for the model to report.
    top = {"ip": val(ipaddress.IPv4Address("255.255.255.254"))}
    assert instantiate(NETDEV, top, 1)["ip"].value == ipaddress.IPv4Address("255.255.255.255")
    assert instantiate(NETDEV, top, 2)["ip"].value is None


def test_flatten_and_plain() -> None:
    tree: Tree = {"kernel": {"args": val(["a"])}, "network": {"default": {"ip": val("x")}}, "image": val("i")}
    assert flatten(tree) == {"kernel.args": val(["a"]), "network.default.ip": val("x"), "image": val("i")}
    assert plain(tree) == {"kernel": {"args": ["a"]}, "network": {"default": {"ip": "x"}}, "image": "i"}


# --- YAML anchors, aliases and `<<` ------------------------------------------


def test_anchor_alias_and_merge_key(tmp_path: Path) -> None:
    c = load(tmp_path, cluster("""\
        profiles:
          base: &base
            image: img
            comment: from anchor
            system_overlays: &ovl [wwinit, hosts]
        nodes:
          n01:
            <<: *base
            comment: explicit
            runtime_overlays: *ovl
            <NET>
        """))
    n = c.node("n01")
    assert n.profiles == ()
    assert (n.image, n.comment) == ("img", "explicit")
    assert n.system_overlays == ("wwinit", "hosts")
    assert n.runtime_overlays == ("wwinit", "hosts")


def test_merge_key_list_first_wins(tmp_path: Path) -> None:
    c = load(tmp_path, cluster("""\
        profiles:
          one: &one {comment: one, root: tmpfs}
          two: &two {comment: two, init: /sbin/two}
        nodes:
          n01:
            <<: [*one, *two]
            image: img
            <NET>
        """))
    n = c.node("n01")
    assert (n.comment, n.root, n.init) == ("one", "tmpfs", "/sbin/two")


def test_merged_unknown_key_reported_once_at_anchor(tmp_path: Path) -> None:
    text = cluster("""\
        profiles:
          p: &p
            imgae: img
        nodes:
          n01:
            <<: *p
            <NET>
        """)
    # Read twice (profile p and node n01), written once: one error, where it is written.
    err = expect_error(tmp_path, text, 9, 5, "unknown key `imgae` in profile p")
    assert err.hint == "did you mean `image`?"


def test_merged_unknown_key_reported_at_node(tmp_path: Path) -> None:
    text = cluster("""\
        profiles:
          p: &p
            comment: x
        nodes:
          n01:
            <<: *p
            imgae: img
            <NET>
        """)
    expect_error(tmp_path, text, 13, 5, "unknown key `imgae` in node n01")


# --- yamlsrc and schema directly -----------------------------------------------


def test_load_text_kinds_and_positions() -> None:
    root = load_text(textwrap.dedent("""\
        a: 52:54:00:12:34:56
        b: "52:54:00:12:34:56"
        c: no
        d: 1.5
        e:
        f: 2024-01-02
        g: [x, 'y']
        h: {k: v}
        """), "f.yaml")
    assert isinstance(root, YMap)
    assert root.keys() == list("abcdefgh")
    values = dict(root.items)
    kinds = {k.text: kind_of(v) for k, v in values.items()}
    assert kinds == {"a": "int", "b": "str", "c": "bool", "d": "float", "e": "null",
                     "f": "timestamp", "g": "seq", "h": "map"}
    by_key = {k.text: v for k, v in values.items()}
    a, b = by_key["a"], by_key["b"]
    assert isinstance(a, YScalar) and isinstance(b, YScalar)
    assert (a.text, a.quoted, a.loc) == ("52:54:00:12:34:56", False, Loc("f.yaml", 1, 4))
    assert (b.text, b.quoted, b.loc) == ("52:54:00:12:34:56", True, Loc("f.yaml", 2, 4))
    g = by_key["g"]
    assert isinstance(g, YSeq)
    assert [(i.text, i.loc.col) for i in g.items if isinstance(i, YScalar)] == [("x", 5), ("y", 8)]


def test_load_text_empty() -> None:
    assert load_text("", "f.yaml") == YMap((), Loc("f.yaml", 1, 1))


def test_load_text_merge_keys() -> None:
    root = load_text("a: &a {x: 1, y: 1}\nb: &b {x: 2, z: 2}\nc:\n  <<: [*a, *b]\n  y: 3\n", "f")
    assert isinstance(root, YMap)
    c = dict((k.text, v) for k, v in root.items)["c"]
    assert isinstance(c, YMap)
    got = {k.text: (v.text if isinstance(v, YScalar) else None) for k, v in c.items}
    assert got == {"x": "1", "y": "3", "z": "2"}


def test_load_file(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("k: v\n")
    node = load_file(path)
    assert isinstance(node, YMap)
    assert node.items[0][0].loc == Loc(str(path), 1, 1)


def test_schema_as_mac_normalises() -> None:
    assert schema.as_mac(value_node('"52-54-00-AB-cd-EF"'), "mac") == "52:54:00:ab:cd:ef"
    assert schema.as_mac(value_node("52:54:00:ab:cd:ef"), "mac") == "52:54:00:ab:cd:ef"


def test_schema_as_list_forms() -> None:
    assert schema.as_list(value_node("quiet"), "k") == ["quiet"]
    assert schema.as_list(value_node(""), "k") == []
    assert schema.as_list(value_node("[a, b]"), "k") == ["a", "b"]


def test_schema_as_map_null_is_empty() -> None:
    m = schema.as_map(value_node(""), "m")
    assert m.items == ()


def test_schema_as_ipv4_and_network() -> None:
    assert schema.as_ipv4(value_node("10.1.2.3"), "ip") == ipaddress.IPv4Address("10.1.2.3")
    assert schema.as_network(value_node("10.1.0.0/16"), "n") == ipaddress.IPv4Network("10.1.0.0/16")
    with pytest.raises(WWError, match="not an IPv4 address") as info:
        schema.as_ipv4(value_node("fe80::1"), "ip")
    assert info.value.loc == Loc("f.yaml", 1, 4)


def test_schema_as_netmask_and_choice() -> None:
    assert schema.as_netmask(value_node("255.255.240.0"), "m") == "255.255.240.0"
    with pytest.raises(WWError, match="prefix length") as info:
        schema.as_netmask(value_node('"20"'), "m")
    assert info.value.hint == "write 255.255.240.0"
    assert schema.as_choice(value_node("lan"), "i", ("lan", "lanplus")) == "lan"
    with pytest.raises(WWError, match="is not one of lan, lanplus"):
        schema.as_choice(value_node("ipmi"), "i", ("lan", "lanplus"))


def test_schema_as_free_types() -> None:
    assert schema.as_free(value_node("{a: [1, x, no, ~, 1.5], b: {c: '2'}}")) == {
        "a": [1, "x", False, None, 1.5], "b": {"c": "2"}}


@pytest.mark.parametrize("name", ["a", "n01", "A.b_c-d", "0x"])
def test_schema_as_name_accepts(name: str) -> None:
    assert schema.as_name(value_node(name), "name") == name


@pytest.mark.parametrize("name", ["-a", ".a", "a b", "a/b", "ä"])
def test_schema_as_name_rejects(name: str) -> None:
    with pytest.raises(WWError, match="is not a valid name") as info:
        schema.as_name(value_node(f'"{name}"'), "name")
    assert info.value.hint


def test_schema_check_keys() -> None:
    node = schema.as_map(value_node("{colour: x}"), "m")
    with pytest.raises(WWError) as info:
        schema.check_keys(node, {"color": "", "size": ""}, "thing")
    assert info.value.message == "unknown key `colour` in thing"
    assert info.value.hint == "did you mean `color`?"
    assert info.value.loc == Loc("f.yaml", 1, 5)
    schema.check_keys(node, {"colour": ""}, "thing")  # allowed: no error


def test_dropping_an_undefined_profile_is_an_error(tmp_path: Path) -> None:
    text = cluster(f"profiles:\n  base: {{image: img}}\nnodes:\n  n1:\n    profiles: [base, ~bsae]\n{NET}")
    errors = errors_of(tmp_path, text)
    assert len(errors) == 1, show(errors)
    assert "`~bsae` drops profile `bsae`, which is not defined" in errors[0].message
    assert errors[0].hint == "defined profiles: base"


def test_primary_false_is_respected(tmp_path: Path) -> None:
    text = cluster("nodes:\n  n1:\n    image: img\n    network:\n"
                   "      default: {mac: \"52:54:00:00:00:01\", ip: 10.0.0.11, primary: false}\n"
                   "      boot: {mac: \"52:54:00:00:00:02\", ip: 10.0.0.12}\n")
    (tmp_path / "cluster.yaml").write_text(text)
    node = load_cluster(tmp_path / "cluster.yaml").node("n1")
    assert node.primary_network == "boot" and node.mac == "52:54:00:00:00:02"
    text = text.replace("ip: 10.0.0.12}", "ip: 10.0.0.12, primary: false}")
    errors = errors_of(tmp_path, text)
    assert len(errors) == 1 and "every network device is marked primary: false" in errors[0].message


def test_a_key_type_hostkeys_cannot_make_is_an_error_at_its_line(tmp_path: Path) -> None:
    """ssh.key_types is checked against the types the build can generate, when loaded, not when built."""
    text = HEAD + "ssh:\n  key_types: [ed25519, dsa]\nnodes: {}\n"
    err = expect_error(tmp_path, text, 8, 24, "`dsa` is not one of ed25519, ecdsa, rsa")
    assert "choose from" in (err.hint or "")
