"""Build speed at scale: full, no-change and incremental builds of a generated cluster.

Usage: python bench/build.py [N ...]          (default: 1000 10000)
       python bench/build.py --baseline-sample K   (Warewulf-style baseline on K nodes, scaled)

The cluster (bench/resolve.py's generator) has N nodes over three nested
profiles, two network devices and a BMC each, the shipped overlays plus a site
overlay every node uses, and one small image. Each scenario is a real `doit`
run in the project, timed from outside. The baseline, measured in the same run,
does what Warewulf's overlay build does per node: render all the node's overlay
files into a temporary directory, then `find | cpio -o -H newc | pigz` it, once
for the system and once for the runtime overlay.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from resolve import cluster_yaml  # noqa: E402

from toolchain.build.plan import node_context  # noqa: E402
from toolchain.model.load import load_cluster  # noqa: E402
from toolchain.overlay import render as overlay  # noqa: E402

SITE_TEMPLATE = "# site settings of {{ node.name }}\nrole={{ node.tags.role }}\n"


def make_project(root: Path, n: int) -> None:
    image = root / "image"
    (image / "boot").mkdir(parents=True)
    (image / "boot/vmlinuz-6.1.0-bench").write_bytes(b"\0" * 4096)
    for d in ("bin", "etc", "sbin"):
        (image / d).mkdir()
    (image / "etc/os-release").write_text("ID=bench\n")
    text = cluster_yaml(n, single_first=True).replace("/srv/images/rocky", str(image))
    text = text.replace("system_overlays: [wwinit, hostname]", "system_overlays: [wwinit, hostname, site]")
    (root / "cluster.yaml").write_text(text)
    site = root / "overlays/site/rootfs/etc"
    site.mkdir(parents=True)
    (site / "site.conf.j2").write_text(SITE_TEMPLATE)
    shutil.copy(REPO / "dodo.py", root / "dodo.py")


def doit(root: Path, *args: str) -> tuple[float, int]:
    """Seconds a doit run took, and how many tasks it ran."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "doit", *args], cwd=root, capture_output=True,
                          text=True, check=False)
    took = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"doit failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return took, sum(1 for line in done.stdout.splitlines() if line.startswith(".  "))


def edit(root: Path, old: str, new: str) -> None:
    path = root / "cluster.yaml"
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def baseline(root: Path, sample: int) -> tuple[float, int]:
    """Warewulf-style per-node overlay builds of `sample` nodes: seconds, nodes done."""
    cluster = load_cluster(root / "cluster.yaml")
    env = overlay.make_env(root)
    nodes = cluster.nodes[:sample]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for node in nodes:
            for kind, names in (("system", node.system_overlays), ("runtime", node.runtime_overlays)):
                stage = Path(tmp) / node.name / kind
                for e in overlay.layer(root, names, node_context(cluster, node), env, node.name):
                    path = stage / e.path
                    if e.data is None:
                        path.mkdir(parents=True, exist_ok=True)
                    else:
                        path.parent.mkdir(parents=True, exist_ok=True)
                        path.write_bytes(e.data)
                        os.chmod(path, e.mode & 0o7777)
                out = Path(tmp) / f"{node.name}-{kind}.img.gz"
                subprocess.run(f"cd {stage} && find . | cpio --quiet -o -H newc | pigz -p2 -6 > {out}",
                               shell=True, check=True)
    return time.perf_counter() - t0, len(nodes)


def run(n: int, sample: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_project(root, n)
        rows: list[tuple[str, float, int]] = []
        rows.append(("full build", *doit(root)))
        rows.append(("no change", *doit(root)))
        edit(root, "ib: {ip: 10.200.0.1}", "ib: {ip: 10.199.0.1}")
        rows.append(("one node's IP", *doit(root)))
        site = root / "overlays/site/rootfs/etc/site.conf.j2"
        site.write_text(SITE_TEMPLATE + "# edited\n")
        rows.append(("template used by every node", *doit(root)))
        edit(root, "nodes:\n", "nodes:\n  extra01: {profiles: [compute], network: {default: "
                   "{ip: 10.254.0.1, mac: '52:54:ff:00:00:01'}}}\n")
        rows.append(("add a node (hosts list)", *doit(root)))
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        size = du(root / "output/http")
        base_s, base_n = baseline(root, min(sample, n))
        per_node = base_s / base_n
        full = rows[0][1]
        print(f"\n## {n} nodes")
        print(f"{'scenario':<32} {'seconds':>8} {'tasks run':>10}")
        for name, secs, tasks in rows:
            print(f"{name:<32} {secs:>8.2f} {tasks:>10}")
        print(f"peak memory of a doit run: {peak:.0f} MiB; output/http: {size / 1e6:.1f} MB "
              f"({size / n / 1e3:.1f} kB per node)")
        print(f"Warewulf-style baseline: {base_s:.2f} s for {base_n} nodes = {per_node * 1e3:.1f} ms/node"
              f" -> {per_node * n:.1f} s for {n} nodes"
              + ("" if base_n == n else f" (scaled from {base_n})"))
        print(f"ratio baseline / wwstatic full build: {per_node * n / full:.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sizes", nargs="*", type=int, default=[1000, 10000])
    ap.add_argument("--baseline-sample", type=int, default=1000,
                    help="nodes the baseline builds (scaled to N if fewer); default 1000")
    args = ap.parse_args()
    for n in args.sizes:
        run(n, args.baseline_sample)


if __name__ == "__main__":
    main()
