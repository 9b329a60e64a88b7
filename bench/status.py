"""How long `wwstatic status` takes to read a big access log.

Usage: python bench/status.py [LINES] [NODES]   (default: 1000000 10000)

The generated log is what a 10,000-node cluster's nginx writes: every node boots
once (iPXE script, kernel, image, a shared layer, system and runtime overlays,
some with content-addressed names), then wwclient polls runtime.json until the
log holds LINES lines; a few unknown MACs and failed requests are mixed in.
The baseline, measured in the same run on the same file, is the floor any
reader pays: read the file and split every line on tabs.
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.resolve import cluster_yaml
from toolchain.build import layout
from toolchain.model.load import load_cluster
from toolchain.ops.accesslog import Scan
from toolchain.ops.status import render


def write_log(path: Path, lines: int, cluster_nodes: list[tuple[str, str, str, str]]) -> None:
    """cluster_nodes: (name, ip, mac-hyphen, image) per node."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    ua = "iPXE/1.21.1"
    out = []
    n = 0

    def line(t: int, ip: str, status: int, uri: str, agent: str = ua) -> None:
        nonlocal n
        stamp = (start + timedelta(seconds=t)).isoformat()
        out.append(f"ww1\t{stamp}\t{ip}\t{status}\t1234\t/{uri}\t/{uri}\t{agent}\n")
        n += 1

    t = 0
    for i, (name, ip, mac, image) in enumerate(cluster_nodes):
        t += 1 if i % 20 == 0 else 0
        line(t, ip, 200, f"ipxe/{mac}.ipxe")
        line(t, ip, 200, layout.kernel_url(image, "c" * 64))
        line(t, ip, 200, layout.image_url(image, "c" * 64, "gzip"))
        line(t, ip, 200, f"shared/{i % 7:064x}.img.gz")
        line(t, ip, 200, f"nodes/{name}/system-{i:016x}.img.gz")
        line(t, ip, 200, layout.node_blob_url(name, "runtime", f"{i:064x}"))
        if i % 1000 == 0:
            line(t, "10.254.0.9", 200, f"ipxe/52-54-00-ff-{i >> 8 & 255:02x}-{i & 255:02x}.ipxe")
            line(t, ip, 404, f"nodes/{name}/missing")
    k = 0
    while n < lines:
        name, ip, _, _ = cluster_nodes[k % len(cluster_nodes)]
        t += 1 if k % 200 == 0 else 0
        line(t, ip, 200, f"nodes/{name}/runtime.json", "wwclient/1")
        k += 1
    path.write_text("".join(out))


def main(lines: int, size: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cpath = Path(tmp) / "cluster.yaml"
        cpath.write_text(cluster_yaml(size))
        cluster = load_cluster(cpath)
        log = Path(tmp) / "access.log"
        write_log(log, lines, [(nd.name, nd.ip, nd.mac_hyphen, nd.image) for nd in cluster.nodes])
        mib = log.stat().st_size / 2**20

        t0 = time.perf_counter()
        count = 0
        with log.open(encoding="utf-8") as f:
            for raw in f:
                count += len(raw.split("\t", 7))
        base = time.perf_counter() - t0

        t0 = time.perf_counter()
        scan = Scan(cluster, log).update()
        took = time.perf_counter() - t0
        t0 = time.perf_counter()
        text = render(list(cluster.nodes), scan, datetime.now(UTC), 180.0, False)
        shown = time.perf_counter() - t0
        assert len(scan.nodes) == size and len(scan.unknown) == size // 1000, (len(scan.nodes))
        print(f"log: {scan.lines} lines ({mib:.0f} MiB), {size} nodes, "
              f"{len(scan.unknown)} unknown MACs")
        print(f"{'baseline read+split s':>22} {'scan s':>7} {'ratio':>6} {'table s':>8}")
        print(f"{base:>22.2f} {took:>7.2f} {took / base:>6.2f} {shown:>8.2f}")
        print(text.splitlines()[-1])


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(args[0] if args else 1_000_000, args[1] if len(args) > 1 else 10_000)
