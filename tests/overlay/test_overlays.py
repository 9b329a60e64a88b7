"""The shipped overlays: golden files for a plain node and a node using every field."""

from __future__ import annotations

import configparser
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.overlays import fixture_project
from tests.support.project import TESTS
from toolchain.archive import Entry
from toolchain.model.load import load_cluster
from toolchain.model.types import Cluster
from toolchain.overlay import functions
from toolchain.overlay import render as overlay
from toolchain.project import SHIPPED_OVERLAYS

GOLDEN = TESTS / "golden" / "overlays"
NODES = ("n01", "n02")
# Overlays other work ships (and tests) itself.
NOT_HERE = {"wwclient"}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fixture_project(tmp_path_factory.mktemp("ov") / "site")


@pytest.fixture(scope="module")
def cluster(project: Path) -> Cluster:
    return load_cluster(project / "cluster.yaml")


def shipped() -> list[str]:
    return sorted(p.parent.name for p in SHIPPED_OVERLAYS.glob("*/rootfs") if p.parent.name not in NOT_HERE)


def render(project: Path, cluster: Cluster, node: str, names: tuple[str, ...]) -> overlay.Layered:
    n = cluster.node(node)
    return overlay.layer_all(project, names, functions.make_context(cluster, n),
                             overlay.make_env(project), f"node {node}")


def describe(project: Path, name: str, node: str, layered: overlay.Layered) -> str:
    """A text listing of a rendered overlay: metadata of every entry, the content of rendered ones."""
    static = {s.rel for s in overlay.list_sources(overlay.find_overlay(name, project)) if s.kind == "file"}
    out = []
    for e in layered.entries:
        kind = {stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink"}.get(stat.S_IFMT(e.mode), "file")
        head = f"=== /{e.path} {kind} {stat.S_IMODE(e.mode):04o} {e.uid}:{e.gid}"
        head += " secret" if e.path in layered.secrets else ""
        out.append(head + (f" -> {e.target}" if e.target else ""))
        if kind != "file":
            continue
        assert e.data is not None
        if e.path in static:
            out.append("(copied from the overlay)")
        elif e.path.startswith("etc/ssh/ssh_host_"):
            # Random keys: check they are the node's kept ones, show where from.
            kept = project / "state" / "ssh" / node / Path(e.path).name
            assert e.data == kept.read_bytes()
            out.append(f"(the key kept in state/ssh/{node}/{kept.name})")
        else:
            out.append(e.data.decode().rstrip("\n"))
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("name", shipped())
def test_golden(project: Path, cluster: Cluster, name: str) -> None:
    for node in NODES:
        text = describe(project, name, node, render(project, cluster, node, (name,)))
        path = GOLDEN / name / f"{node}.txt"
        if os.environ.get("WWSTATIC_UPDATE_GOLDEN"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        assert path.exists(), f"no golden file {path}: run with WWSTATIC_UPDATE_GOLDEN=1"
        assert text == path.read_text(), f"{name} for {node} differs from {path}"


def test_every_golden_file_belongs_to_a_shipped_overlay() -> None:
    assert sorted(p.name for p in GOLDEN.iterdir()) == shipped()


def entries(layered: overlay.Layered) -> dict[str, Entry]:
    return {e.path: e for e in layered.entries}


def test_generated_shell_scripts_parse(project: Path, cluster: Cluster, tmp_path: Path) -> None:
    names = ("wwinit", "sfdisk", "mkfs", "mkswap")
    for node in NODES:
        for e in render(project, cluster, node, names).entries:
            if e.data is not None and (e.path == "init" or e.path.startswith("warewulf/init.d/")):
                script = tmp_path / "script"
                script.write_bytes(e.data or b"")
                for shell in ("dash", "busybox"):
                    if shutil.which(shell):
                        argv = [shell, "sh", "-n", str(script)] if shell == "busybox" else [shell, "-n",
                                                                                             str(script)]
                        done = subprocess.run(argv, capture_output=True, text=True, check=False)
                        assert done.returncode == 0, f"{node} /{e.path}: {done.stderr}"


def test_config_formats_parse(project: Path, cluster: Cluster) -> None:
    """netplan YAML, NetworkManager and systemd files are what their readers expect."""
    got = entries(render(project, cluster, "n02",
                         ("netplan", "NetworkManager", "systemd.networkd", "systemd.netname")))
    plan = yaml.safe_load(got["etc/netplan/50-wwstatic.yaml"].data or b"")
    default = plan["network"]["ethernets"]["default"]
    assert default["addresses"] == ["10.5.0.12/24"]
    assert default["routes"] == [{"to": "default", "via": "10.5.0.1"}]
    assert default["nameservers"]["search"] == ["cluster.example"]
    for path, e in got.items():
        if path.endswith((".nmconnection", ".network", ".link")):
            parser = configparser.ConfigParser(strict=False, interpolation=None)
            parser.read_string((e.data or b"").decode())
            assert parser.sections(), path
    nm = configparser.ConfigParser(interpolation=None)
    nm.read_string((got["etc/NetworkManager/system-connections/wwstatic-default.nmconnection"].data
                    or b"").decode())
    assert nm["ipv4"]["address1"] == "10.5.0.12/24,10.5.0.1"
    assert stat.S_IMODE(got["etc/NetworkManager/system-connections/wwstatic-default.nmconnection"].mode) \
        == 0o600


def test_host_keys_per_node_generated_once(project: Path, cluster: Cluster) -> None:
    first = {n: render(project, cluster, n, ("ssh.host_keys",)) for n in NODES}
    again = render(project, cluster, "n01", ("ssh.host_keys",))
    key = "etc/ssh/ssh_host_ed25519_key"
    assert entries(again)[key].data == entries(first["n01"])[key].data, "keys must be kept"
    assert entries(first["n01"])[key].data != entries(first["n02"])[key].data, "keys must differ per node"
    assert first["n01"].secret and key in first["n01"].secrets
    assert "etc/ssh/ssh_host_ed25519_key.pub" not in first["n01"].secrets
    assert stat.S_IMODE(entries(first["n01"])[key].mode) == 0o600
    kept = project / "state" / "ssh" / "n01"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o700
    assert stat.S_IMODE((kept / "ssh_host_ed25519_key").stat().st_mode) == 0o600
    # The pair matches: ssh-keygen derives the public key from the private one.
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(kept / "ssh_host_ed25519_key")],
                             capture_output=True, text=True, check=True).stdout.split()[:2]
    assert (kept / "ssh_host_ed25519_key.pub").read_text().split()[:2] == derived


