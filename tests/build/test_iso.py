"""Boot ISOs: what they carry, their El Torito entries, their bytes, and real boots.

The unit tests read the ISOs back with pycdlib and the EFI image with mtools.
The boot tests start QEMU from the ISOs: the network ISO under SeaBIOS and OVMF
with a NIC that has no iPXE ROM (the ISO's iPXE must do the work), and a node's
standalone ISO under both with no network device at all.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pycdlib
import pytest

from tests.lab.netboot import Firmware, NetLab, running_lab
from tests.support.project import BOOT_TIMES, REPO, boot_project, make_project, pointed, run_doit
from toolchain.build import iso
from toolchain.errors import WWError
from toolchain.model.load import load_cluster
from toolchain.model.types import Node

SCRIPT = "ipxe/${netX/mac:hexhyp}.ipxe"
HTTP = "http://10.99.0.1"


def read(path: Path) -> dict[str, bytes]:
    """Every file on the ISO by its Rock Ridge path."""
    cd = pycdlib.PyCdlib()
    cd.open(str(path))
    files: dict[str, bytes] = {}
    try:
        for parent, _, names in cd.walk(rr_path="/"):
            for name in names:
                rr = f"{parent.rstrip('/')}/{name}"
                if name == "boot.cat":
                    continue
                record = cd.get_record(rr_path=rr)
                data = bytearray()
                with cd.open_file_from_iso(rr_path=rr) as f:
                    data += f.read()
                assert len(data) == record.get_data_length()
                files[rr.lstrip("/")] = bytes(data)
    finally:
        cd.close()
    return files


def eltorito(path: Path) -> list[tuple[int, str, int]]:
    """(platform id, file it boots, sector count) of each El Torito entry, in order."""
    cd = pycdlib.PyCdlib()
    cd.open(str(path))
    try:
        extents = {}
        for parent, _, names in cd.walk(rr_path="/"):
            for name in names:
                rr = f"{parent.rstrip('/')}/{name}"
                extents[cd.get_record(rr_path=rr).extent_location()] = rr.lstrip("/")
        cat = cd.eltorito_boot_catalog
        assert cat is not None
        entries = [(cat.validation_entry.platform_id, extents[cat.initial_entry.load_rba],
                    cat.initial_entry.sector_count)]
        entries += [(s.platform_id, extents[e.load_rba], e.sector_count)
                    for s in cat.sections for e in s.section_entries]
        assert cat.initial_entry.boot_indicator == 0x88
        date = cd.pvd.volume_creation_date
        assert (date.year, date.month, date.dayofmonth) == (1980, 1, 1)
    finally:
        cd.close()
    return entries


def fat_file(image: bytes, name: str, tmp: Path) -> bytes:
    img = tmp / "fat.img"
    img.write_bytes(image)
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    done = subprocess.run(["mcopy", "-n", "-i", str(img), f"::/{name}", "-"], env=env,
                          capture_output=True, check=True)
    return done.stdout


@pytest.fixture(scope="module")
def node() -> Node:
    return load_cluster(REPO / "cluster.yaml").nodes[2]


@pytest.fixture
def payload(tmp_path: Path) -> tuple[Path, list[tuple[str, Path]]]:
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"kernel" * 1000)
    initrds = []
    for name in ("image.img.gz", "system.img.gz", "runtime.img.gz"):
        (tmp_path / name).write_bytes(name.encode() * 999)
        initrds.append((name, tmp_path / name))
    return kernel, initrds


# --- what the ISOs carry --------------------------------------------------------

def test_network_iso_contents_and_boot_entries(tmp_path: Path) -> None:
    out = tmp_path / "network.iso"
    iso.network_iso(HTTP, SCRIPT, out)
    files = read(out)
    assert set(files) == {"isolinux/isolinux.bin", "isolinux/ldlinux.c32", "isolinux/isolinux.cfg",
                          "boot/ipxe.lkrn", "boot/boot.ipxe", "boot/efi.img"}
    assert files["boot/ipxe.lkrn"] == iso.IPXE_LKRN.read_bytes()
    assert files["isolinux/ldlinux.c32"] == iso.LDLINUX_C32.read_bytes()
    cfg = files["isolinux/isolinux.cfg"].decode()
    assert "  KERNEL /boot/ipxe.lkrn\n  INITRD /boot/boot.ipxe\n" in cfg
    script = files["boot/boot.ipxe"].decode()
    assert script.startswith("#!ipxe\n")
    assert "\ndhcp || goto failed\nchain http://10.99.0.1/ipxe/${netX/mac:hexhyp}.ipxe || goto failed\n" \
        in script
    # BIOS boots isolinux (4 sectors, as BIOSes expect), UEFI the FAT image, whole.
    efi = files["boot/efi.img"]
    assert eltorito(out) == [(0, "isolinux/isolinux.bin", 4), (0xEF, "boot/efi.img", len(efi) // 512)]
    assert fat_file(efi, "EFI/BOOT/BOOTX64.EFI", tmp_path) == iso.IPXE_EFI.read_bytes()
    assert fat_file(efi, "autoexec.ipxe", tmp_path) == files["boot/boot.ipxe"]
    # isolinux patched its boot information table in the copy on the CD, not the source.
    assert files["isolinux/isolinux.bin"] != iso.ISOLINUX_BIN.read_bytes()
    assert len(files["isolinux/isolinux.bin"]) == iso.ISOLINUX_BIN.stat().st_size


def test_standalone_iso_contents_and_boot_entries(tmp_path: Path, node: Node,
                                                  payload: tuple[Path, list[tuple[str, Path]]]) -> None:
    kernel, initrds = payload
    out = tmp_path / "n03.iso"
    iso.standalone_iso(node, kernel, initrds, out)
    files = read(out)
    assert files["boot/vmlinuz"] == kernel.read_bytes()
    for name, src in initrds:
        assert files[f"boot/{name.split('.')[0]}.gz"] == src.read_bytes()
    args = "wwid=52:54:00:99:00:13 wwstatic.standalone console=ttyS0 quiet"
    cfg = files["isolinux/isolinux.cfg"].decode()
    # Later initrds win: image, then system overlay, then runtime overlay.
    assert "  KERNEL /boot/vmlinuz\n  INITRD /boot/image.gz,/boot/system.gz,/boot/runtime.gz\n" \
           f"  APPEND {args}\n" in cfg
    grub = files["boot/grub/grub.cfg"].decode()
    assert f"  linux /boot/vmlinuz {args}\n  initrd /boot/image.gz /boot/system.gz /boot/runtime.gz\n" \
        in grub
    assert files[".disk/info"] == b"wwstatic node n03\n"
    assert out.stat().st_mode & 0o777 == 0o600, "the node's overlays may hold secrets"
    efi = files["boot/efi.img"]
    assert eltorito(out) == [(0, "isolinux/isolinux.bin", 4), (0xEF, "boot/efi.img", len(efi) // 512)]
    assert fat_file(efi, "EFI/BOOT/BOOTX64.EFI", tmp_path) == iso.GRUB_CD_EFI.read_bytes()


def test_same_inputs_give_identical_bytes(tmp_path: Path, node: Node, monkeypatch: pytest.MonkeyPatch,
                                          payload: tuple[Path, list[tuple[str, Path]]]) -> None:
    kernel, initrds = payload
    first = [tmp_path / "a-net.iso", tmp_path / "a-node.iso"]
    iso.network_iso(HTTP, SCRIPT, first[0])
    iso.standalone_iso(node, kernel, initrds, first[1])
    # Later (FAT counts in 2 s steps) and in another time zone: dates would differ if not fixed.
    time.sleep(2.1)
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        second = [tmp_path / "b-net.iso", tmp_path / "b-node.iso"]
        iso.network_iso(HTTP, SCRIPT, second[0])
        iso.standalone_iso(node, kernel, initrds, second[1])
    finally:
        monkeypatch.undo()
        time.tzset()
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), f"{a.name} and {b.name} differ"
    assert time.time() > iso.EPOCH + 10**9, "pycdlib's clock was left fixed"


def test_grub_words_reach_the_kernel_unchanged() -> None:
    assert iso._grub_word("console=ttyS0,115200") == "console=ttyS0,115200"
    assert iso._grub_word('opt="a b"') == "'opt=\"a b\"'"
    assert iso._grub_word("it's") == "'it'\\''s'"
    assert iso._grub_word("$root;x") == "'$root;x'"


def test_bad_kernel_argument_is_an_error(tmp_path: Path, node: Node,
                                         payload: tuple[Path, list[tuple[str, Path]]]) -> None:
    kernel, initrds = payload
    bad = dataclasses.replace(node, kernel=dataclasses.replace(node.kernel, args=("quiet", "a\nAPPEND x")))
    with pytest.raises(WWError, match=r"node n03: kernel argument 'a\\nAPPEND x' is empty or has a "
                                      "control character") as err:
        iso.standalone_iso(bad, kernel, initrds, tmp_path / "bad.iso")
    assert err.value.hint == "fix kernel.args in cluster.yaml"
    assert not (tmp_path / "bad.iso").exists()


def test_missing_loader_names_its_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(iso, "ISOLINUX_BIN", tmp_path / "nowhere/isolinux.bin")
    monkeypatch.setitem(iso.PACKAGES, tmp_path / "nowhere/isolinux.bin", "isolinux")
    with pytest.raises(WWError, match=r"isolinux\.bin is missing: boot ISOs need it") as err:
        iso.network_iso(HTTP, SCRIPT, tmp_path / "net.iso")
    assert err.value.hint == "install Debian's isolinux package: apt-get install isolinux"
    assert not (tmp_path / "net.iso").exists()


# --- the doit tasks ---------------------------------------------------------------

@pytest.fixture(scope="module")
def iso_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo with poweroff, and n04 asking for a standalone ISO."""
    def edit(data: dict[str, Any]) -> None:
        group = data["nodes"].pop("n[01-04]")
        macs = group["network"]["default"]["mac"]
        group["network"]["default"]["mac"] = macs[:3]
        data["nodes"]["n[01-03]"] = group
        data["nodes"]["n04"] = {"profiles": ["default"], "standalone_iso": True,
                                "network": {"default": {"ip": "10.99.0.14", "mac": macs[3]}}}

    return boot_project(tmp_path_factory.mktemp("iso"), edit)


