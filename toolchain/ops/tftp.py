"""A read-only TFTP server for the TFTP tree, for sites without one (tftpy).

tftpy opens any existing file under its root, following symlinks, and writes
uploads. We give tftpy an empty root so every read comes to `_open`, which
resolves the path and refuses anything outside the tree; uploads are refused.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from pathlib import Path
from typing import IO, Any

import tftpy

from toolchain.errors import WWError
from toolchain.verbs import Verb

log = logging.getLogger("wwstatic.tftp")


class ReadOnlyTree:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def open(self, name: str, **_: Any) -> IO[bytes] | None:
        rel = name.lstrip("/")
        path = Path(os.path.realpath(self.root / rel))
        if path != self.root and self.root not in path.parents:
            log.warning("refused %s: outside %s", name, self.root)
            return None
        if not path.is_file():
            log.info("not found: %s", name)
            return None
        log.info("sending %s", rel)
        return path.open("rb")


def _refuse_upload(path: str, _context: Any) -> None:
    log.warning("refused upload of %s: this server is read-only", path)
    return None


def serve(root: Path, listen: str = "0.0.0.0", port: int = 69) -> None:
    """Serve `root` until interrupted."""
    tree = ReadOnlyTree(root)
    with tempfile.TemporaryDirectory(prefix="wwstatic-tftp-") as empty:
        server = tftpy.TftpServer(empty, dyn_file_func=tree.open, upload_open=_refuse_upload)
        try:
            server.listen(listen, port)
        except KeyboardInterrupt:
            server.stop(now=True)


def _run(args: argparse.Namespace) -> int:
    root = Path(args.root)
    if not root.is_dir():
        raise WWError(f"TFTP root {root} is not a directory", hint="run doit first to build output/tftp")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("tftpy").setLevel(logging.WARNING)
    serve(root, args.listen, args.port)
    return 0


def _arguments(t: argparse.ArgumentParser) -> None:
    t.add_argument("--root", default="output/tftp")
    t.add_argument("--listen", default="0.0.0.0", help="address to listen on")
    t.add_argument("--port", type=int, default=69)


VERBS = [Verb("tftp", "serve the TFTP tree read-only", _arguments, _run)]
