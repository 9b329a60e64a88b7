"""Image build speed against Warewulf's way, and the no-change decision.

Usage: python bench/images.py [--big-gb 1.5] [--no-big] [--runs 3]   (as root: debootstrap)

Roots (made once, cached under ~/.cache/wwstatic):
  minbase  `debootstrap --variant=minbase bookworm` from this machine's apt mirror
  big      minbase plus copies of its /usr under /opt until it is --big-gb GB

For each root, measured in the same run on the same machine (best of --runs,
as the machine may be shared):
  baseline  `find . | cpio -o -H newc | pigz -p2 -6` (what Warewulf runs) and
            `find . | cpio -o -H newc | zstd -T2 -3`
  wwstatic  toolchain.image.build_image with gzip and with zstd
  no-change the stat fingerprint wwstatic's image task compares, and a whole
            `doit image:<name>` run that finds nothing to do (Python start included)
The minbase root is also built from a tarball of itself (the `tarball:` source).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from toolchain.archive import Compression, write_cpio
from toolchain.image import debootstrap
from toolchain.image.builder import Source, build_image, open_tree
from toolchain.image.tree import dir_fingerprint
from toolchain.model.types import Debootstrap

REPO = Path(__file__).resolve().parent.parent
BENCH = debootstrap.cache_root().parent / "bench"


def timed(fn: Callable[[], object], runs: int = 1) -> float:
    """The best of `runs` wall times: the machine is shared, the minimum is the least noisy."""
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def sh(cmd: str, cwd: Path) -> None:
    subprocess.run(["sh", "-c", cmd], cwd=cwd, check=True)


def tree_size(root: Path) -> tuple[int, int]:
    total = files = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + dirnames:
            st = os.lstat(os.path.join(dirpath, name))
            files += 1
            total += st.st_size if not os.path.isdir(os.path.join(dirpath, name)) else 0
    return total, files


def big_root(minbase: Path, gb: float) -> Path:
    dest = BENCH / f"big-{gb:g}g"
    if (dest / ".done").exists():
        return dest / "rootfs"
    if dest.exists():
        shutil.rmtree(dest)
    root = dest / "rootfs"
    dest.mkdir(parents=True)
    subprocess.run(["cp", "-a", str(minbase), str(root)], check=True)
    n = 0
    while tree_size(root)[0] < gb * 1e9:
        n += 1
        subprocess.run(["cp", "-a", str(minbase / "usr"), str(root / "opt" / f"copy{n}")], check=True)
    (dest / ".done").touch()
    return root


def mb(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.0f}"


def noop_doit(root: Path, work: Path) -> float:
    """A project whose one image is `root`: build once (no compression), then time a no-op run."""
    project = work / "project"
    project.mkdir()
    shutil.copy(REPO / "dodo.py", project / "dodo.py")
    # minbase has no kernel: a stand-in image lends one (and a modules layer).
    kernel = work / "kernel"
    (kernel / "lib/modules/6.1.0-0-amd64").mkdir(parents=True)
    (kernel / "boot").mkdir()
    (kernel / "boot/vmlinuz-6.1.0-0-amd64").write_bytes(b"stand-in kernel")
    (project / "cluster.yaml").write_text(f"""\
head: {{ip: 10.99.0.1, network: 10.99.0.0/24}}
images:
  kernel: {{root: {kernel}}}
  bench: {{root: {root}, compression: none, exclude: [/opt/*], kernel: {{from: kernel}}}}
""")
    env = {**os.environ, "PYTHONPATH": str(REPO), "WWSTATIC_PROGRESS": "0"}

    def doit() -> str:
        done = subprocess.run([sys.executable, "-m", "doit", "image:bench"], cwd=project, env=env,
                              capture_output=True, text=True, check=True)
        return done.stdout

    doit()
    t0 = time.perf_counter()
    out = doit()
    took = time.perf_counter() - t0
    assert out.strip() == "-- image:bench", out
    return took


def bench(name: str, root: Path, runs: int, tarball: Path | None = None) -> None:
    size, files = tree_size(root)
    print(f"\n{name}: {root}\n  {size / 1e6:.0f} MB in {files} files and directories")
    with tempfile.TemporaryDirectory(dir=BENCH, prefix="run-") as tmp:
        work = Path(tmp)
        rows = []
        for label, cmd, comp in (
                ("gzip", "pigz -p2 -6", Compression.GZIP), ("zstd", "zstd -q -T2 -3", Compression.ZSTD)):
            base_out, ww_out = work / f"base.{label}", work / f"ww.{label}"
            base = timed(partial(sh, f"find . | cpio -o -H newc --quiet | {cmd} > {base_out}", root),
                         runs)
            ww = timed(partial(build_image, root, ww_out, compression=comp), runs)
            rows.append((label, cmd, base, ww, mb(base_out), mb(ww_out)))
            if tarball is not None:
                tar_out = work / f"tar.{label}"

                def from_tar(comp: Compression = comp, out: Path = tar_out) -> None:
                    with open_tree(Source("tarball", tarball), work) as tree:
                        write_cpio(tree.values(), out, comp)

                rows.append((label + " from tarball", cmd, base, timed(from_tar, runs), mb(base_out),
                             mb(tar_out)))
        print(f"  {'':20} {'baseline s':>10} {'wwstatic s':>10} {'ratio':>6}   {'MB base/ww':>11}")
        for label, cmd, base, ww, bmb, wmb in rows:
            print(f"  {label:20} {base:>10.2f} {ww:>10.2f} {ww / base:>6.2f}   {bmb:>5}/{wmb:<5}"
                  f"  (baseline: find | cpio | {cmd})")
        fp = min(timed(lambda: dir_fingerprint(root)) for _ in range(3))
        noop = noop_doit(root, work)
        print(f"  no-change decision: fingerprint {fp:.2f} s; whole `doit image:<name>` run {noop:.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--big-gb", type=float, default=1.5)
    ap.add_argument("--no-big", action="store_true")
    ap.add_argument("--runs", type=int, default=3, help="best of this many runs of each build")
    args = ap.parse_args()
    BENCH.mkdir(parents=True, exist_ok=True)
    for tool in ("pigz", "zstd", "cpio"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (sh toolchain/bootstrap.sh installs it)")
    print(f"cores: {os.cpu_count()}; wwstatic runs pigz -p{os.cpu_count()} and zstd -T0")
    minbase = debootstrap.build_root(Debootstrap("bookworm", "minbase"))
    tarball = BENCH / "minbase.tar"
    if not tarball.exists():
        subprocess.run(["tar", "-cf", f"{tarball}.tmp", "-C", str(minbase), "."], check=True)
        os.replace(f"{tarball}.tmp", tarball)
    bench("minbase", minbase, args.runs, tarball)
    if not args.no_big:
        bench(f"big ({args.big_gb:g} GB)", big_root(minbase, args.big_gb), max(1, args.runs - 1))


if __name__ == "__main__":
    main()
