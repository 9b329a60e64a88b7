"""Discoverable nodes without a MAC, the log classifier, and the in-place cluster.yaml edit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.project import REPO
from toolchain.build import dhcp, layout
from toolchain.errors import WWError
from toolchain.model.load import load_cluster
from toolchain.model.spec import DhcpBackend
from toolchain.model.types import Cluster
from toolchain.ops.accesslog import Classifier, MacSeen, Scan, Stage
from toolchain.ops.discover import Binding, assign, edit, plan, waiting
from toolchain.ops.status import render

HEAD = """\
# site comment
head: {ip: 10.0.0.1, network: 10.0.0.0/24}
images:
  demo: {demo: {}}
profiles:
  default:
    image: demo
    network:
      default: {device: eth0}
"""


def cluster_at(tmp_path: Path, nodes: str) -> tuple[Path, Cluster]:
    (tmp_path / "overlays").mkdir(exist_ok=True)
    path = tmp_path / "cluster.yaml"
    path.write_text(HEAD + "nodes:\n" + nodes)
    return path, load_cluster(path)


def test_discoverable_node_needs_no_mac(tmp_path: Path) -> None:
    _, cluster = cluster_at(tmp_path, """\
  n01: {profiles: [default], network: {default: {ip: 10.0.0.11, mac: "52:54:00:00:00:01"}}}
  n02:
    profiles: [default]
    discoverable: true
    network: {default: {ip: 10.0.0.12}}
""")
    n02 = cluster.node("n02")
    assert not n02.bootable and n02.mac == ""
    assert [n.name for n in waiting(cluster)] == ["n02"]
    for backend in DhcpBackend:
        conf = dhcp.config_text(backend, cluster, tmp_path / "tftp")
        assert "n01" in conf and "n02" not in conf, backend


def test_mac_still_required_without_discoverable(tmp_path: Path) -> None:
    with pytest.raises(WWError) as err:
        cluster_at(tmp_path, "  n01: {profiles: [default], network: {default: {ip: 10.0.0.11}}}\n")
    assert "has no `mac`" in str(err.value) and "discoverable" in str(err.value)
    assert "cluster.yaml:" in str(err.value)


def test_null_holds_the_place_of_an_unknown_mac_in_a_hostlist(tmp_path: Path) -> None:
    _, cluster = cluster_at(tmp_path, """\
  n[01-03]:
    profiles: [default]
    discoverable: true
    network:
      default:
        ip: 10.0.0.11
        mac: ["52:54:00:00:00:01", null, ~]
""")
    assert [n.mac for n in cluster.nodes] == ["52:54:00:00:00:01", "", ""]
    with pytest.raises(WWError, match="has no `mac`"):
        cluster_at(tmp_path, """\
  n[01-02]:
    profiles: [default]
    network: {default: {ip: 10.0.0.11, mac: ["52:54:00:00:00:01", null]}}
