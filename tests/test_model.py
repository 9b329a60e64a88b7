"""Unit tests of reading cluster.yaml: toolchain.yamlsrc, toolchain.schema and toolchain.model.

Hermetic and root-free: each test writes its own YAML under tmp_path (or reads
the shipped cluster.yaml). Error tests check the exact file:line:col against the
YAML text they write; in texts built with `cluster()`, the body starts at line 7.
"""

from __future__ import annotations

import ipaddress
import textwrap
from pathlib import Path

import pytest

from toolchain import schema
from toolchain.errors import Loc, WWError
from toolchain.model import (
    DEFAULT_INIT,
    Cluster,
    Head,
    Image,
    Layer,
    expand_profiles,
    load_cluster,
    merge_layers,
)
from toolchain.yamlsrc import YMap, YNode, YScalar, YSeq, kind_of, load_file, load_text

REPO = Path(__file__).resolve().parent.parent

# Lines 1-6 of most test files.
HEAD = """\
head:
  ip: 10.0.0.1
  network: 10.0.0.0/24
images:
  img:
    root: /srv/img
"""


def cluster(body: str) -> str:
    """HEAD followed by `body` (dedented): the body's first line is line 7."""
    return HEAD + textwrap.dedent(body)


def load(tmp_path: Path, text: str) -> Cluster:
    path = tmp_path / "cluster.yaml"
    path.write_text(text, encoding="utf-8")
    return load_cluster(path)


def expect_error(tmp_path: Path, text: str, line: int, col: int, message: str) -> WWError:
    """Load `text`; it must fail at line:col with `message` in the message and some hint."""
    with pytest.raises(WWError) as info:
        load(tmp_path, text)
    err = info.value
    file = str(tmp_path / "cluster.yaml")
    assert err.loc == Loc(file, line, col), str(err)
    assert message in err.message, str(err)
    assert err.hint, f"no hint in: {err}"
    assert f"{file}:{line}:{col}: error: " in str(err)
    assert f"hint: {err.hint}" in str(err)
    return err


def value_node(yaml_value: str) -> YNode:
    """The YAML node of `yaml_value`, as it would appear after `v: ` on line 1."""
    root = load_text(f"v: {yaml_value}\n", "f.yaml")
    assert isinstance(root, YMap)
    return root.items[0][1]


def layer(**settings: object) -> Layer:
    """A model Layer from keyword arguments, every value set at one dummy place."""
    return {key: (value, Loc("f.yaml", 1, 1)) for key, value in settings.items()}


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
        assert n.kernel_args == ("console=ttyS0", "quiet")
        assert n.system_overlays == ("wwinit", "hostname")
        assert n.runtime_overlays == ("hosts", "motd")
        assert (n.netmask, n.prefix) == ("255.255.255.0", 24)
        assert (n.init, n.gateway, n.device, n.comment) == (DEFAULT_INIT, "", "", "")
    # Every node of the hostlist points at the `n[01-04]:` key (line 24).
    assert set(c.node_locs) == {"n01", "n02", "n03", "n04"}
    assert {loc.line for loc in c.node_locs.values()} == {24}


def test_cluster_node_lookup_and_helpers() -> None:
    c = load_cluster(REPO / "cluster.yaml")
    n = c.node("n02")
    assert n.ip == "10.99.0.12"
    assert n.mac_hyphen == "52-54-00-99-00-12"
    assert '"name": "n02"' in n.to_json()
    with pytest.raises(KeyError):
        c.node("n05")


def test_minimal_cluster_defaults(tmp_path: Path) -> None:
    c = load(tmp_path, cluster("""\
        nodes:
          n01:
            ip: 10.0.0.11
            mac: "52:54:00:AB:CD:EF"
            image: img
        """))
    assert c.head.http == "http://10.0.0.1"
    assert c.images["img"] == Image("img", "root", root="/srv/img")
    (n,) = c.nodes
    assert n.mac == "52:54:00:ab:cd:ef"  # normalised to lower case
    assert (n.init, n.kernel_args, n.profiles) == (DEFAULT_INIT, (), ())
    assert c.node_locs["n01"] == Loc(str(tmp_path / "cluster.yaml"), 8, 3)


