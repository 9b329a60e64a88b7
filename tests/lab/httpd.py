"""A real nginx on loopback for wwclient tests and the load benchmark.

Started with `daemon off` as a child process, stopped by PID. The access log
has one line per request: client address, status, bytes sent (headers and
body), request bytes, and the request line, so tests can count what a poll cost.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from toolchain.archive import Compression, Entry, write_cpio
from toolchain.node import wwclient

LOG_FORMAT = '$remote_addr $status $bytes_sent $request_length "$request"'


@dataclass(frozen=True)
class Hit:
    addr: str
    status: int
    sent: int        # response bytes, headers included
    received: int    # request bytes
    method: str
    path: str


@dataclass
class Nginx:
    workdir: Path
    port: int
    popen: subprocess.Popen[bytes]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hits(self) -> list[Hit]:
        out = []
        for line in (self.workdir / "access.log").read_text().splitlines():
            head, _, req = line.partition(' "')
            addr, status, sent, received = head.split()
            method, path, *_ = [*req.rstrip('"').split(), "", ""]
            out.append(Hit(addr, int(status), int(sent), int(received), method, path))
        return out

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGQUIT)  # graceful: finish requests, then exit
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main_conf(workdir: Path, server_conf: Path, connections: int = 1024) -> str:
    return f"""\
daemon off;
user root;
worker_processes 1;
worker_rlimit_nofile {connections * 2 + 64};
pid {workdir}/nginx.pid;
error_log {workdir}/error.log;
events {{ worker_connections {connections}; }}
http {{
    log_format wwtest '{LOG_FORMAT}';
    access_log {workdir}/access.log wwtest;
    client_body_temp_path {workdir}/body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    include {server_conf};
}}
"""


def plain_server(port: int, root: Path) -> str:
    """Serve `root`, plus /status500/ which always fails (for retry tests)."""
    return f"""\
server {{
    listen 127.0.0.1:{port};
    root {root};
    location /status500/ {{ return 500; }}
}}
"""


def start(workdir: Path, server_conf: str, port: int, connections: int = 1024) -> Nginx:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "server.conf").write_text(server_conf)
    (workdir / "main.conf").write_text(main_conf(workdir, workdir / "server.conf", connections))
    (workdir / "access.log").touch()
    popen = subprocess.Popen(["nginx", "-c", str(workdir / "main.conf")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ng = Nginx(workdir, port, popen)
    end = time.monotonic() + 10
    while time.monotonic() < end:
        if popen.poll() is not None:
            err = popen.stderr.read().decode() if popen.stderr else ""
            raise RuntimeError(f"nginx exited: {err}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return ng
        time.sleep(0.05)
    ng.stop()
    raise RuntimeError("nginx did not start listening in 10 s")


@contextlib.contextmanager
def running(workdir: Path, server_conf: str, port: int, connections: int = 1024) -> Iterator[Nginx]:
    ng = start(workdir, server_conf, port, connections)
    try:
        yield ng
    finally:
        ng.stop()


# --- a served tree of manifests and layers, as the build publishes it ------------

def write_layer(http: Path, entries: list[Entry], under: str = "shared") -> dict[str, object]:
    """A gzip cpio layer `under`/<sha256>.img.gz; its manifest record."""
    (http / under).mkdir(parents=True, exist_ok=True)
    tmp = http / under / f".new-{os.getpid()}-{time.monotonic_ns()}.img.gz"
    write_cpio(entries, tmp, Compression.GZIP)
    data = tmp.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    url = f"{under}/{digest}.img.gz"
    tmp.replace(http / url)
    return {"url": url, "sha256": digest, "size": len(data)}


def write_manifest(http: Path, node: str, layers: list[dict[str, object]], interval: float = 60,
                   age: float = 10, **extra: object) -> Path:
    """nodes/<node>/runtime.json, atomically; its mtime `age` seconds in the past.

    The age matters: wwclient ignores the validators of a manifest modified in
    the second it was fetched (nginx's ETag has one-second resolution).
    """
    path = http / wwclient.manifest_path(node)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"format": 1, "node": node, "interval": interval, "layers": layers, **extra}
    tmp = path.with_name(f".runtime.json.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc))
    if age:
        # Backdated, yet one second past the last version: a test that publishes
        # twice in a second must still change nginx's ETag (mtime + size).
        past = time.time() - age
        with contextlib.suppress(FileNotFoundError):
            past = max(past, int(path.stat().st_mtime) + 1)
        os.utime(tmp, (past, past))
    tmp.replace(path)
    return path


def publish(http: Path, node: str, *layers: list[Entry], interval: float = 60, age: float = 10,
            **extra: object) -> list[dict[str, object]]:
    records = [write_layer(http, entries) for entries in layers]
    write_manifest(http, node, records, interval, age, **extra)
    return records


def file(path: str, data: bytes | str, mode: int = 0o644, uid: int = 0, gid: int = 0) -> Entry:
    return Entry(path, stat.S_IFREG | mode, uid, gid,
                 data=data.encode() if isinstance(data, str) else data)


def folder(path: str, mode: int = 0o755) -> Entry:
    return Entry(path, stat.S_IFDIR | mode)


def symlink(path: str, target: str) -> Entry:
    return Entry(path, stat.S_IFLNK | 0o777, target=target)
