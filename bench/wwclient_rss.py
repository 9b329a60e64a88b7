"""Peak RSS of wwclient applying one big layer: it must stream, not hold the layer.

Usage: python bench/wwclient_rss.py [--size-mib 1024] [--compression none|gzip]

Writes a cpio newc layer of --size-mib MiB holding one file (zeros: a sparse
file when uncompressed, so generating it costs no disk), serves it from a
loopback HTTP server in this process, runs `python -I wwclient.py --once` as a
child and prints the child's peak RSS (getrusage(RUSAGE_CHILDREN).ru_maxrss).
The node's RAM is its root file system: the figure must stay small (under
64 MiB) whatever the layer's size. Needs about twice the layer's size of disk
(wwclient's cache and the installed file).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import http.server
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

WWCLIENT = Path(__file__).resolve().parent.parent / "toolchain" / "node" / "wwclient.py"
NODE = "bench"


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def newc_header(name: bytes, mode: int, size: int, ino: int) -> bytes:
    fields = [ino, mode, 0, 0, 1, 0, size, 0, 0, 0, 0, len(name) + 1, 0]
    head = b"070701" + b"".join(b"%08x" % f for f in fields) + name + b"\0"
    return head + b"\0" * (-len(head) % 4)


def write_layer(path: Path, size: int, compression: str) -> None:
    """One directory and one file of `size` zero bytes, streamed out (never in memory)."""
    parts = [newc_header(b"opt", 0o40755, 0, 1), newc_header(b"opt/big", 0o100644, size, 2)]
    tail = b"\0" * (-size % 4) + newc_header(b"TRAILER!!!", 0, 0, 3)
    with path.open("wb") as f:
        if compression == "none":
            f.write(b"".join(parts))
            f.seek(size, os.SEEK_CUR)  # a hole: zeros for free
            f.write(tail)
            return
        z = zlib.compressobj(6, wbits=31)
        f.write(z.compress(b"".join(parts)))
        zeros = bytes(1 << 20)
        for _ in range(size >> 20):
            f.write(z.compress(zeros))
        f.write(z.compress(bytes(size & ((1 << 20) - 1)) + tail) + z.flush())


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--compression", choices=("none", "gzip"), default="none")
    args = ap.parse_args()
    size = (args.size_mib << 20) - 4096  # the whole layer within wwclient's 1 GiB unpacked limit
    with tempfile.TemporaryDirectory(prefix="wwclient-rss-") as tmp:
        work = Path(tmp)
        served, root, state = work / "http", work / "root", work / "state"
        (served / "shared").mkdir(parents=True)
        (served / "nodes" / NODE).mkdir(parents=True)
        root.mkdir()
        layer = served / "shared" / "big.img"
        write_layer(layer, size, args.compression)
        manifest = {"format": 1, "node": NODE, "interval": 60, "layers": [
            {"url": "shared/big.img", "sha256": sha256(layer), "size": layer.stat().st_size}]}
        (served / "nodes" / NODE / "runtime.json").write_text(json.dumps(manifest))
        handler = functools.partial(Quiet, directory=str(served))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            start = time.monotonic()
            done = subprocess.run([sys.executable, "-I", str(WWCLIENT), "--once", "--timeout", "60",
                                   "--base", f"http://127.0.0.1:{server.server_address[1]}", "--node", NODE,
                                   "--root", str(root), "--state", str(state)],
                                  capture_output=True, text=True, check=False)
            took = time.monotonic() - start
        finally:
            server.shutdown()
        if done.returncode != 0 or (root / "opt/big").stat().st_size != size:
            print(f"wwclient failed ({done.returncode}): {done.stderr}", file=sys.stderr)
            return 1
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(f"layer: {args.size_mib} MiB ({args.compression}); applied in {took:.1f} s; "
          f"wwclient peak RSS: {peak_kib / 1024:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