""")


def test_classifier_follows_the_url_helpers_and_digests() -> None:
    cluster = load_cluster(REPO / "cluster.yaml")
    n01 = cluster.node("n01")
    c = Classifier(cluster)
    digest = "ab" * 32
    assert c(layout.ipxe_path(n01)) == ("n01", n01.mac, Stage.IPXE)
    assert c(layout.kernel_url("demo", digest))[2] is Stage.KERNEL  # type: ignore[index]
    assert c(layout.image_url("demo", digest, "gzip"))[2] is Stage.IMAGE  # type: ignore[index]
    assert c(layout.node_blob_url("n01", "system", digest)) == ("n01", None, Stage.SYSTEM)
    assert c(layout.node_blob_url("n01", "runtime", digest)) == ("n01", None, Stage.RUNTIME)
    assert c(layout.manifest_url("n01")) == ("n01", None, Stage.POLL)
    assert c(layout.group_url("ab" * 10, "ipxe"))[2] is Stage.LAYER  # type: ignore[index]
    assert c(f"nodes/n02/runtime-{digest}.img.gz") == ("n02", None, Stage.RUNTIME)
    assert c(f"nodes/n02/system-{digest}.img.gz") == ("n02", None, Stage.SYSTEM)
    assert c("nodes/n02/runtime.json") == ("n02", None, Stage.POLL)
    assert c(f"images/demo/vmlinuz-{digest}") == (None, None, Stage.KERNEL)
    assert c(f"images/demo/image-{digest}.img.gz") == (None, None, Stage.IMAGE)
    assert c(f"shared/{digest}.img.gz") == (None, None, Stage.LAYER)
    assert c("ipxe/52-54-00-aa-bb-cc.ipxe") == (None, "52:54:00:aa:bb:cc", Stage.IPXE)
    assert c("favicon.ico") is None


def _line(t: datetime, ip: str, uri: str, status: int = 200) -> str:
    return f"ww1\t{t.isoformat()}\t{ip}\t{status}\t10\t/{uri}\t/{uri}\tiPXE/1.21\n"


def test_scan_status_and_unknown_macs(tmp_path: Path) -> None:
    cluster = load_cluster(REPO / "cluster.yaml")
    now = datetime.now(UTC)
    old = now - timedelta(hours=2)
    log = tmp_path / "access.log"
    log.write_text(
        "not our format\n"
        + _line(old, "10.99.0.13", "ipxe/52-54-00-99-00-13.ipxe")
        + _line(now - timedelta(seconds=30), "10.99.0.11", "ipxe/52-54-00-99-00-11.ipxe")
        + _line(now - timedelta(seconds=29), "10.99.0.11", layout.kernel_url("demo", "0" * 64))
        + _line(now - timedelta(seconds=28), "10.99.0.11", "shared/" + "0" * 64 + ".img.gz")
        + _line(now - timedelta(seconds=27), "10.99.0.11", "nodes/n01/missing", 404)
        + _line(now - timedelta(seconds=20), "10.99.0.12", "nodes/n02/system.img.gz")
        + _line(now - timedelta(seconds=10), "10.99.0.12", "nodes/n02/runtime.json")
        + _line(now - timedelta(seconds=9), "10.99.0.200", "ipxe/52-54-00-aa-00-02.ipxe")
        + _line(now - timedelta(seconds=8), "10.99.0.201", "ipxe/52-54-00-aa-00-01.ipxe")
        + _line(now - timedelta(seconds=5), "10.99.0.202", "ipxe/52-54-00-aa-00-02.ipxe"))
    scan = Scan(cluster, log).update()
    assert scan.lines == 11 and scan.foreign == 1
    boot = scan.nodes["n01"].boot
    assert boot is not None and boot.stage is Stage.LAYER and boot.ip == "10.99.0.11"
    assert [(u.mac, u.ip, u.count) for u in scan.unknown.values()] == [
        ("52:54:00:aa:00:02", "10.99.0.202", 2), ("52:54:00:aa:00:01", "10.99.0.201", 1)]
    table = render(list(cluster.nodes), scan, now, 180.0, color=False).splitlines()
    states = {line.split()[0]: line.split()[1] for line in table[1:-1]}
    assert states == {"n01": "booting", "n02": "up", "n03": "STALE", "n04": "never"}
    assert table[-1].startswith("4 nodes: 1 up, 1 booting, 1 STALE, 1 never")
    # Appended lines are read from where the last scan stopped.
    with log.open("a") as f:
        f.write(_line(now, "10.99.0.11", "nodes/n01/runtime.json"))
    assert scan.update().lines == 12 and scan.nodes["n01"].poll is not None


def test_scan_rejects_a_log_in_another_format(tmp_path: Path) -> None:
    cluster = load_cluster(REPO / "cluster.yaml")
    log = tmp_path / "access.log"
    log.write_text('10.0.0.1 - - [01/Jan/2025:00:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "-"\n')
    with pytest.raises(WWError, match="not in wwstatic's log format"):
        Scan(cluster, log).update()
    with pytest.raises(WWError, match="does not exist"):
        Scan(cluster, tmp_path / "nope.log").update()


LAYOUTS = {
    "flow network": ("""\
  n05: {profiles: [default], discoverable: true, network: {default: {ip: 10.0.0.15}}}
