"""Boot ISOs for machines that cannot PXE: El Torito CDs for BIOS and UEFI, written with pycdlib.

Two kinds, both bootable under legacy BIOS (isolinux) and x86-64 UEFI (an EFI
system partition image in a second El Torito entry):

- the network ISO, one per cluster: it starts iPXE, which gets an address by
  DHCP and chains to the node's own script on the head, so the rest of the boot
  is the usual network boot;
- a standalone ISO for one node: it carries the kernel, the image and the
  node's system and runtime overlays and boots with no server at all.

Every byte depends only on the inputs: pycdlib's clock and the FAT image's
clock are fixed (see `_fixed_clock` and `_fat_image`), so two builds of the same
inputs compare equal.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from time import struct_time
from types import ModuleType
from typing import Any

import pycdlib
import pycdlib.dates
import pycdlib.headervd
import pycdlib.inplaceeditor
import pycdlib.pycdlib
import pycdlib.udf
import pycdlib.utils

from toolchain.errors import WWError
from toolchain.fsutil import atomic_open
from toolchain.model.types import Node
from toolchain.proc import run

# Every timestamp on an ISO and in its FAT image: 1980-01-01 00:00 UTC, the
# earliest date FAT can store (SOURCE_DATE_EPOCH=1 makes mtools write 2098).
EPOCH = 315532800

# Files from Debian 12 packages, and the package each comes from.
ISOLINUX_BIN = Path("/usr/lib/ISOLINUX/isolinux.bin")
LDLINUX_C32 = Path("/usr/lib/syslinux/modules/bios/ldlinux.c32")
IPXE_LKRN = Path("/usr/lib/ipxe/ipxe.lkrn")
IPXE_EFI = Path("/usr/lib/ipxe/ipxe.efi")
GRUB_CD_EFI = Path("/usr/lib/grub/x86_64-efi/monolithic/gcdx64.efi")
PACKAGES = {ISOLINUX_BIN: "isolinux", LDLINUX_C32: "syslinux-common", IPXE_LKRN: "ipxe",
            IPXE_EFI: "ipxe", GRUB_CD_EFI: "grub-efi-amd64-bin"}

# The kernel argument that tells wwinit's /init the node may have no network:
# a standalone ISO can boot on a machine without the node's NIC.
STANDALONE_ARG = "wwstatic.standalone"

BIOS_LOADER = "isolinux/isolinux.bin"
EFI_IMAGE = "boot/efi.img"
CATALOG = "boot/boot.cat"


@dataclass(frozen=True)
class File:
    """A file on the ISO: `name` is its path (lowercase, ISO 9660-safe), from a file or bytes."""
    name: str
    source: Path | None = None
    data: bytes | None = None


def _need(path: Path) -> Path:
    if not path.exists():
        raise WWError(f"{path} is missing: boot ISOs need it",
                      hint=f"install Debian's {PACKAGES.get(path, 'matching')} package: "
                           f"apt-get install {PACKAGES.get(path, '')}".rstrip())
    return path.resolve()


def loaders(kind: str) -> list[Path]:
    """The system files an ISO of `kind` ("network" or "standalone") copies."""
    return [ISOLINUX_BIN, LDLINUX_C32, *([IPXE_LKRN, IPXE_EFI] if kind == "network" else [GRUB_CD_EFI])]


# --- the network ISO ----------------------------------------------------------

def network_script(http: str, script_path: str) -> str:
    """The iPXE script the network ISO runs: DHCP, then the node's own script from the head."""
    return f"""\
#!ipxe
# wwstatic network boot ISO: get an address, then run this node's script from the head.
echo wwstatic: network boot ISO of the cluster served by {http}
dhcp || goto failed
chain {http}/{script_path} || goto failed

:failed
echo wwstatic: network boot from the ISO failed, rebooting in 10 seconds
sleep 10
reboot
"""


def network_iso(http: str, script_path: str, out: Path) -> None:
    """The cluster's network boot ISO; `script_path` is the node script's URL path with iPXE's MAC."""
    script = network_script(http, script_path).encode()
    isolinux_cfg = _isolinux_cfg("iPXE network boot", "/boot/ipxe.lkrn", ["/boot/boot.ipxe"], [])
    # Debian 12's ipxe.efi (a 2019 snapshot) neither reads autoexec.ipxe from its boot
    # volume (iPXE has that since 2021) nor takes a script on its command line (since
    # 2023), and a built binary cannot have a script embedded. So under UEFI it runs its default
    # `autoboot`: DHCP, then the file name DHCP gives an iPXE client, which every
    # wwstatic DHCP configuration sets to this same per-node script URL. autoexec.ipxe
    # is there for newer iPXE builds, which run it instead: the same steps, explicitly.
    efi = _fat_image({"EFI/BOOT/BOOTX64.EFI": _need(IPXE_EFI), "autoexec.ipxe": script})
    files = [
        File("boot/ipxe.lkrn", source=_need(IPXE_LKRN)),
        File("boot/boot.ipxe", data=script),
        File(EFI_IMAGE, data=efi),
        File(BIOS_LOADER, source=_need(ISOLINUX_BIN)),
        File("isolinux/ldlinux.c32", source=_need(LDLINUX_C32)),
        File("isolinux/isolinux.cfg", data=isolinux_cfg.encode()),
    ]
    _write_iso(files, "WWSTATIC_NET", out, 0o644)