def test_ipmi_settings_only_where_written_and_secret(project: Path, cluster: Cluster) -> None:
    plain = entries(render(project, cluster, "n01", ("wwinit",)))
    full = render(project, cluster, "n02", ("wwinit",))
    assert "warewulf/ipmi" not in plain
    assert "warewulf/ipmi" in full.secrets
    assert stat.S_IMODE(entries(full)["warewulf/ipmi"].mode) == 0o600


def test_ipmi_settings_survive_the_shell(project: Path, cluster: Cluster, tmp_path: Path) -> None:
    """A password with quotes and spaces reaches ipmitool unchanged."""
    data = entries(render(project, cluster, "n02", ("wwinit",)))["warewulf/ipmi"].data or b""
    conf = tmp_path / "ipmi"
    conf.write_bytes(data)
    done = subprocess.run(["sh", "-c", '. "$1"; printf %s "$WWIPMI_PASSWORD"', "sh", str(conf)],
                          capture_output=True, text=True, check=True)
    assert done.stdout == "s3cr3t 'quoted'"


def test_sfdisk_script_partitions_a_disk(project: Path, cluster: Cluster, tmp_path: Path) -> None:
    """The generated script run against a disk image file makes the partitions asked for."""
    assert shutil.which("sfdisk"), "install fdisk (toolchain/bootstrap.sh does)"
    script = (entries(render(project, cluster, "n02", ("sfdisk",)))["warewulf/init.d/10-sfdisk"].data
              or b"").decode()
    disk = tmp_path / "vda.img"
    with disk.open("wb") as f:
        f.truncate(3 << 30)
    script = script.replace("/dev/vda", str(disk)).replace('[ ! -b "$disk" ]', '[ ! -e "$disk" ]')
    script = script.replace("/dev/nvme0n1", str(tmp_path / "missing"))
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 1, "a missing disk is an error"
    assert "missing does not exist" in done.stdout
    dump = subprocess.run(["sfdisk", "--json", str(disk)], capture_output=True, text=True, check=True)
    parts = yaml.safe_load(dump.stdout)["partitiontable"]["partitions"]
    assert [p.get("name") for p in parts] == ["swap", "scratch"]
    assert parts[0]["size"] * 512 == 1024 << 20
    # Run again: nothing is created twice, the table is kept.
    subprocess.run(["sh", "-c", script.replace("echo \"label: gpt\" | sfdisk --quiet --wipe always "
                                               "\"$disk\" || status=1", ":")],
                   capture_output=True, text=True, check=False)
    again = subprocess.run(["sfdisk", "--json", str(disk)], capture_output=True, text=True, check=True)
    assert yaml.safe_load(again.stdout)["partitiontable"]["partitions"] == parts
