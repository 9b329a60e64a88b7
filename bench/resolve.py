"""How long cluster.yaml takes to load, validate and resolve, at 1,000 and 10,000 nodes.

Usage: python bench/resolve.py [N ...]   (default: 1000 10000)

The generated cluster has three profiles (nested), racks of nodes written as
hostlists with two network devices (both counted up) and a BMC each. The
baseline, measured in the same run, is PyYAML's plain safe_load of the same file:
the parse alone, before any validation or merging.
"""

from __future__ import annotations

import ipaddress
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from toolchain.model.load import load_cluster

RACK = 100


def _rack(name: str, profile: str, first: int, count: int, ib: str, ipmi: str) -> str:
    macs = ", ".join(f'"52:54:{(first + i) >> 16 & 255:02x}:{(first + i) >> 8 & 255:02x}:'
                     f'{(first + i) & 255:02x}:01"' for i in range(count))
    return f"""\
  {name}:
    profiles: [{profile}]
    network:
      default: {{ip: {ipaddress.IPv4Address("10.0.0.1") + first}, mac: [{macs}]}}
      ib: {{ip: {ib}}}
    ipmi: {{ip: {ipmi}}}
"""


def cluster_yaml(n: int, single_first: bool = False) -> str:
    """`single_first` writes the first node on its own, so a change can touch just it."""
    racks = []
    for r in range(n // RACK):
        first = r * RACK
        profile = "gpu" if r % 4 == 0 else "compute"
        if single_first and r == 0:
            racks.append(_rack("r000n001", profile, 0, 1, "10.200.0.1", "10.201.0.1"))
            racks.append(_rack(f"r000n[002-{RACK:03d}]", profile, 1, RACK - 1, "10.200.0.2", "10.201.0.2"))
        else:
            racks.append(_rack(f"r{r:03d}n[001-{RACK:03d}]", profile, first, RACK,
                               f"10.200.{r}.1", f"10.201.{r}.1"))
    return f"""\
head: {{ip: 10.255.255.254, network: 10.0.0.0/8}}
images:
  rocky: {{root: /srv/images/rocky}}
profiles:
  base:
    image: rocky
    kernel: {{args: [quiet, crashkernel=no]}}
    system_overlays: [wwinit, hostname]
    runtime_overlays: [hosts]
  compute:
    profiles: [base]
    network:
      ib: {{type: infiniband, device: ib0, netmask: 255.255.255.0}}
    ipmi: {{netmask: 255.255.0.0, user: admin, password: secret, write: true}}
    tags: {{role: compute}}
  gpu:
    profiles: [compute]
    kernel: {{args: [~quiet, nouveau.modeset=0]}}
    tags: {{role: gpu}}
nodes:
{''.join(racks)}"""


def main(sizes: list[int]) -> None:
    print(f"{'nodes':>7} {'yaml.safe_load s':>17} {'load_cluster s':>15} {'ratio':>6}")
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "cluster.yaml"
            path.write_text(cluster_yaml(n))
            t0 = time.perf_counter()
            yaml.load(path.read_text(), Loader=yaml.CSafeLoader if hasattr(yaml, "CSafeLoader")
                      else yaml.SafeLoader)
            base = time.perf_counter() - t0
            t0 = time.perf_counter()
            cluster = load_cluster(path)
            took = time.perf_counter() - t0
            assert len(cluster.nodes) == n, len(cluster.nodes)
            print(f"{n:>7} {base:>17.2f} {took:>15.2f} {took / base:>6.2f}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1000, 10000])
