"""A real Debian image, built by debootstrap and booted with systemd and the shipped overlays.

The image is debootstrapped from this machine's apt mirror (cached under
~/.cache/wwstatic, so only the first run downloads), archived by wwstatic with
zstd, and booted over the network in QEMU: wwinit's /init sets the node up, then
systemd must reach multi-user.target on the serial console.

The node carries the overlays a real cluster uses (hostname, hosts, fstab,
ssh.host_keys, systemd.networkd). A test-only site overlay adds a unit that
runs once the node is up and prints what those overlays achieved to the serial
console: networkd manages the NIC, sshd serves the node's own host keys, the
fstab line is mounted. One boot serves both tests.

Run it alone with `pytest -m slow_image`.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.netboot import Boot, Firmware, NetLab, running_lab
from tests.support.project import BOOT_TIMES, boot_project

pytestmark = [pytest.mark.lab, pytest.mark.slow_image]

NODE, MAC, IP = "n01", "52:54:00:99:00:11", "10.99.0.11"
KEY_TYPES = ("ed25519", "ecdsa", "rsa")
ANSI = re.compile(r"\x1b(\[[0-9;?]*[A-Za-z]|c)")
DEBIAN = {
    "debootstrap": {
        "suite": "bookworm",
        "variant": "minbase",
        # The cloud kernel: virtio drivers, a third of the modules of linux-image-amd64.
        # udev: networkd waits for udev to have seen a link before it configures it.
        # dbus: networkctl status asks networkd over D-Bus.
        "include": ["systemd-sysv", "udev", "dbus", "iproute2", "kmod", "openssh-server",
                    "linux-image-cloud-amd64"],
    },
    "compression": "zstd",
    "exclude": ["/boot/*", "/var/cache/apt/*", "/var/lib/apt/lists/*", "/usr/share/doc/*",
                "/usr/share/man/*", "/usr/share/locale/*"],
}
# A per-node file system that needs no disk: systemd mounts it from /etc/fstab.
SCRATCH = {"spec": "tmpfs", "file": "/scratch", "vfstype": "tmpfs", "mntops": "size=16m,mode=1777"}

# Runs after multi-user.target, once sshd is up and networkd says the network is
# online, prints to the console and powers the node off (the test waits for `done`).
UNIT = """\
[Unit]
Description=wwstatic test probe of what the overlays set up
Wants=network-online.target
After=multi-user.target network-online.target ssh.service

[Service]
Type=oneshot
ExecStart=/bin/sh /usr/local/sbin/wwprobe
"""
PROBE = f"""\
exec >/dev/console 2>&1
say() {{ echo "probe: $*"; }}
say "hostname $(hostname) file $(cat /etc/hostname)"
networkctl status --no-pager eth0 | sed -n 's/^ *\\(State\\|Network File\\): /probe: networkd \\1: /p'
grep '^10\\.99\\.0\\.' /etc/hosts | tr '\\t' ' ' | sed 's/^/probe: hosts /'
say "ssh $(systemctl is-active ssh.service)"
for kind in {' '.join(KEY_TYPES)}; do
    key=/etc/ssh/ssh_host_${{kind}}_key
    say "hostkey file $kind $(ssh-keygen -lf $key.pub | cut -d' ' -f2) $(stat -c '%a %U' $key)"
done
# The keys the running sshd serves, asked over the network as a client would.
ssh-keyscan -t {','.join(KEY_TYPES)} {IP} 2>/dev/null | ssh-keygen -lf - | while read -r bits fp rest; do
    say "hostkey served $fp"
done
say "mount $(findmnt -n -r -o SOURCE,FSTYPE,TARGET,OPTIONS /scratch)"
say "failed units: $(systemctl list-units --state=failed --no-legend --plain | cut -d' ' -f1 | xargs)"
# Why the network never came online, should it not have.
if systemctl -q is-failed systemd-networkd-wait-online.service; then
    journalctl -b --no-pager -o cat -u systemd-networkd -u systemd-udevd | sed 's/^/probe: journal /'
    udevadm info /sys/class/net/eth0 | sed 's/^/probe: udev /'
