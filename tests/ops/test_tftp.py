"""The read-only TFTP server: serves the tree, refuses escapes and uploads."""

from __future__ import annotations

import configparser
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import tftpy

from tests.support.net import free_port
from tests.support.project import REPO
from toolchain import cli


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


# --- the systemd unit shipped in docs/ ------------------------------------------

UNIT = REPO / "docs" / "wwstatic-tftp.service"


def unit_argv() -> list[str]:
    unit = configparser.ConfigParser(interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    unit.read(UNIT)
    return shlex.split(unit["Service"]["ExecStart"])


def test_unit_execstart_is_the_cli() -> None:
    argv = unit_argv()
    assert argv[0].endswith("/.venv/bin/wwstatic"), argv
    args = cli.parser().parse_args(argv[1:])
    assert args.command == "tftp"
    assert args.root.endswith("/output/tftp")
    assert args.listen == "10.99.0.1"  # the demo head, as the README says
    assert args.port == 69


def test_unit_verifies(tmp_path: Path) -> None:
    # systemd's own check, with ExecStart pointing at this checkout's wwstatic.
    wwstatic = Path(sys.executable).parent / "wwstatic"
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace(unit_argv()[0], str(wwstatic)))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True,
                          check=False, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_unit_command_serves(tmp_path: Path) -> None:
    # The unit's command line, with a test root, address and port, serves files.
    argv = unit_argv()
    args = cli.parser().parse_args(argv[1:])
    root = tmp_path / "tftp"
    root.mkdir()
    (root / "undionly.kpxe").write_bytes(os.urandom(5000))
    port = free_port()
    swap = {args.root: str(root), args.listen: "127.0.0.1", str(args.port): str(port),
            argv[0]: str(Path(sys.executable).parent / "wwstatic")}
    proc = subprocess.Popen([swap.get(a, a) for a in argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        dest = tmp_path / "got"
        for _ in range(50):
            try:
                tftpy.TftpClient("127.0.0.1", port).download("undionly.kpxe", str(dest), timeout=1)
                break
            except tftpy.TftpException:
                time.sleep(0.2)
        assert dest.read_bytes() == (root / "undionly.kpxe").read_bytes()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