def test_tasks_build_network_iso_and_opted_in_node_isos(iso_project: Path) -> None:
    out = iso_project / "output/iso"
    assert sorted(p.name for p in out.iterdir()) == ["n04.iso", "network.iso"]
    http = iso_project / "output/http"
    files = read(out / "n04.iso")
    served = pointed(iso_project / "output", "52:54:00:99:00:14")
    assert files["boot/vmlinuz"] == (http / served[1]).read_bytes()
    # Every initrd the node's scripts name, in their order, under ISO 9660 names.
    names = ["image", "system", "system_node", "runtime", "runtime_node"]
    assert [files[f"boot/{n}.gz"] for n in names] == [(http / f).read_bytes() for f in served[2:]]
    listed = run_doit(iso_project, "list", "--all")
    assert "iso:network" in listed.stdout and "iso:n04" in listed.stdout


def test_iso_rebuilds_when_what_it_carries_changes(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", lambda d: d["profiles"]["default"].update(standalone_iso=True))
    assert run_doit(project).returncode == 0
    before = hashlib.sha256((project / "output/iso/n01.iso").read_bytes()).hexdigest()
    motd = project / "overlays/motd/rootfs/etc/motd.j2"
    motd.write_text(motd.read_text() + "changed\n")
    result = run_doit(project)
    assert result.returncode == 0, result.stderr
    rebuilt = {line[3:].strip() for line in result.stdout.splitlines() if line.startswith(".  ")}
    assert {f"iso:n0{i}" for i in range(1, 5)} <= rebuilt
    assert "iso:network" not in rebuilt
    assert hashlib.sha256((project / "output/iso/n01.iso").read_bytes()).hexdigest() != before


# --- real boots -------------------------------------------------------------------

@pytest.fixture(scope="module")
def isonet(iso_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetLab]:
    lab_dir = tmp_path_factory.mktemp("isonet")
    with running_lab(lab_dir, iso_project / "output", ns=f"wwi{os.getpid()}") as lab:
        yield lab


def _check_node(log: str, node: str) -> None:
    errors = [line for line in log.splitlines() if line.startswith(("/init:", "wwinit: ERROR"))]
    assert not errors, errors
    assert "wwinit: done, starting /sbin/init" in log, log[-3000:]
    assert f"demo: hostname={node}" in log
    assert "demo: hosts: 10.99.0.14\tn04" in log
    assert f"demo: motd: Welcome to {node}," in log
    assert "demo: powering off" in log


@pytest.mark.lab
@pytest.mark.parametrize("firmware", ["bios", "uefi-pxe"])
def test_network_iso_boots(firmware: str, isonet: NetLab, iso_project: Path) -> None:
    node, mac, ip = ("n01", "52:54:00:99:00:11", "10.99.0.11") if firmware == "bios" else \
        ("n02", "52:54:00:99:00:12", "10.99.0.12")
    tftp_before = (isonet.workdir / "tftp.log").read_text()
    boot = isonet.boot(f"iso-{node}", mac, Firmware(firmware), until="demo: powering off", timeout=300,
                       cdrom=iso_project / "output/iso/network.iso")
    BOOT_TIMES.append((f"network ISO, {firmware}", boot.marks))
    log = boot.log
    # The CD's iPXE ran: the NIC has no ROM, and no TFTP first stage was fetched.
    assert "iPXE 1.0.0" in log, log[-3000:]
    if firmware == "bios":
        assert "Booting from DVD/CD" in log and "ISOLINUX" in log
        assert "wwstatic: network boot ISO of the cluster served by http://10.99.0.1" in log
    else:
        assert "UEFI QEMU DVD-ROM" in log
        assert "Features: DNS HTTP iSCSI NFS TFTP SRP AoE EFI" in log
        # Debian 12's ipxe.efi takes no script: its autoboot follows DHCP's file name.
        assert f"Filename: http://10.99.0.1/ipxe/{mac.replace(':', '-')}.ipxe" in log
    assert (isonet.workdir / "tftp.log").read_text() == tftp_before
    assert f"http://10.99.0.1/ipxe/{mac.replace(':', '-')}.ipxe... ok" in log
    _check_node(log, node)
    assert f"wwinit: network eth0 {ip}/24, hostname {node}" in log
    assert f"demo: address eth0 {ip}/24" in log
    access = [line.split("\t") for line in (iso_project / "access.log").read_text().splitlines()]
    assert any(f[2] == ip and f[5] == f"/ipxe/{mac.replace(':', '-')}.ipxe" and "iPXE" in f[7]
               for f in access), access


@pytest.mark.lab
@pytest.mark.parametrize("firmware", ["bios", "uefi-pxe"])
def test_standalone_iso_boots_without_network(firmware: str, isonet: NetLab, iso_project: Path) -> None:
    log_file = iso_project / "access.log"
    access_before = log_file.read_text() if log_file.exists() else ""
    boot = isonet.boot(f"iso-n04-{firmware}", "", Firmware(firmware), until="demo: powering off",
                       timeout=300,
                       cdrom=iso_project / "output/iso/n04.iso")
    BOOT_TIMES.append((f"standalone ISO, {firmware}", boot.marks))
    log = boot.log
    assert ("ISOLINUX" in log) if firmware == "bios" else ("Welcome to GRUB!" in log), log[-3000:]
    assert "wwinit: no network interface has MAC 52:54:00:99:00:14: standalone boot, no network, " \
           "hostname n04" in log, log[-3000:]
    _check_node(log, "n04")
    assert "demo: address eth0" not in log
    assert (log_file.read_text() if log_file.exists() else "") == access_before