fi
say "done"
systemctl poweroff --no-block
"""


def write_probe(project: Path) -> None:
    root = project / "overlays" / "wwprobe" / "rootfs"
    units = root / "etc/systemd/system"
    (units / "multi-user.target.wants").mkdir(parents=True)
    (units / "wwprobe.service").write_text(UNIT)
    (units / "multi-user.target.wants/wwprobe.service.j2").write_text(
        '{{ symlink("/etc/systemd/system/wwprobe.service") }}\n')
    (root / "usr/local/sbin").mkdir(parents=True)
    (root / "usr/local/sbin/wwprobe").write_text(PROBE)


@pytest.fixture(scope="module")
def debian_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    def edit(data: dict[str, Any]) -> None:
        data["images"]["debian"] = DEBIAN
        profile = data["profiles"]["default"]
        profile["image"] = "debian"
        # Status lines with unit names, on the serial console; no `quiet`.
        profile["kernel"]["args"] = ["console=ttyS0", "systemd.show_status=1",
                                     "systemd.status_unit_format=combined", "systemd.log_color=0",
                                     "SYSTEMD_COLORS=0", "panic=5", "no_timer_check"]  # project.py says why
        profile["system_overlays"] = ["wwinit", "hostname", "fstab", "ssh.host_keys",
                                      "systemd.networkd", "wwprobe"]
        profile["runtime_overlays"] = ["hosts"]
        data["nodes"]["n[01-04]"]["resources"] = {"fstab": [SCRATCH]}

    return boot_project(tmp_path_factory.mktemp("debian"), edit, write_probe)


@pytest.fixture(scope="module")
def net(debian_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetLab]:
    with running_lab(tmp_path_factory.mktemp("net"), debian_project / "output") as lab:
        yield lab


@pytest.fixture(scope="module")
def boot(net: NetLab) -> Boot:
    booted = net.boot(NODE, MAC, Firmware.BIOS, until="probe: done", timeout=600, memory=1536)
    BOOT_TIMES.append(("debian", booted.marks))
    return booted


def test_debian_boots_to_multi_user(boot: Boot, debian_project: Path) -> None:
    image = next((debian_project / "output/http/images/debian").glob("image-*.img.zst"))
    assert image.read_bytes()[:4] == b"\x28\xb5\x2f\xfd"
    # Colours are asked off; should a terminal setting turn them on, the unit
    # name is still followed by its description.
    log = ANSI.sub("", boot.log)
    assert "wwinit: starting" in log, f"/init never ran:\n{log[-3000:]}"
    errors = [line for line in log.splitlines() if line.startswith(("/init:", "wwinit: ERROR"))]
    assert not errors, errors
    assert f"wwinit: network eth0 {IP}/24, hostname {NODE}" in log, log[-3000:]
    assert "wwinit: done, starting /sbin/init" in log
    assert "systemd 252" in log, log[-3000:]
    assert "Reached target multi-user.target" in log, log[-5000:]
    assert "Failed to start" not in log.split("Reached target multi-user.target")[0], log[-5000:]


def probe_lines(log: str) -> list[str]:
    return [line.split("probe: ", 1)[1].rstrip() for line in log.splitlines() if "probe: " in line]


def fingerprint(pub: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True, check=True)
    return out.stdout.split()[1]


def test_debian_overlays_in_place(boot: Boot, debian_project: Path) -> None:
    log = ANSI.sub("", boot.log)
    probe = probe_lines(log)
    assert "done" in probe, f"the probe unit never finished:\n{log[-5000:]}"
    # systemd.networkd: networkd took over the NIC /init set up, with the overlay's file.
    assert "networkd State: routable (configured)" in probe, probe
    assert "networkd Network File: /etc/systemd/network/10-wwstatic-default.network" in probe, probe
    # hostname and hosts (a runtime overlay): the node knows itself and the other nodes.
    assert f"hostname {NODE} file {NODE}" in probe, probe
    for i in range(1, 5):
        assert f"hosts 10.99.0.1{i} n0{i}" in probe, probe
    # ssh.host_keys: sshd runs and serves this node's own keys, the ones kept on the head.
    assert "ssh active" in probe, probe
    kept = debian_project / "state" / "ssh" / NODE
    served = {line.split()[2] for line in probe if line.startswith("hostkey served ")}
    for kind in KEY_TYPES:
        fp = fingerprint(kept / f"ssh_host_{kind}_key.pub")
        assert f"hostkey file {kind} {fp} 600 root" in probe, (kind, probe)
        assert fp in served, (kind, fp, served)
    assert len(served) == len(KEY_TYPES), served
    # Another node's keys differ: the keys are per node, not one set for the cluster.
    assert fingerprint(debian_project / "state/ssh/n02/ssh_host_ed25519_key.pub") not in served
    # fstab: systemd mounted the node's own file system from the generated fstab.
    mounts = [line for line in probe if line.startswith("mount tmpfs tmpfs /scratch ")]
    assert mounts and "size=16384k" in mounts[0], probe
    assert "failed units:" in probe, probe  # none
