"""Generated iPXE and nginx configs: golden files, and nginx accepts its config (DHCP: test_dhcp.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.netboot import nginx_main
from toolchain import generate
from toolchain.model import Cluster, load_cluster

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    return load_cluster(REPO / "cluster.yaml")


def check_golden(name: str, text: str) -> None:
    """Compare with tests/golden/NAME; WWSTATIC_UPDATE_GOLDEN=1 rewrites it."""
    path = GOLDEN / name
    if os.environ.get("WWSTATIC_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs from its golden file"


def test_golden_files(cluster: Cluster) -> None:
    check_golden("n01.ipxe", generate.node_ipxe(cluster, cluster.node("n01")))
    check_golden("unknown.ipxe", generate.unknown_ipxe(cluster))
    check_golden("nginx.conf", generate.nginx_conf(cluster, Path("/srv/wwstatic/output/http")))


def test_ipxe_layers_in_order(cluster: Cluster) -> None:
    script = generate.node_ipxe(cluster, cluster.node("n02"))
    lines = [line for line in script.splitlines() if line.startswith(("kernel ", "initrd "))]
    assert [line.split()[2] for line in lines] == ["vmlinuz", "image", "system", "runtime"]
    assert lines[0].split()[4:7] == ["initrd=image", "initrd=system", "initrd=runtime"]
    assert "${base}/nodes/n02/system.img.gz" in lines[2]
    assert "console=ttyS0" in lines[0]


def test_nginx_accepts_config(cluster: Cluster, tmp_path: Path) -> None:
    server = tmp_path / "server.conf"
    server.write_text(generate.nginx_conf(cluster, tmp_path / "http"))
    main = tmp_path / "nginx.conf"
    main.write_text(nginx_main(tmp_path, server))
    # nginx -t binds the listen address: give it the head's, in a private
    # network namespace that ends with the command.
    script = (f"ip link set lo up && ip addr add {cluster.head.ip}/32 dev lo && "
              f"nginx -t -e {tmp_path}/err.log -c {main}")
    done = subprocess.run(["unshare", "--net", "sh", "-c", script],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
