"""DHCP configs for ISC dhcpd, dnsmasq and Kea: golden files, and each daemon's own check."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.golden import check_golden
from tests.support.project import REPO
from toolchain.build import dhcp
from toolchain.build.dhcp.plan import FIRST_STAGES, ClientArch
from toolchain.model.load import load_cluster
from toolchain.model.spec import DhcpBackend
from toolchain.model.types import Cluster

TFTP_ROOT = Path("/srv/wwstatic/output/tftp")
BACKENDS = list(DhcpBackend)
IFACE = "br7"
VARIANT = f"""
dhcp:
  backend: kea
  interface: {IFACE}
  dnsmasq_tftp: true
  range: {{start: 10.99.0.200, end: 10.99.0.250}}
  lease_time: 7200
"""


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    return load_cluster(REPO / "cluster.yaml")


@pytest.fixture(scope="module")
def variant(tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    """The shipped cluster with every DHCP setting changed from its default."""
    where = tmp_path_factory.mktemp("variant")
    (where / "cluster.yaml").write_text((REPO / "cluster.yaml").read_text() + VARIANT)
    (where / "overlays").symlink_to(REPO / "overlays")
    return load_cluster(where / "cluster.yaml")


def daemon_check(backend: DhcpBackend, conf: Path) -> subprocess.CompletedProcess[str]:
    """Run the daemon's own configuration check on `conf`."""
    if backend is DhcpBackend.ISC:
        leases = conf.parent / "dhcpd.leases"
        leases.touch()
        argv = ["dhcpd", "-4", "-t", "-cf", str(conf), "-lf", str(leases)]
    elif backend is DhcpBackend.DNSMASQ:
        argv = ["dnsmasq", "--test", f"--conf-file={conf}"]
    else:
        # Kea's check looks the interface up: give it one, in a network namespace
        # that ends with the command.
        argv = ["unshare", "--net", "sh", "-c",
                f"ip link add {IFACE} type bridge && exec kea-dhcp4 -t {conf}"]
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)


def kea_json(text: str) -> dict[str, object]:
    """Kea's file as JSON: our header is `//` comments, which Kea reads and json does not."""
    data = json.loads("\n".join(line for line in text.splitlines() if not line.startswith("//")))
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("backend", BACKENDS)
def test_golden_files(backend: DhcpBackend, cluster: Cluster) -> None:
    check_golden(dhcp.FILES[backend], dhcp.config_text(backend, cluster, TFTP_ROOT))


@pytest.mark.parametrize("which", ["shipped", "variant"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_daemon_accepts_config(backend: DhcpBackend, which: str, cluster: Cluster, variant: Cluster,
                               tmp_path: Path) -> None:
    conf = tmp_path / dhcp.FILES[backend]
    conf.write_text(dhcp.config_text(backend, cluster if which == "shipped" else variant, TFTP_ROOT))
    done = daemon_check(backend, conf)
    assert done.returncode == 0, done.stdout + done.stderr


BROKEN = {
    DhcpBackend.ISC: "subnet 10.0.0.0 netmask {\n",
    DhcpBackend.DNSMASQ: "dhcp-range=10.0.0.0,static,255.255.255.0,3600\ndhcp-hots=52:54:00:00:00:01\n",
    DhcpBackend.KEA: '{"Dhcp4": {"subnet4": [{"subnet": "10.0.0.0/24", "id": "one"}]}}\n',
}


@pytest.mark.parametrize("backend", BACKENDS)
def test_daemon_rejects_broken_config(backend: DhcpBackend, tmp_path: Path) -> None:
    # The check above can fail: each daemon refuses a broken file.
    conf = tmp_path / dhcp.FILES[backend]
    conf.write_text(BROKEN[backend])
    assert daemon_check(backend, conf).returncode != 0


def test_settings_reach_every_backend(variant: Cluster) -> None:
    isc = dhcp.config_text(DhcpBackend.ISC, variant, TFTP_ROOT)
    assert "  range 10.99.0.200 10.99.0.250;" in isc
    assert "max-lease-time 7200;" in isc
    masq = dhcp.config_text(DhcpBackend.DNSMASQ, variant, TFTP_ROOT)
    assert "dhcp-range=10.99.0.200,10.99.0.250,255.255.255.0,7200" in masq.splitlines()
    assert "dhcp-range=10.99.0.0,static,255.255.255.0,7200" in masq.splitlines()
    assert f"interface={IFACE}" in masq.splitlines()
    assert f"tftp-root={TFTP_ROOT}" in masq.splitlines()
    kea = kea_json(dhcp.config_text(DhcpBackend.KEA, variant, TFTP_ROOT))["Dhcp4"]
    assert isinstance(kea, dict)
    assert kea["interfaces-config"] == {"interfaces": [IFACE]}
    assert kea["valid-lifetime"] == 7200
    assert kea["subnet4"][0]["pools"] == [{"pool": "10.99.0.200 - 10.99.0.250"}]


def test_defaults_serve_no_tftp_and_no_pool(cluster: Cluster) -> None:
    assert cluster.dhcp.backend is DhcpBackend.ISC
    masq = dhcp.config_text(DhcpBackend.DNSMASQ, cluster, TFTP_ROOT)
    assert "enable-tftp" not in masq and "interface=" not in masq
    assert " range " not in dhcp.config_text(DhcpBackend.ISC, cluster, TFTP_ROOT)
    kea = kea_json(dhcp.config_text(DhcpBackend.KEA, cluster, TFTP_ROOT))["Dhcp4"]
    assert isinstance(kea, dict)
    assert kea["subnet4"][0]["pools"] == []
    assert kea["interfaces-config"] == {"interfaces": ["*"]}


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_node_and_first_stage(backend: DhcpBackend, cluster: Cluster) -> None:
    text = dhcp.config_text(backend, cluster, TFTP_ROOT)
    for node in cluster.nodes:
        assert node.mac in text and node.ip in text, node.name
    for stage in FIRST_STAGES:
        assert stage.name in text
    assert "http://10.99.0.1/ipxe/${mac:hexhyp}.ipxe" in text
    assert "http://10.99.0.1/boot/snponly.efi" in text
    assert "HTTPClient" in text


def test_first_stages_cover_the_pxe_architectures() -> None:
    covered = [arch for stage in FIRST_STAGES for arch in stage.arches]
    assert sorted(covered) == sorted(set(ClientArch) - {ClientArch.EFI_X86_64_HTTP})