""", None),
    "block device, explicit null": ("""\
  n05:
    profiles: [default]
    discoverable: true
    network:
      default:
        ip: 10.0.0.15   # fixed
        mac: null
""", None),
    "hostlist with nulls": ("""\
  n[05-07]:
    profiles: [default]
    discoverable: true
    network:
      default:
        ip: 10.0.0.15
        mac:
          - ~
          - "52:54:00:00:00:66"
          - null
""", ["n05", "n07"]),
    "hostlist without mac": ("""\
  n[05-06]:
    profiles: [default]
    discoverable: true
    network: {default: {ip: 10.0.0.15}}
""", ["n05", "n06"]),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_edit_keeps_layout_and_binds_in_order(tmp_path: Path, layout: str) -> None:
    nodes, expect = LAYOUTS[layout]
    path, cluster = cluster_at(tmp_path, nodes)
    free = waiting(cluster)
    assert [n.name for n in free] == (expect or ["n05"])
    seen = [MacSeen(f"52:54:00:aa:00:{i:02x}", "t1", "t2", "10.0.0.200") for i in range(len(free))]
    bindings = [Binding(n, s) for n, s in zip(free, seen, strict=True)]
    before = path.read_text()
    diff = assign(path, bindings, write=False)
    assert path.read_text() == before and "+" in diff
    assign(path, bindings, write=True)
    after = path.read_text()
    # Only additions/replacements: every comment and every other line stays.
    for line in before.splitlines():
        if "mac" not in line and "null" not in line and "~" not in line and "{" not in line:
            assert line in after.splitlines(), line
    assert "# site comment" in after
    again = load_cluster(path)
    for b in bindings:
        assert again.node(b.node.name).mac == b.seen.mac
    assert waiting(again) == []


def test_edit_of_a_block_node_without_network(tmp_path: Path) -> None:
    (tmp_path / "overlays").mkdir()
    path = tmp_path / "cluster.yaml"
    text = HEAD.replace("{device: eth0}", "{device: eth0, ip: 10.0.0.15}") + """\
nodes:
  n05:   # rack 5
    profiles: [default]   # keep me
    discoverable: true
"""
    path.write_text(text)
    cluster = load_cluster(path)
    b = Binding(cluster.node("n05"), MacSeen("52:54:00:aa:00:05", "t", "t", "10.0.0.200"))
    new = edit(text, str(path), [b])
    assert new == text.replace("    profiles: [default]   # keep me\n", '    network:\n      default:\n'
                               '        mac: "52:54:00:aa:00:05"\n    profiles: [default]   # keep me\n')
    assign(path, [b], write=True)
    assert load_cluster(path).node("n05").mac == "52:54:00:aa:00:05"


def test_plan_pairs_first_asked_with_first_defined(tmp_path: Path) -> None:
    _, cluster = cluster_at(tmp_path, """\
  b02: {profiles: [default], discoverable: true, network: {default: {ip: 10.0.0.12}}}
  a01: {profiles: [default], discoverable: true, network: {default: {ip: 10.0.0.11}}}
""")
    log = tmp_path / "access.log"
    now = datetime.now(UTC)
    log.write_text(_line(now, "10.0.0.201", "ipxe/52-54-00-aa-00-09.ipxe")
                   + _line(now, "10.0.0.200", "ipxe/52-54-00-aa-00-01.ipxe")
                   + _line(now, "10.0.0.202", "ipxe/52-54-00-aa-00-05.ipxe"))
    got = [(b.node.name, b.seen.mac) for b in plan(cluster, Scan(cluster, log).update())]
    assert got == [("b02", "52:54:00:aa:00:09"), ("a01", "52:54:00:aa:00:01")]
