"""How long nginx takes to load the generated per-node access rules, at 10,000 nodes.

Usage: python bench/nginx_acl.py [N]   (default: 10000)

Three configs for the same generated cluster (bench/resolve.py's: two addresses
per node), each checked with `nginx -t` (which parses the config and builds every
table, as a start or reload does), median of five runs:
  baseline   the server block with no per-node rules (same run, same machine)
  geo+map    what wwstatic generates: a geo block (address -> node), one map on the URI
  locations  the naive alternative: one `location /nodes/<node>/ {allow ...; deny all;}` per node
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.resolve import cluster_yaml
from toolchain.build import generate
from toolchain.model.load import load_cluster
from toolchain.model.types import Cluster

MAIN = """\
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    include {conf};
}}
"""


def locations_variant(cluster: Cluster, conf: str) -> str:
    """Replace the geo/map rule with one location per node."""
    conf = re.sub(r"geo \$wwstatic_client_node \{.*?\n\}\n", "", conf, flags=re.S)
    conf = re.sub(r"map \$uri \$wwstatic_uri_node \{.*?\n\}\n", "", conf, flags=re.S)
    by_node: dict[str, list[str]] = {}
    for ip, name in generate.node_addresses(cluster):
        by_node.setdefault(name, []).append(ip)
    locs = "".join(f"    location /nodes/{n}/ {{ {''.join(f'allow {ip}; ' for ip in ips)}deny all; }}\n"
                   for n, ips in by_node.items())
    return re.sub(r"    location /nodes/ \{.*?\n    \}\n", locs, conf, flags=re.S)


def baseline_variant(conf: str) -> str:
    conf = re.sub(r"geo \$wwstatic_client_node \{.*?\n\}\n", "", conf, flags=re.S)
    conf = re.sub(r"map \$uri \$wwstatic_uri_node \{.*?\n\}\n", "", conf, flags=re.S)
    return re.sub(r"    location /nodes/ \{.*?\n    \}\n", "", conf, flags=re.S)


def check_time(workdir: Path, name: str, server_conf: str) -> float:
    d = workdir / name
    d.mkdir()
    (d / "server.conf").write_text(server_conf)
    (d / "main.conf").write_text(MAIN.format(d=d, conf=d / "server.conf"))
    times = []
    for _ in range(5):
        start = time.perf_counter()
        done = subprocess.run(["nginx", "-t", "-q", "-c", str(d / "main.conf")],
                              capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"{name}: nginx -t failed: {done.stderr}")
    return statistics.median(times)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "cluster.yaml").write_text(cluster_yaml(n))
        cluster = load_cluster(work / "cluster.yaml")
        # nginx -t binds the listen address: use loopback instead of the head's.
        conf = re.sub(r"listen \S+;", "listen 127.0.0.1:18099;",
                      generate.nginx_conf(cluster, work / "http"))
        variants = {"baseline": baseline_variant(conf), "geo+map": conf,
                    "locations": locations_variant(cluster, conf)}
        base = 0.0
        print(f"{n} nodes, {len(generate.node_addresses(cluster))} node addresses, "
              f"{len(generate.cluster_networks(cluster))} allowed networks", flush=True)
        for name, text in variants.items():
            t = check_time(work, name, text)
            base = base or t
            print(f"{name:10s} nginx -t {t * 1000:7.1f} ms  ({t / base:4.1f}x baseline)  "
                  f"config {len(text) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