def test_empty_nodes_and_hostlist_ip_counting(tmp_path: Path) -> None:
    assert load(tmp_path, cluster("nodes:\n")).nodes == ()
    c = load(tmp_path, cluster("""\
        nodes:
          r[1-2]n[1-2]:
            ip: 10.0.0.100
            mac: ["52:54:00:00:00:01", "52:54:00:00:00:02", "52:54:00:00:00:03", "52:54:00:00:00:04"]
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
    assert err.hint == "allowed here: head, images, nodes, profiles"


def test_unknown_key_in_head(tmp_path: Path) -> None:
    text = "head:\n  ip: 10.0.0.1\n  network: 10.0.0.0/24\n  htp: http://10.0.0.1\n"
    err = expect_error(tmp_path, text, 4, 3, "unknown key `htp` in head")
    assert err.hint == "did you mean `http`?"


def test_unknown_key_in_image(tmp_path: Path) -> None:
    text = "head:\n  ip: 10.0.0.1\n  network: 10.0.0.0/24\nimages:\n  img:\n    rot: /srv/img\n"
    err = expect_error(tmp_path, text, 6, 5, "unknown key `rot` in image img")
    assert err.hint == "did you mean `root`?"


def test_unknown_key_in_demo_image(tmp_path: Path) -> None:
    text = ("head:\n  ip: 10.0.0.1\n  network: 10.0.0.0/24\n"
            "images:\n  img:\n    demo:\n      kernal_package: foo\n")
    err = expect_error(tmp_path, text, 7, 7, "unknown key `kernal_package` in image img demo")
    assert err.hint == "did you mean `kernel_package`?"


def test_unknown_key_in_profile(tmp_path: Path) -> None:
    text = cluster("""\
        profiles:
          p:
            image: img
            kernel_arg: [quiet]
        """)
    err = expect_error(tmp_path, text, 10, 5, "unknown key `kernel_arg` in profile p")
    assert err.hint == "did you mean `kernel_args`?"


def test_node_only_key_in_profile(tmp_path: Path) -> None:
    text = cluster("""\
        profiles:
          p:
            mac: "52:54:00:00:00:01"
        """)
    expect_error(tmp_path, text, 9, 5, "unknown key `mac` in profile p")


def test_unknown_key_in_node(tmp_path: Path) -> None:
    text = cluster("""\
        nodes:
          n01:
            ip: 10.0.0.11
            mac: "52:54:00:00:00:01"
            imgae: img
        """)
    err = expect_error(tmp_path, text, 11, 5, "unknown key `imgae` in node n01")
    assert err.hint == "did you mean `image`?"


# --- user mistakes: wrong types ----------------------------------------------


def test_list_where_string_expected(tmp_path: Path) -> None:
    text = cluster("""\
        nodes:
          n01:
            ip: 10.0.0.11
            mac: "52:54:00:00:00:01"
            image: [img]
        """)
    err = expect_error(tmp_path, text, 11, 12, "image must be a string")
    assert "reads as a list" in err.message


def test_block_list_where_string_expected(tmp_path: Path) -> None:
    text = cluster("""\
        nodes:
          n01:
            ip:
              - 10.0.0.11
        """)
    expect_error(tmp_path, text, 10, 7, "ip must be a string, but YAML reads as a list")


def test_mapping_where_list_expected(tmp_path: Path) -> None:
    text = cluster("""\
        profiles:
          p:
            kernel_args:
              quiet: yes
        """)
    err = expect_error(tmp_path, text, 10, 7, "kernel_args must be a list")
    assert "reads as a mapping" in err.message


def test_flow_mapping_where_list_expected(tmp_path: Path) -> None:
    text = cluster("profiles:\n  p:\n    system_overlays: {wwinit: 1}\n")
    expect_error(tmp_path, text, 9, 22, "system_overlays must be a list")


def test_list_where_mapping_expected(tmp_path: Path) -> None:
    err = expect_error(tmp_path, cluster("nodes: [n01]\n"), 7, 8, "nodes must be a mapping")
    assert "reads as a list" in err.message


def test_number_in_a_list_of_strings(tmp_path: Path) -> None:
    text = cluster("profiles:\n  p:\n    kernel_args: [quiet, 1]\n")
    err = expect_error(tmp_path, text, 9, 26, "each item of kernel_args must be a string")
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


def test_boolean_node_name(tmp_path: Path) -> None:
    text = cluster("nodes:\n  no:\n    ip: 10.0.0.11\n")
    err = expect_error(tmp_path, text, 8, 3, "node name must be a string")
    assert err.hint == 'put it in quotes: "no"'


def test_boolean_profile_name(tmp_path: Path) -> None:
    err = expect_error(tmp_path, cluster("profiles:\n  off: {}\n"), 8, 3, "profile name must be a string")
    assert err.hint == 'put it in quotes: "off"'


def test_invalid_image_name(tmp_path: Path) -> None:
    text = cluster("profiles:\n  p:\n    image: my image\n")
    expect_error(tmp_path, text, 9, 12, "image `my image` is not a valid name")


# --- user mistakes: MAC addresses --------------------------------------------


def test_unquoted_mac_is_base60(tmp_path: Path) -> None:
    text = cluster("""\
        nodes:
          n01:
            ip: 10.0.0.11
            mac: 52:54:00:12:34:56
            image: img
        """)
    err = expect_error(tmp_path, text, 10, 10, "base-60")
    assert err.hint == 'put the MAC in quotes: "52:54:00:12:34:56"'


def test_unquoted_mac_in_a_list(tmp_path: Path) -> None:
    text = cluster("""\
        nodes:
          n[1-2]:
            ip: 10.0.0.11
            mac:
              - "52:54:00:12:34:55"
              - 52:54:00:12:34:56
            image: img
        """)
    err = expect_error(tmp_path, text, 12, 9, "base-60")
    assert "quotes" in err.hint


@pytest.mark.parametrize("mac", [
    "52:54:00:12:34", "52:54:00:12:34:5g", "52:54-00:12:34:56", "5254.0012.3456",
    "52:54:00:12:34:56:78", "52:54:00:12:34:567", "",
])
def test_bad_mac_string(tmp_path: Path, mac: str) -> None:
    text = cluster(f'nodes:\n  n01:\n    ip: 10.0.0.11\n    mac: "{mac}"\n    image: img\n')
    expect_error(tmp_path, text, 10, 10, f"mac `{mac}` is not a MAC address")


def test_wrong_mac_count_for_hostlist(tmp_path: Path) -> None:
    text = cluster("""\
        nodes:
          n[01-03]:
            ip: 10.0.0.11
            mac: ["52:54:00:00:00:01", "52:54:00:00:00:02"]
            image: img
        """)
    expect_error(tmp_path, text, 10, 10, "`n[01-03]` names 3 node(s) but gives 2 MAC(s)")


def test_single_mac_for_hostlist(tmp_path: Path) -> None:
    text = cluster("""\
        nodes:
          n[1-2]:
            ip: 10.0.0.11
            mac: "52:54:00:00:00:01"
            image: img
        """)
    expect_error(tmp_path, text, 10, 10, "names 2 node(s) but gives 1 MAC(s)")


def test_mac_list_for_single_node(tmp_path: Path) -> None:
    text = cluster("""\
        nodes:
          n1:
            ip: 10.0.0.11
            mac: ["52:54:00:00:00:01", "52:54:00:00:00:02"]
            image: img
        """)
    expect_error(tmp_path, text, 10, 10, "names 1 node(s) but gives 2 MAC(s)")


# --- user mistakes: duplicates -----------------------------------------------


def test_duplicate_node_key(tmp_path: Path) -> None:
    text = cluster("""\
        nodes:
          n01:
            ip: 10.0.0.11
            mac: "52:54:00:00:00:01"
            image: img
          n01:
            ip: 10.0.0.12
            mac: "52:54:00:00:00:02"
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
            ip: 10.0.0.11
            ip: 10.0.0.12
        """)
    expect_error(tmp_path, text, 10, 5, "duplicate key 'ip' (first at line 9)")


def test_duplicate_top_level_key(tmp_path: Path) -> None:
    expect_error(tmp_path, cluster("images: {}\n"), 7, 1, "duplicate key 'images' (first at line 4)")


def test_duplicate_node_from_overlapping_hostlists(tmp_path: Path) -> None:
    text = cluster("""\
        nodes:
          n[01-02]:
            ip: 10.0.0.11
            mac: ["52:54:00:00:00:01", "52:54:00:00:00:02"]
            image: img
          n02:
            ip: 10.0.0.20
            mac: "52:54:00:00:00:03"
            image: img
        """)
    expect_error(tmp_path, text, 12, 3, "node n02 is defined twice (first at line 8)")


def test_duplicate_mac(tmp_path: Path) -> None:
    # Same MAC written differently: both normalise to 52:54:00:aa:00:01.
    text = cluster("""\
        nodes:
          n01:
            ip: 10.0.0.11
            mac: "52:54:00:AA:00:01"
            image: img
          n02:
            ip: 10.0.0.12
            mac: "52-54-00-aa-00-01"
            image: img
        """)
    expect_error(tmp_path, text, 12, 3, "nodes n01 and n02 have the same MAC 52:54:00:aa:00:01")


def test_duplicate_mac_within_hostlist(tmp_path: Path) -> None:
    text = cluster("""\
        nodes:
          n[1-2]:
            ip: 10.0.0.11
            mac: ["52:54:00:00:00:01", "52:54:00:00:00:01"]
            image: img
        """)
    expect_error(tmp_path, text, 8, 3, "nodes n1 and n2 have the same MAC")


def test_duplicate_ip(tmp_path: Path) -> None:
    text = cluster("""\
        nodes:
          n01:
            ip: 10.0.0.11
            mac: "52:54:00:00:00:01"
            image: img
          n02:
            ip: 10.0.0.11
            mac: "52:54:00:00:00:02"
            image: img
        """)
    expect_error(tmp_path, text, 12, 3, "nodes n01 and n02 have the same IP 10.0.0.11")


def test_duplicate_ip_from_auto_increment(tmp_path: Path) -> None:
    # n[01-03] takes .11, .12 and .13; n04 asks for .13 again.
    text = cluster("""\
        nodes:
          n[01-03]:
            ip: 10.0.0.11
            mac: ["52:54:00:00:00:01", "52:54:00:00:00:02", "52:54:00:00:00:03"]
            image: img
          n04:
            ip: 10.0.0.13
            mac: "52:54:00:00:00:04"
            image: img
        """)
    expect_error(tmp_path, text, 12, 3, "nodes n03 and n04 have the same IP 10.0.0.13")


# --- user mistakes: addresses ------------------------------------------------


def test_node_ip_is_head_ip(tmp_path: Path) -> None:
    text = cluster('nodes:\n  n01:\n    ip: 10.0.0.1\n    mac: "52:54:00:00:00:01"\n    image: img\n')
    expect_error(tmp_path, text, 8, 3, "node n01 has the head's IP 10.0.0.1")


def test_node_ip_is_head_ip_via_auto_increment(tmp_path: Path) -> None:
    text = cluster("""\
        nodes:
          n[1-2]:
            ip: 10.0.0.0
            mac: ["52:54:00:00:00:01", "52:54:00:00:00:02"]
            image: img
        """)
    # .0 is the network address: that is found first, at the ip.
    expect_error(tmp_path, text, 9, 9, "node n1 would get IP 10.0.0.0, outside the usable addresses")


@pytest.mark.parametrize("ip", ["10.0.1.11", "192.168.0.11", "10.0.0.0", "10.0.0.255"])
def test_node_ip_outside_head_network(tmp_path: Path, ip: str) -> None:
    text = cluster(f'nodes:\n  n01:\n    ip: {ip}\n    mac: "52:54:00:00:00:01"\n    image: img\n')
    expect_error(tmp_path, text, 9, 9,
                 f"node n01 would get IP {ip}, outside the usable addresses of 10.0.0.0/24")


def test_auto_increment_runs_past_network_end(tmp_path: Path) -> None:
    text = cluster("""\
        nodes:
          n[1-4]:
            ip: 10.0.0.252
            mac: ["52:54:00:00:00:01", "52:54:00:00:00:02", "52:54:00:00:00:03", "52:54:00:00:00:04"]
            image: img
        """)
    expect_error(tmp_path, text, 9, 9, "node n4 would get IP 10.0.0.255")


def test_auto_increment_runs_into_next_network(tmp_path: Path) -> None:
    text = ("head:\n  ip: 10.0.0.1\n  network: 10.0.0.0/23\nimages:\n  img:\n    root: /srv/img\n"
            "nodes:\n  n[1-3]:\n    ip: 10.0.1.253\n"
            '    mac: ["52:54:00:00:00:01", "52:54:00:00:00:02", "52:54:00:00:00:03"]\n    image: img\n')
    expect_error(tmp_path, text, 9, 9, "node n3 would get IP 10.0.1.255")


def test_bad_node_ip(tmp_path: Path) -> None:
    text = cluster('nodes:\n  n01:\n    ip: 10.0.0.256\n    mac: "52:54:00:00:00:01"\n    image: img\n')
    expect_error(tmp_path, text, 9, 9, "ip `10.0.0.256` is not an IPv4 address")


def test_head_ip_outside_head_network(tmp_path: Path) -> None:
    text = "head:\n  ip: 10.0.1.1\n  network: 10.0.0.0/24\n"
    expect_error(tmp_path, text, 2, 7, "head ip 10.0.1.1 is not inside the cluster network 10.0.0.0/24")


def test_head_network_with_host_bits(tmp_path: Path) -> None:
    text = "head:\n  ip: 10.0.0.1\n  network: 10.0.0.1/24\n"
    expect_error(tmp_path, text, 3, 12, "head network `10.0.0.1/24` is not an IPv4 network")


@pytest.mark.parametrize("url", [
    "https://10.0.0.1", "http://10.0.0.1/boot", "http://10.0.0.1?x=1", "10.0.0.1",
    "http://10.0.0.1:99999", "http://10.0.0.1:port", "http://[::1",
])
def test_bad_head_http(tmp_path: Path, url: str) -> None:
    text = f"head:\n  ip: 10.0.0.1\n  network: 10.0.0.0/24\n  http: {url}\n"
    expect_error(tmp_path, text, 4, 9, f"head http `{url}` is not a plain http://host[:port] URL")


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
    text = "head:\n" + "".join(lines.values())
    expect_error(tmp_path, text, 2, 3, f"head has no `{missing}`")


def test_cluster_file_not_a_mapping(tmp_path: Path) -> None:
    expect_error(tmp_path, "- head\n", 1, 1, "the cluster file must be a mapping")


# --- user mistakes: references and hostlists --------------------------------


def test_undefined_profile(tmp_path: Path) -> None:
    text = cluster("""\
        profiles:
          base: {image: img}
        nodes:
          n01:
            profiles: [base, nope]
            ip: 10.0.0.11
            mac: "52:54:00:00:00:01"
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
            ip: 10.0.0.11
            mac: "52:54:00:00:00:01"
        """)
    err = expect_error(tmp_path, text, 9, 12, "image `nope` is not defined")
    assert err.hint == "defined images: img"


def test_undefined_image_in_node(tmp_path: Path) -> None:
    text = cluster('nodes:\n  n01:\n    ip: 10.0.0.11\n    mac: "52:54:00:00:00:01"\n    image: nope\n')
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
            ip: 10.0.0.11
            mac: "52:54:00:00:00:01"
            image: img
        """)
    # The reference that closes the cycle: b's list, on line 11.
    expect_error(tmp_path, text, 11, 15, "profiles include each other in a cycle: a -> b -> a")


def test_profile_includes_itself(tmp_path: Path) -> None:
    text = cluster("profiles:\n  a:\n    profiles: [a]\nnodes:\n  n01:\n    profiles: [a]\n")
    expect_error(tmp_path, text, 9, 15, "cycle: a -> a")


@pytest.mark.parametrize("missing", ["ip", "mac", "image"])
def test_node_setting_missing(tmp_path: Path, missing: str) -> None:
    settings = {"ip": "    ip: 10.0.0.11\n", "mac": '    mac: "52:54:00:00:00:01"\n',
                "image": "    image: img\n"}
    del settings[missing]
    text = cluster("nodes:\n  n01:\n" + "".join(settings.values()))
    expect_error(tmp_path, text, 9, 5, f"node n01 has no `{missing}`")


@pytest.mark.parametrize(("key", "problem"), [
    ("n[1-", "`[` without `]`"),
    ("n[3-1]", "goes backwards"),
    ("n[a-b]", "is not a number"),
    ('"n 01"', "characters not allowed"),
    ('"n1,,n2"', "empty name between commas"),
])
def test_bad_hostlist_key(tmp_path: Path, key: str, problem: str) -> None:
    text = cluster(f"nodes:\n  {key}:\n    ip: 10.0.0.11\n")
    err = expect_error(tmp_path, text, 8, 3, "is not a valid hostlist")
    assert problem in err.message


def test_hostlist_key_gives_invalid_node_name(tmp_path: Path) -> None:
    text = cluster("nodes:\n  -n[1-2]:\n    ip: 10.0.0.11\n")
    expect_error(tmp_path, text, 8, 3, "node name `-n1` is not valid")


def test_image_needs_one_builder(tmp_path: Path) -> None:
    text = "head:\n  ip: 10.0.0.1\n  network: 10.0.0.0/24\nimages:\n  img:\n    exclude: [a]\n"
    expect_error(tmp_path, text, 6, 5, "image img needs exactly one of `demo` or `root`")


def test_image_root_must_be_absolute(tmp_path: Path) -> None:
    text = "head:\n  ip: 10.0.0.1\n  network: 10.0.0.0/24\nimages:\n  img:\n    root: srv/img\n"
    err = expect_error(tmp_path, text, 6, 11, "image img root `srv/img` must be an absolute path")
    assert err.hint == "write /srv/img if that is what you mean"


def test_bad_init_path(tmp_path: Path) -> None:
    text = cluster("profiles:\n  p:\n    init: sbin/init\n")
    expect_error(tmp_path, text, 9, 11, "init `sbin/init` must be an absolute path")


# --- merge semantics through load_cluster ------------------------------------

MERGE = """\
    profiles:
      base:
        image: img
        comment: from base
        init: /sbin/base
        kernel_args: [console=ttyS0, quiet]
        system_overlays: [wwinit]
        runtime_overlays: [hosts]
      extra:
        comment: from extra
        device: eth9
        kernel_args: [~quiet, debug]
        system_overlays: [hostname]
    nodes:
      forward:
        profiles: [base, extra]
        ip: 10.0.0.11
        mac: "52:54:00:00:00:01"
      backward:
        profiles: [extra, base]
        ip: 10.0.0.12
        mac: "52:54:00:00:00:02"
      own:
        profiles: [base, extra]
        comment: from node
        init: /sbin/own
        device: ib0
        kernel_args: [~console=ttyS0, nomodeset]
        runtime_overlays: [~hosts]
        ip: 10.0.0.13
        mac: "52:54:00:00:00:03"
      dropped:
        profiles: [base, extra, ~extra]
        ip: 10.0.0.14
        mac: "52:54:00:00:00:04"
    """


@pytest.fixture
def merged(tmp_path: Path) -> Cluster:
    return load(tmp_path, cluster(MERGE))


def test_merge_rightmost_profile_wins_and_lists_append(merged: Cluster) -> None:
    n = merged.node("forward")
    assert n.profiles == ("base", "extra")
    assert (n.comment, n.init, n.device, n.image) == ("from extra", "/sbin/base", "eth9", "img")
    # extra's `~quiet` removes base's quiet; its debug is appended after.
    assert n.kernel_args == ("console=ttyS0", "debug")
    assert n.system_overlays == ("wwinit", "hostname")
    assert n.runtime_overlays == ("hosts",)


def test_merge_order_follows_profiles_list(merged: Cluster) -> None:
    n = merged.node("backward")
    assert n.profiles == ("extra", "base")
    assert n.comment == "from base"
    # `~quiet` only removes what came before it, so base's quiet stays.
    assert n.kernel_args == ("debug", "console=ttyS0", "quiet")
    assert n.system_overlays == ("hostname", "wwinit")


def test_merge_node_wins_over_profiles(merged: Cluster) -> None:
    n = merged.node("own")
    assert (n.comment, n.init, n.device) == ("from node", "/sbin/own", "ib0")
    assert n.kernel_args == ("debug", "nomodeset")
    assert n.runtime_overlays == ()


def test_merge_tilde_profile_drops_it(merged: Cluster) -> None:
    n = merged.node("dropped")
    assert n.profiles == ("base",)
    assert (n.comment, n.device) == ("from base", "")
    assert n.kernel_args == ("console=ttyS0", "quiet")


NESTED = """\
    profiles:
      base: {image: img, kernel_args: [base]}
      net: {kernel_args: [net], comment: net}
      compute: {profiles: [base, net], kernel_args: [compute]}
      gpu: {profiles: [compute], kernel_args: [gpu]}
    nodes:
      n1: {profiles: [gpu], ip: 10.0.0.11, mac: "52:54:00:00:00:01"}
      n2: {profiles: [base, gpu, base], ip: 10.0.0.12, mac: "52:54:00:00:00:02"}
      n3: {profiles: [gpu, ~net], ip: 10.0.0.13, mac: "52:54:00:00:00:03"}
      n4: {profiles: [compute, net], ip: 10.0.0.14, mac: "52:54:00:00:00:04"}
    """


def test_nested_profiles_depth_first(tmp_path: Path) -> None:
    c = load(tmp_path, cluster(NESTED))
    n1 = c.node("n1")
    assert n1.profiles == ("base", "net", "compute", "gpu")
    assert n1.kernel_args == ("base", "net", "compute", "gpu")
    assert n1.comment == "net"


def test_profile_listed_twice_merges_once(tmp_path: Path) -> None:
    c = load(tmp_path, cluster(NESTED))
    assert c.node("n2").profiles == ("base", "net", "compute", "gpu")
    assert c.node("n2").kernel_args == ("base", "net", "compute", "gpu")
    # net comes in through compute already; listing it again does not move it.
    assert c.node("n4").profiles == ("base", "net", "compute")


def test_tilde_drops_nested_profile(tmp_path: Path) -> None:
    n3 = load(tmp_path, cluster(NESTED)).node("n3")
    assert n3.profiles == ("base", "compute", "gpu")
    assert n3.kernel_args == ("base", "compute", "gpu")
    assert n3.comment == ""


# --- merge semantics: the pure functions --------------------------------------


def test_merge_layers_scalars_last_wins() -> None:
    a, b = Loc("f", 1, 1), Loc("f", 2, 1)
    out = merge_layers([{"comment": ("one", a), "init": ("/a", a)}, {"comment": ("two", b)}])
    assert out == {"comment": ("two", b), "init": ("/a", a)}


def test_merge_layers_lists_append_and_remove() -> None:
    a, b, c = Loc("f", 1, 1), Loc("f", 2, 1), Loc("f", 3, 1)
    layers: list[Layer] = [
        {"kernel_args": (["quiet", "console=ttyS0"], a)},
        {"kernel_args": (["~quiet", "debug"], b)},
        {"kernel_args": (["quiet", "~nothing"], c)},
    ]
    out = merge_layers(layers)
    assert out == {"kernel_args": (["console=ttyS0", "debug", "quiet"], c)}
    # Pure: the input layers are unchanged.
    assert layers[0]["kernel_args"][0] == ["quiet", "console=ttyS0"]


def test_merge_layers_tilde_removes_every_copy() -> None:
    out = merge_layers([layer(system_overlays=["a", "b", "a"]), layer(system_overlays=["~a"])])
    assert out["system_overlays"][0] == ["b"]


def test_merge_layers_ignores_profiles_and_handles_empty() -> None:
    assert merge_layers([]) == {}
    assert merge_layers([layer(profiles=["x"], comment="c")]) == layer(comment="c")


def test_expand_profiles_depth_first_and_once() -> None:
    profiles = {
        "a": layer(),
        "b": layer(profiles=["a"]),
        "d": layer(),
        "c": layer(profiles=["b", "d"]),
    }
    here = Loc("f", 9, 9)
    assert expand_profiles(["c"], profiles, here) == ["a", "b", "d", "c"]
    assert expand_profiles(["a", "c", "a"], profiles, here) == ["a", "b", "d", "c"]
    assert expand_profiles(["d", "b"], profiles, here) == ["d", "a", "b"]
    assert expand_profiles([], profiles, here) == []


def test_expand_profiles_tilde() -> None:
    profiles = {"a": layer(), "b": layer(profiles=["a"]), "c": layer(profiles=["~a"])}
    here = Loc("f", 9, 9)
    # Dropping b keeps what b brought in; where `~` stands in the list does not matter.
    assert expand_profiles(["b", "~b"], profiles, here) == ["a"]
    assert expand_profiles(["~a", "b"], profiles, here) == ["b"]
    # A profile's own `~a` drops a too.
    assert expand_profiles(["a", "c"], profiles, here) == ["c"]
    # Dropping a profile that is not there is harmless.
    assert expand_profiles(["a", "~zzz"], profiles, here) == ["a"]


def test_expand_profiles_cycle_and_undefined() -> None:
    inner = Loc("f", 5, 5)
    profiles = {
        "a": {"profiles": (["b"], Loc("f", 3, 3))},
        "b": {"profiles": (["c"], Loc("f", 4, 4))},
        "c": {"profiles": (["a"], inner)},
    }
    with pytest.raises(WWError) as info:
        expand_profiles(["a"], profiles, Loc("f", 9, 9))
    assert "a -> b -> c -> a" in info.value.message
    assert info.value.loc == inner
    assert info.value.hint

    with pytest.raises(WWError) as info:
        expand_profiles(["x"], {"a": layer()}, Loc("f", 9, 9))
    assert info.value.loc == Loc("f", 9, 9)
    assert info.value.hint == "defined profiles: a"


# --- YAML anchors, aliases and `<<` ------------------------------------------


def test_anchor_alias_and_merge_key(tmp_path: Path) -> None:
    c = load(tmp_path, cluster("""\
        profiles:
          base: &base
            image: img
            comment: from anchor
            kernel_args: &args [quiet, console=ttyS0]
        nodes:
          n01:
            <<: *base
            comment: explicit
            runtime_overlays: *args
            ip: 10.0.0.11
            mac: "52:54:00:00:00:01"
        """))
    n = c.node("n01")
    assert n.profiles == ()
    assert (n.image, n.comment) == ("img", "explicit")
    assert n.kernel_args == ("quiet", "console=ttyS0")
    assert n.runtime_overlays == ("quiet", "console=ttyS0")


def test_merge_key_list_first_wins(tmp_path: Path) -> None:
    c = load(tmp_path, cluster("""\
        profiles:
          one: &one {comment: one, device: eth0}
          two: &two {comment: two, init: /sbin/two}
        nodes:
          n01:
            <<: [*one, *two]
            image: img
            ip: 10.0.0.11
            mac: "52:54:00:00:00:01"
        """))
    n = c.node("n01")
    assert (n.comment, n.device, n.init) == ("one", "eth0", "/sbin/two")


def test_merged_unknown_key_reported_at_anchor(tmp_path: Path) -> None:
    text = cluster("""\
        profiles:
          p: &p
            comment: x
        nodes:
          n01:
            <<: *p
            imgae: img
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
