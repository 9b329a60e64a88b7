"""Small image sources built in a test: tar members, a root with a kernel, a tarball."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

KVER = "6.1.0-9-amd64"


def add(tar: tarfile.TarFile, name: str, data: bytes | None = None, *, kind: bytes = tarfile.REGTYPE,
        mode: int = 0o644, uid: int = 0, gid: int = 0, link: str = "", dev: tuple[int, int] = (0, 0)) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.mtime = kind, mode, uid, gid, 1234567
    info.linkname = link
    info.devmajor, info.devminor = dev
    if data is not None:
        info.size = len(data)
    tar.addfile(info, io.BytesIO(data) if data is not None else None)


def rootfs_members(tar: tarfile.TarFile, kernel: bool = True) -> None:
    """A small root: written deliberately out of order, and without a `usr` entry."""
    add(tar, "./etc/hostname", b"node\n")
    add(tar, "./", kind=tarfile.DIRTYPE, mode=0o755)
    add(tar, "./etc", kind=tarfile.DIRTYPE, mode=0o755)
    add(tar, "./etc/shadow", b"root:*:1::::::\n", mode=0o640, gid=42)
    add(tar, "./home/user/.profile", b"PS1=$\n", uid=1000, gid=1000)
    add(tar, "./usr/bin/tool", b"\x7fELF" + bytes(range(256)) * 8, mode=0o4755)
    add(tar, "./usr/bin/tool2", kind=tarfile.LNKTYPE, link="./usr/bin/tool")
    add(tar, "./bin", kind=tarfile.SYMTYPE, link="usr/bin", mode=0o777)
    add(tar, "./dev/console", kind=tarfile.CHRTYPE, mode=0o600, dev=(5, 1))
    if kernel:
        add(tar, "./boot/vmlinuz-6.1.0-10-amd64+debug", b"debug kernel")
        add(tar, f"./boot/vmlinuz-{KVER}", b"the kernel")


def make_tarball(path: Path, kernel: bool = True) -> Path:
    compression = {".gz": "w:gz", ".xz": "w:xz"}.get(path.suffix, "w")
    if path.suffix == ".zst":
        plain = path.with_suffix("")
        with tarfile.open(plain, "w") as tar:
            rootfs_members(tar, kernel)
        subprocess.run(["zstd", "-q", "--rm", "-f", str(plain), "-o", str(path)], check=True)
        return path
    with tarfile.open(path, compression) as tar:  # type: ignore[call-overload]
        rootfs_members(tar, kernel)
    return path