# --- the standalone ISO -------------------------------------------------------

def standalone_iso(node: Node, kernel: Path, initrds: Sequence[tuple[str, Path]], out: Path) -> None:
    """A node's standalone ISO: `initrds` are (name, file) in load order, later files win.

    UEFI boots Debian's monolithic GRUB for CDs (gcdx64.efi) rather than the kernel's
    EFI stub with systemd-boot: both of those read files only from the FAT image the
    firmware booted, so the whole image (often gigabytes) would have to live in a FAT
    image that El Torito describes with a 16-bit sector count; GRUB reads the kernel
    and initrds straight from ISO 9660, like isolinux does under BIOS, and the ISO
    carries them once for both. gcdx64.efi looks for /boot/grub/grub.cfg on the CD
    it was booted from, and finds the CD by /.disk/info if its path does not tell it.
    """
    args = [f"wwid={node.mac}", STANDALONE_ARG, *node.kernel.args]
    for arg in args:
        if not arg or any(ord(c) < 32 for c in arg):
            raise WWError(f"node {node.name}: kernel argument {arg!r} is empty or has a control "
                          "character; a boot menu cannot carry it",
                          hint="fix kernel.args in cluster.yaml")
    paths = [f"/boot/{_safe_name(name)}" for name, _ in initrds]
    label = f"wwstatic node {node.name}"
    files = [
        File("boot/vmlinuz", source=kernel),
        *(File(p.lstrip("/"), source=src) for p, (_, src) in zip(paths, initrds, strict=True)),
        File("boot/grub/grub.cfg", data=_grub_cfg(label, "/boot/vmlinuz", paths, args).encode()),
        File(".disk/info", data=f"{label}\n".encode()),
        File(EFI_IMAGE, data=_fat_image({"EFI/BOOT/BOOTX64.EFI": _need(GRUB_CD_EFI)})),
        File(BIOS_LOADER, source=_need(ISOLINUX_BIN)),
        File("isolinux/ldlinux.c32", source=_need(LDLINUX_C32)),
        File("isolinux/isolinux.cfg",
             data=_isolinux_cfg(label, "/boot/vmlinuz", paths, args).encode()),
    ]
    # The system overlay may hold the node's secrets (host keys, BMC password).
    _write_iso(files, f"WWSTATIC_{node.name}"[:32], out, 0o600)


def _isolinux_cfg(label: str, kernel: str, initrds: list[str], args: list[str]) -> str:
    # INITRD takes several files, comma-separated, loaded in order (syslinux >= 4).
    lines = ["# Generated by wwstatic.", "SERIAL 0 115200", "DEFAULT boot", "PROMPT 0", "TIMEOUT 0",
             "LABEL boot", f"  MENU LABEL {label}", f"  KERNEL {kernel}"]
    if initrds:
        lines.append(f"  INITRD {','.join(initrds)}")
    if args:
        lines.append(f"  APPEND {' '.join(args)}")
    return "\n".join(lines) + "\n"


_GRUB_SAFE = re.compile(r"[A-Za-z0-9_./:,=+@%-]+")


def _grub_word(arg: str) -> str:
    """`arg` quoted for GRUB's shell-like parser; the kernel gets it unquoted."""
    if _GRUB_SAFE.fullmatch(arg):
        return arg
    return "'" + arg.replace("'", "'\\''") + "'"


def _grub_cfg(label: str, kernel: str, initrds: list[str], args: list[str]) -> str:
    return (f"# Generated by wwstatic.\nset timeout=0\nset default=0\n"
            f"menuentry {_grub_word(label)} {{\n"
            f"  echo {_grub_word('wwstatic: ' + label + ': loading kernel and initrds')}\n"
            f"  linux {kernel} {' '.join(_grub_word(a) for a in args)}\n"
            f"  initrd {' '.join(initrds)}\n"
            "}\n")


# --- writing ------------------------------------------------------------------

_NAME = re.compile(r"[a-z0-9_]{1,24}(\.[a-z0-9_]{1,6})?")


def _safe_name(name: str) -> str:
    """An initrd name as an ISO 9660 level 3 file name: one dot, so image.img.gz -> image.gz."""
    stem, _, ext = name.partition(".")
    ext = ext.rpartition(".")[2]
    result = f"{stem}.{ext}" if ext else stem
    if not _NAME.fullmatch(result):
        raise WWError(f"{name!r} cannot be a file name on a boot ISO")
    return result


def _iso_path(name: str) -> str:
    """The ISO 9660 path of `name` ("boot/grub/grub.cfg" -> "/BOOT/GRUB/GRUB.CFG;1")."""
    *dirs, base = name.upper().split("/")
    return "/" + "/".join([*(d.replace(".", "_") for d in dirs),
                           (base if "." in base else base + ".") + ";1"])


