"""The generated nginx rules, enforced by a real nginx on loopback.

nginx allows and denies by the client's address, so the test cluster's nodes
live at 127.0.0.2 (n01, with a second device at 127.0.5.2) and 127.0.0.3 (n02),
and requests leave from those addresses (a client socket bound to them): n02
must be refused n01's files, machines outside the cluster networks everything.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab import httpd
from tests.lab.httpd import file, publish
from toolchain.build import generate, layout
from toolchain.model.load import load_cluster
from toolchain.node import wwclient

CLUSTER = """\
head: {{ip: 127.0.0.1, network: 127.0.0.0/24, http: "http://127.0.0.1:{port}"}}
images:
  demo: {{root: {root}}}
nodes:
  n01:
    image: demo
    network:
      default: {{ip: 127.0.0.2, mac: "52:54:00:00:00:01"}}
      ib: {{ip: 127.0.5.2, netmask: 255.255.255.0}}
  n02:
    image: demo
    network:
      default: {{ip: 127.0.0.3, mac: "52:54:00:00:00:02"}}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpd.Nginx]:
    work = tmp_path_factory.mktemp("serving")
    port = httpd.free_port()
    (work / "cluster.yaml").write_text(CLUSTER.format(port=port, root=work))
    cluster = load_cluster(work / "cluster.yaml")
    http = work / "http"
    (http / "shared").mkdir(parents=True)
    (http / "ipxe").mkdir()
    for node in cluster.nodes:
        publish(http, node.name, [file("etc/motd", f"{node.name}\n")])
        (http / layout.node_blob_url(node.name, "system", "0" * 64)).write_bytes(
            b"system of " + node.name.encode())
        (http / layout.ipxe_path(node)).write_text("#!ipxe\n")
    (http / "ipxe/unknown.ipxe").write_text("#!ipxe\necho unknown\n")
    (http / "shared/.partial.tmp").write_text("being written")
    with httpd.running(work / "nginx", generate.nginx_conf(cluster, http), port) as ng:
        yield ng


def status(ng: httpd.Nginx, source: str, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", ng.port, timeout=30, source_address=(source, 0))
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


# The name of each node's own system part in this test's tree.
SYSTEM = layout.node_blob_url("x", "system", "0" * 64).rsplit("/", 1)[1]
N01, N01_IB, N02, OTHER, OUTSIDE = "127.0.0.2", "127.0.5.2", "127.0.0.3", "127.0.0.9", "127.0.1.9"


@pytest.mark.parametrize(("source", "path", "expected"), [
    # A node gets its own files, from any of its addresses...
    (N01, "/nodes/n01/runtime.json", 200),
    (N01, "/nodes/n01/" + SYSTEM, 200),
    (N01_IB, "/nodes/n01/" + SYSTEM, 200),
    (N02, "/nodes/n02/" + SYSTEM, 200),
    # ...and never another node's, however the path is spelled.
    (N02, "/nodes/n01/runtime.json", 403),
    (N02, "/nodes/n01/" + SYSTEM, 403),
    (N01, "/nodes/n02/" + SYSTEM, 403),
    (N02, "/nodes/n02/../n01/" + SYSTEM, 403),
    (N02, "/nodes//n01/" + SYSTEM, 403),
    (N02, "/nodes/%6e01/" + SYSTEM, 403),
    (N02, "/NODES/n01/" + SYSTEM, 404),
    # A machine of the cluster network that is no node: shared files, no node's.
    (OTHER, "/nodes/n01/runtime.json", 403),
    (OTHER, "/ipxe/52-54-00-00-00-01.ipxe", 200),
    (OTHER, "/ipxe/52-54-00-00-00-99.ipxe", 200),  # the unknown-MAC script
    (N02, "/shared/", 403),                         # no listings
    (N01, "/shared/.partial.tmp", 403),             # nor files being written
    # Outside the cluster networks: nothing at all.
    (OUTSIDE, "/ipxe/52-54-00-00-00-01.ipxe", 403),
    (OUTSIDE, "/nodes/n01/runtime.json", 403),
])
def test_access_rules(server: httpd.Nginx, source: str, path: str, expected: int) -> None:
    assert status(server, source, path) == expected


def test_shared_layers_go_to_the_cluster_network(server: httpd.Nginx) -> None:
    layer = next((server.workdir.parent / "http/shared").glob("*.img.gz")).name
    assert status(server, OTHER, f"/shared/{layer}") == 200
    assert status(server, OUTSIDE, f"/shared/{layer}") == 403


def test_wwclient_of_another_node_is_refused(server: httpd.Nginx, tmp_path: Path) -> None:
    def client(node: str, source: str) -> wwclient.Client:
        (tmp_path / source).mkdir()
        opts = wwclient.Options(server.base, node, root=str(tmp_path / source),
                                state=str(tmp_path / source / ".state"), timeout=10, source=source)
        return wwclient.Client(opts)

    assert client("n01", N01).poll().fetched
    assert (tmp_path / N01 / "etc/motd").read_text() == "n01\n"
    with pytest.raises(wwclient.Unavailable, match="HTTP 403"):
        client("n01", N02).poll()
    assert not (tmp_path / N02 / "etc").exists()
