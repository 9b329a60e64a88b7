"""wwclient test helpers: a loopback server that sends raw bytes, a served site, a node's tree.

`Raw` answers each request with bytes the test chooses (or a trickle of them), so
responses nginx would never send (bad dates, validators, chunk sizes) can be served.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.lab.httpd import file, folder
from tests.support.project import REPO
from toolchain.archive import Compression, Entry, write_cpio
from toolchain.node import wwclient

WWCLIENT = REPO / "toolchain" / "node" / "wwclient.py"

NODE = "n01"
Answer = Callable[[str], bytes | Iterator[bytes]]


class Raw:
    """A loopback HTTP server: `answer(path)` gives the raw response (bytes or a trickle)."""

    def __init__(self, answer: Answer) -> None:
        self.answer, self.sent, self.paths = answer, 0, list[str]()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.base = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn, contextlib.suppress(OSError):
                conn.settimeout(10)
                req = b""
                while b"\r\n\r\n" not in req and len(req) < 65536:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    req += chunk
                path = req.split(b" ")[1].decode() if req.count(b" ") >= 2 else "/"
                self.paths.append(path)
                out = self.answer(path)
                for part in [out] if isinstance(out, bytes) else out:
                    if self.stop.is_set():
                        break
                    conn.sendall(part)
                    self.sent += len(part)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        self.sock.close()


@contextlib.contextmanager
def raw(answer: Answer) -> Iterator[Raw]:
    srv = Raw(answer)
    try:
        yield srv
    finally:
        srv.close()


def response(body: bytes, status: str = "200 OK", **headers: str) -> bytes:
    head = {"Content-Length": str(len(body)), "Connection": "close", **headers}
    lines = "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in head.items())
    return f"HTTP/1.1 {status}\r\n{lines}\r\n".encode() + body


def cpio(tmp: Path, entries: list[Entry], compression: Compression = Compression.GZIP) -> bytes:
    path = tmp / f"layer-{time.monotonic_ns()}"
    write_cpio(entries, path, compression)
    return path.read_bytes()


def record(url: str, data: bytes) -> dict[str, object]:
    return {"url": url, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


class Site:
    """What `Raw` serves: path -> body (200), or a whole raw response."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.raw: dict[str, bytes] = {}

    def __call__(self, path: str) -> bytes:
        if path in self.raw:
            return self.raw[path]
        if path in self.files:
            return response(self.files[path])
        return response(b"no", "404 Not Found")

    def publish(self, tmp: Path, *layers: list[Entry], manifest: bytes | None = None,
                **extra: object) -> None:
        recs = []
        for i, entries in enumerate(layers):
            data = cpio(tmp, entries)
            url = f"shared/{i}-{hashlib.sha256(data).hexdigest()}.img.gz"
            self.files["/" + url] = data
            recs.append(record(url, data))
        doc = {"format": 1, "node": NODE, "interval": 60, "layers": recs, **extra}
        self.files["/" + wwclient.manifest_path(NODE)] = manifest or json.dumps(doc).encode()


class Tree:
    """A node's root, state and an `outside` directory that must stay empty."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.root, self.state, self.outside = tmp / "root", tmp / "state", tmp / "outside"
        self.root.mkdir()
        self.outside.mkdir()

    def client(self, base: str, timeout: float = 10.0) -> wwclient.Client:
        return wwclient.Client(wwclient.Options(base, NODE, str(self.root), str(self.state),
                                                timeout=timeout, max_unpacked=1 << 28))

    def state_bytes(self) -> bytes:
        path = self.state / "state.json"
        return path.read_bytes() if path.exists() else b""

    def installed(self) -> dict[str, dict[str, Any]]:
        return dict(json.loads(self.state_bytes())["files"])


GOOD = [folder("etc"), file("etc/motd", "v1\n")]


def snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """Everything under `root`: type, mode, owner, content or link target."""
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            s = p.lstat()
            body: object = (os.readlink(p) if stat.S_ISLNK(s.st_mode)
                            else p.read_bytes() if stat.S_ISREG(s.st_mode) else None)
            out[str(p.relative_to(root))] = (s.st_mode, s.st_uid, s.st_gid, body)
    return out


def wait_for(check: Callable[[], bool], timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"not true after {timeout} s")
