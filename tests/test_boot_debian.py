"""A real Debian image, built by debootstrap and booted with systemd.

The image is debootstrapped from this machine's apt mirror (cached under
~/.cache/wwstatic, so only the first run downloads), archived by wwstatic with
zstd, and booted over the network in QEMU: wwinit's /init sets the node up, then
systemd must reach multi-user.target on the serial console.

Run it alone with `pytest -m slow_image`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BOOT_TIMES, make_project, run_doit
from tests.netboot import Firmware, NetLab
from toolchain.spec import DhcpBackend

pytestmark = [pytest.mark.boot, pytest.mark.slow_image]

NODE, MAC = "n01", "52:54:00:99:00:11"
ANSI = re.compile(r"\x1b(\[[0-9;?]*[A-Za-z]|c)")
DEBIAN = {
    "debootstrap": {
        "suite": "bookworm",
        "variant": "minbase",
        # The cloud kernel: virtio drivers, a third of the modules of linux-image-amd64.
        "include": ["systemd-sysv", "iproute2", "kmod", "linux-image-cloud-amd64"],
    },
    "compression": "zstd",
    "exclude": ["/boot/*", "/var/cache/apt/*", "/var/lib/apt/lists/*", "/usr/share/doc/*",
                "/usr/share/man/*", "/usr/share/locale/*"],
}


@pytest.fixture(scope="module")
def debian_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    def edit(data: dict[str, object]) -> None:
        data["images"]["debian"] = DEBIAN  # type: ignore[index]
        profile = data["profiles"]["default"]  # type: ignore[index]
        profile["image"] = "debian"
        # Status lines with unit names, on the serial console; no `quiet`.
        profile["kernel"]["args"] = ["console=ttyS0", "systemd.show_status=1",
                                     "systemd.status_unit_format=combined", "systemd.log_color=0",
                                     "SYSTEMD_COLORS=0", "panic=5"]

    project = make_project(tmp_path_factory.mktemp("debian"), edit)
    done = run_doit(project)
    assert done.returncode == 0, done.stdout + done.stderr
    return project


@pytest.fixture(scope="module")
def net(debian_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetLab]:
    lab = NetLab(tmp_path_factory.mktemp("net"))
    try:
        lab.create()
        lab.start_services(debian_project / "output")
        lab.start_dhcp(DhcpBackend.ISC, debian_project / "output")
        yield lab
    finally:
        lab.close()


def test_debian_boots_to_multi_user(net: NetLab, debian_project: Path) -> None:
    image = next((debian_project / "output/http/images/debian").glob("image-*.img.zst"))
    assert image.read_bytes()[:4] == b"\x28\xb5\x2f\xfd"
    # Colours are asked off; should a terminal setting turn them on, the unit
    # name is still followed by its description.
    boot = net.boot(NODE, MAC, Firmware.BIOS, until="multi-user.target", timeout=600, memory=1536)
    BOOT_TIMES.append(("debian", boot.marks))
    log = ANSI.sub("", boot.log)
    assert "wwinit: starting" in log, f"/init never ran:\n{log[-3000:]}"
    errors = [line for line in log.splitlines() if line.startswith(("/init:", "wwinit: ERROR"))]
    assert not errors, errors
    assert f"wwinit: network eth0 10.99.0.11/24, hostname {NODE}" in log, log[-3000:]
    assert "wwinit: done, starting /sbin/init" in log
    assert "systemd 252" in log, log[-3000:]
    assert "Reached target multi-user.target" in log, log[-5000:]
    assert "Failed to start" not in log.split("Reached target multi-user.target")[0], log[-5000:]
