"""Generated iPXE and nginx configs: golden files, and nginx accepts its config (DHCP: test_dhcp.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.lab.netboot import nginx_main
from tests.support.checkers import fixed_plan
from tests.support.golden import check_golden
from tests.support.project import REPO
from toolchain.build import generate
from toolchain.model.load import load_cluster
from toolchain.model.types import Cluster


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    return load_cluster(REPO / "cluster.yaml")


node_plan = fixed_plan


def test_golden_files(cluster: Cluster) -> None:
    np = node_plan(cluster, "n01")
    check_golden("n01.ipxe", generate.node_ipxe(cluster, np))
    check_golden("group.ipxe", generate.group_ipxe(cluster, np.group))
    check_golden("unknown.ipxe", generate.unknown_ipxe(cluster))
    check_golden("nginx.conf", generate.nginx_conf(cluster, Path("/srv/wwstatic/output/http")))


def test_ipxe_layers_in_order(cluster: Cluster) -> None:
    np = node_plan(cluster, "n02")
    script = generate.node_ipxe(cluster, np)
    assert "set wwsystem nodes/n02/system-ssss" in script
    assert "chain ${base}/groups/9999" in script
    group = generate.group_ipxe(cluster, np.group)
    lines = [line for line in group.splitlines() if line.startswith(("kernel ", "initrd "))]
    names = ["image", "system", "system-node", "runtime", "runtime-node"]
    assert [line.split()[2] for line in lines] == ["vmlinuz", *names]
    assert lines[0].split()[4:9] == [f"initrd={n}" for n in names]
    assert lines[0].endswith("${wwargs} || goto failed")
    assert "${base}/shared/system-" in lines[2]
    assert "${base}/${wwsystem}" in lines[3]


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