def _iso_dir(name: str) -> str:
    return "/" + "/".join(d.replace(".", "_") for d in name.upper().split("/"))


class _Clock:
    """pycdlib's view of the `time` module while an ISO is built: a fixed instant, in UTC.

    pycdlib stamps volume descriptors and directory records with time.time() as
    local time; a fixed instant read as UTC gives the same bytes on every run and
    in every time zone.
    """
    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def time() -> float:
        return float(EPOCH)

    @staticmethod
    def localtime(secs: float | None = None) -> struct_time:
        return time.gmtime(EPOCH if secs is None else secs)


_CLOCKED: tuple[ModuleType, ...] = (pycdlib.dates, pycdlib.headervd, pycdlib.inplaceeditor,
                                    pycdlib.pycdlib, pycdlib.udf, pycdlib.utils)


@contextlib.contextmanager
def _fixed_clock() -> Iterator[None]:
    # Not thread-safe: doit runs python actions one at a time in a process.
    saved = [m.time for m in _CLOCKED]
    for m in _CLOCKED:
        m.time = _Clock()  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for m, t in zip(_CLOCKED, saved, strict=True):
            m.time = t  # type: ignore[attr-defined]


def _write_iso(files: list[File], volume: str, out: Path, mode: int) -> None:
    """Write `files` with El Torito entries for isolinux (BIOS) and EFI_IMAGE (UEFI)."""
    with _fixed_clock(), contextlib.ExitStack() as stack:
        iso = pycdlib.PyCdlib()
        # Level 3: names beyond 8.3 and files over 4 GiB (several extents); Rock Ridge
        # gives Linux, isolinux and GRUB the lowercase names.
        iso.new(interchange_level=3, vol_ident=volume.upper().replace("-", "_"), sys_ident="LINUX",
                app_ident_str="WWSTATIC", rock_ridge="1.09")
        dirs: set[str] = set()
        for f in sorted(files, key=lambda f: f.name):
            parts = f.name.split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    iso.add_directory(_iso_dir(d), rr_name=parts[i - 1], file_mode=0o40555)
            if f.data is not None:
                fp: Any = stack.enter_context(tempfile.SpooledTemporaryFile(max_size=64 << 20))
                fp.write(f.data)
                fp.seek(0)
                length = len(f.data)
            else:
                assert f.source is not None
                fp = stack.enter_context(open(f.source, "rb"))
                length = os.fstat(fp.fileno()).st_size
            iso.add_fp(fp, length, _iso_path(f.name), rr_name=parts[-1], file_mode=0o100444)
        catalog, rr_catalog = _iso_path(CATALOG), CATALOG.rpartition("/")[2]
        # BIOS: isolinux, loaded as 4 sectors (what every BIOS handles) with the boot
        # information table it reads to find itself on the CD.
        iso.add_eltorito(_iso_path(BIOS_LOADER), bootcatfile=catalog, rr_bootcatname=rr_catalog,
                         boot_load_size=4, boot_info_table=True)
        iso.add_eltorito(_iso_path(EFI_IMAGE), bootcatfile=catalog, rr_bootcatname=rr_catalog,
                         efi=True, platform_id=0xEF)
        with atomic_open(out, mode) as dest:
            iso.write_fp(dest)
        iso.close()


def _fat_image(files: dict[str, Path | bytes]) -> bytes:
    """A FAT image (the El Torito EFI system partition) holding `files`, built with mtools.

    mtools takes every timestamp from SOURCE_DATE_EPOCH and the volume serial from
    -N, so the bytes depend only on the files.
    """
    size = sum(len(v) if isinstance(v, bytes) else v.stat().st_size for v in files.values())
    # Room for FAT tables and directories; whole MiB; El Torito counts 512-byte sectors in 16 bits.
    sectors = ((size + size // 16 + (512 << 10)) // (1 << 20) + 1) * 2048
    if sectors > 0xFFFF:
        raise WWError(f"the EFI boot image would be {sectors // 2048} MiB; El Torito allows 32 MiB")
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(EPOCH), "TZ": "UTC", "MTOOLS_SKIP_CHECK": "1"}
    hint = "install Debian's mtools package: apt-get install mtools"
    with tempfile.TemporaryDirectory(prefix="wwstatic-fat-") as tmp:
        img = Path(tmp) / "efi.img"
        _mtools(["mformat", "-i", img, "-C", "-T", str(sectors), "-h", "64", "-s", "32",
                 "-N", "77770001", "-v", "WWSTATIC", "::"], env, hint)
        made: set[str] = set()
        for name in sorted(files):
            parts = name.split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in made:
                    made.add(d)
                    _mtools(["mmd", "-i", img, f"::/{d}"], env, hint)
            value = files[name]
            src = value if isinstance(value, Path) else Path(tmp) / "data"
            if isinstance(value, bytes):
                src.write_bytes(value)
            _mtools(["mcopy", "-i", img, src, f"::/{name}"], env, hint)
        return img.read_bytes()


def _mtools(argv: list[str | Path], env: dict[str, str], hint: str) -> None:
    run(argv, hint=hint, env=env)
