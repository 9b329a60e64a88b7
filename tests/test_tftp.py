"""The read-only TFTP server: serves the tree, refuses escapes and uploads."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import tftpy


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    root = tmp_path / "tftp"
    root.mkdir()
    (root / "snponly.efi").write_bytes(os.urandom(70_000))
    (tmp_path / "secret").write_text("not for nodes")
    os.symlink(tmp_path / "secret", root / "escape")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "toolchain.cli", "tftp", "--root", str(root),
                             "--listen", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        assert proc.poll() is None
        yield root, port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_serves_files(server: tuple[Path, int], tmp_path: Path) -> None:
    root, port = server
    dest = tmp_path / "got"
    tftpy.TftpClient("127.0.0.1", port).download("snponly.efi", str(dest), timeout=5)
    assert dest.read_bytes() == (root / "snponly.efi").read_bytes()


@pytest.mark.parametrize("name", ["escape", "../secret", "/etc/passwd", "missing.efi"])
def test_refuses_outside_or_missing(server: tuple[Path, int], tmp_path: Path, name: str) -> None:
    _, port = server
    with pytest.raises(tftpy.TftpException):
        tftpy.TftpClient("127.0.0.1", port).download(name, str(tmp_path / "got"), timeout=3)


def test_refuses_uploads(server: tuple[Path, int], tmp_path: Path) -> None:
    root, port = server
    src = tmp_path / "upload"
    src.write_text("evil")
    with pytest.raises(tftpy.TftpException):
        tftpy.TftpClient("127.0.0.1", port).upload("snponly.efi", str(src), timeout=3)
    with pytest.raises(tftpy.TftpException):
        tftpy.TftpClient("127.0.0.1", port).upload("new.efi", str(src), timeout=3)
    assert not (root / "new.efi").exists()
    assert (root / "snponly.efi").stat().st_size == 70_000
