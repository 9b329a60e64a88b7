"""A private network with real daemons, and QEMU nodes that boot from it.

`NetLab` makes a network namespace with a bridge (the head's cluster network)
and taps for the nodes; starts nginx, the wwstatic TFTP server and an IPv6 RA
responder inside it, and one DHCP server at a time (ISC dhcpd, dnsmasq or Kea,
from the build's output/etc); boots QEMU there; and stops everything it started
by PID and deletes the namespace, also when a test fails.

How each firmware is made to boot the way a real machine would:
- bios: SeaBIOS runs the NIC's iPXE option ROM (QEMU's efi-virtio.rom), which
  asks DHCP as iPXE and goes straight to the node's script over HTTP.
- uefi-pxe: OVMF with the NIC's ROM removed (`romfile=`) so OVMF's own PXE
  client (arch 7) gets snponly.efi by TFTP, which runs on OVMF's virtio-net SNP.
- uefi-http: OVMF's UEFI HTTP boot (Debian builds OVMF with HTTP boot). OVMF
  makes boot options for every NIC in the order PXEv4, PXEv6, HTTPv4, HTTPv6;
  `-fw_cfg opt/org.tianocore/IPv4PXESupport=n` (and IPv6) keeps it from making
  the PXE ones (edk2 commit "OvmfPkg: control PXEv4 / PXEv6 boot support from
  the QEMU cmdline", 2020), so with the NIC first in the boot order, HTTPv4 is
  the first option tried: no prepared OVMF_VARS and no key presses needed. The
  firmware sends vendor class HTTPClient and arch 16, gets the iPXE EFI binary's
  URL, loads it over HTTP, and iPXE then asks DHCP again as iPXE.
- cdrom (for boot ISOs): `cdrom=` boots that file, under Firmware.BIOS (SeaBIOS)
  or Firmware.UEFI (OVMF); SeaBIOS prints "Booting from DVD/CD", OVMF
  'loading Boot0001 "UEFI QEMU DVD-ROM'.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from toolchain.build.dhcp import FILES as DHCP_FILES
from toolchain.model.spec import DhcpBackend

HEAD_CIDR = "10.99.0.1/24"
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
HERE = Path(__file__).parent


class Firmware(StrEnum):
    """How a QEMU node starts (see the module docstring)."""
    BIOS = "bios"            # SeaBIOS + the NIC's iPXE ROM
    UEFI_PXE = "uefi-pxe"    # OVMF's PXE -> TFTP snponly.efi -> HTTP
    UEFI_HTTP = "uefi-http"  # OVMF's HTTP boot -> iPXE EFI over HTTP -> HTTP
    # With `cdrom=`, BIOS boots the CD with SeaBIOS and UEFI_PXE/UEFI with OVMF.
    UEFI = "uefi"


# What each DHCP server prints when it has given a node its address.
DHCP_ACK = {DhcpBackend.ISC: "DHCPACK on", DhcpBackend.DNSMASQ: "DHCPACK(",
            DhcpBackend.KEA: "DHCP4_LEASE_ALLOC"}


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path


@dataclass
class NetLab:
    workdir: Path
    ns: str = field(default_factory=lambda: f"wwt{os.getpid()}")
    procs: list[Proc] = field(default_factory=list)
    taps: int = 0

    # --- namespace ---------------------------------------------------------
    def create(self) -> None:
        sh("ip", "netns", "add", self.ns)
        self.ns_run("ip", "link", "set", "lo", "up")
        # No duplicate address detection: the bridge's link-local address (the
        # RA source) must be usable as soon as a tap brings it up.
        self.ns_run("sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0")
        self.ns_run("sysctl", "-q", "-w", "net.ipv6.conf.default.accept_dad=0")
        self.ns_run("ip", "link", "add", "br0", "type", "bridge", "forward_delay", "0")
        self.ns_run("ip", "addr", "add", HEAD_CIDR, "dev", "br0")
        self.ns_run("ip", "link", "set", "br0", "up")

    def ns_run(self, *argv: str) -> None:
        sh("ip", "netns", "exec", self.ns, *argv)

    def add_tap(self) -> str:
        name = f"tap{self.taps}"
        self.taps += 1
        self.ns_run("ip", "tuntap", "add", name, "mode", "tap")
        self.ns_run("ip", "link", "set", name, "master", "br0", "up")
        return name

    # --- processes -----------------------------------------------------------
    def start(self, name: str, *argv: str | Path, env: dict[str, str] | None = None) -> Proc:
        log = self.workdir / f"{name}.log"
        out = log.open("wb")
        popen = subprocess.Popen(["ip", "netns", "exec", self.ns, *map(str, argv)],
                                 stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 env=None if env is None else {**os.environ, **env})
        out.close()
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def stop(self, proc: Proc) -> None:
        if proc.popen.poll() is None:
            proc.popen.send_signal(signal.SIGTERM)
            try:
                proc.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait(timeout=10)
        if proc in self.procs:
            self.procs.remove(proc)

    def close(self) -> None:
        for proc in reversed(list(self.procs)):
            self.stop(proc)
        subprocess.run(["ip", "netns", "del", self.ns], check=False)

    # --- the daemons -----------------------------------------------------------
    def start_services(self, output: Path) -> None:
        """nginx, TFTP and the RA responder; DHCP comes from `start_dhcp`."""
        self.start("tftp", sys.executable, "-m", "toolchain.cli", "tftp",
                   "--root", output / "tftp", "--listen", HEAD_CIDR.split("/")[0])
        conf = self.workdir / "nginx.conf"
        conf.write_text(nginx_main(self.workdir, output / "etc/nginx.conf"))
        self.start("nginx", "nginx", "-e", self.workdir / "nginx-error.log", "-c", conf)
        self.start("ra", sys.executable, HERE / "ra_responder.py", "br0")
        wait_for(lambda: "listening" in (self.workdir / "ra.log").read_text(), 10, "RA responder")
        wait_for(lambda: (self.workdir / "nginx.pid").exists(), 10, "nginx")
        self.check_running()

    def check_running(self) -> None:
        for proc in self.procs:
            if proc.popen.poll() is not None:
                raise RuntimeError(f"{proc.name} exited: {proc.log.read_text()[-2000:]}")

    def start_dhcp(self, backend: DhcpBackend, output: Path) -> Proc:
        """Start `backend` on br0 with the build's config; its state stays in the workdir."""
        conf = output / "etc" / DHCP_FILES[backend]
        wd = self.workdir
        if backend is DhcpBackend.ISC:
            leases = wd / "dhcpd.leases"
            leases.touch()
            proc = self.start("dhcp-isc", "dhcpd", "-4", "-f", "-d", "-cf", conf, "-lf", leases,
                              "-pf", wd / "dhcpd.pid", "br0")
            ready = "Sending on"
        elif backend is DhcpBackend.DNSMASQ:
            proc = self.start("dhcp-dnsmasq", "dnsmasq", "--no-daemon", f"--conf-file={conf}",
                              "--port=0", "--interface=br0", "--log-dhcp", "--log-facility=-",
                              f"--pid-file={wd}/dnsmasq.pid", f"--dhcp-leasefile={wd}/dnsmasq.leases")
            ready = "DHCP, "
        else:
            local = wd / "kea-dhcp4.conf"
            local.write_text(json.dumps(kea_for_lab(conf.read_text(), wd), indent=2))
            # Kea writes its PID and lock files to these directories, not /run.
            proc = self.start("dhcp-kea", "kea-dhcp4", "-c", local,
                              env={"KEA_PIDFILE_DIR": str(wd), "KEA_LOCKFILE_DIR": str(wd)})
            ready = "DHCP4_STARTED"
        wait_for(lambda: ready in proc.log.read_text() or proc.popen.poll() is not None, 15,
                 f"{backend} DHCP server")
        self.check_running()
        return proc

    # --- nodes -------------------------------------------------------------------
    def boot(self, name: str, mac: str, firmware: Firmware, until: str, timeout: float,
             cdrom: Path | None = None, memory: int = 512) -> Boot:
        """Boot a QEMU node; return when `until` shows in its serial log or QEMU exits."""
        start = time.monotonic()
        proc, serial = self.start_node(name, mac, firmware, cdrom, memory)
        marks: dict[str, float] = {}
        try:
            while time.monotonic() - start < timeout:
                text = serial.read_text(errors="replace") if serial.exists() else ""
                for mark in ("wwinit: starting", "wwinit: done", until):
                    if mark in text and mark not in marks:
                        marks[mark] = time.monotonic() - start
                if until in text or proc.popen.poll() is not None:
                    break
                if "wwstatic: boot of" in text or "Kernel panic" in text:
                    break
                time.sleep(0.2)
            # Give QEMU a moment to power off by itself once the node said so.
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=10)
        finally:
            self.stop(proc)
        return Boot(serial.read_text(errors="replace") if serial.exists() else "", marks)

    def start_node(self, name: str, mac: str, firmware: Firmware,
                   cdrom: Path | None = None, memory: int = 512) -> tuple[Proc, Path]:
        """Start a QEMU node; return its process and serial log (stop() it).

        With `cdrom`, the node boots that ISO (still with its NIC on the lab network,
        unless `mac` is empty: then it has no NIC at all).
        """
        serial = self.workdir / f"{name}.serial.log"
        serial.unlink(missing_ok=True)  # never judge a boot by an earlier one's log
        nic = f"virtio-net-pci,netdev=n0,mac={mac}"
        argv: list[str | Path] = [
            "qemu-system-x86_64", "-accel", "tcg", "-m", str(memory), "-nodefaults", "-vga", "none",
            "-display", "none", "-serial", f"file:{serial}", "-no-reboot",
        ]
        if mac:
            argv += ["-netdev", f"tap,id=n0,ifname={self.add_tap()},script=no,downscript=no"]
        else:
            assert cdrom is not None, "a node with no NIC can only boot from a CD"
            argv += ["-nic", "none"]
        if cdrom is not None:
            # Only the CD is bootable: the NIC has no ROM and no place in the boot
            # order, so a boot that works came from the CD (its iPXE drives the NIC).
            argv += ["-drive", f"if=none,id=cd0,media=cdrom,readonly=on,format=raw,file={cdrom}",
                     "-device", "ide-cd,drive=cd0,bootindex=1"]
            if mac:
                argv += ["-device", nic + ",romfile="]
        if firmware is Firmware.BIOS:
            argv += ["-machine", "pc,graphics=off"]
            if cdrom is None:
                # SeaBIOS runs the NIC's iPXE ROM, which goes straight to HTTP.
                argv += ["-device", nic + ",bootindex=1"]
        else:
            vars_copy = self.workdir / f"{name}.vars.fd"
            shutil.copyfile(OVMF_VARS, vars_copy)
            argv += ["-machine", "q35",
                     "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
                     "-drive", f"if=pflash,format=raw,file={vars_copy}"]
            if cdrom is None:
                # No iPXE ROM on the NIC: OVMF's own network boot runs.
                argv += ["-device", nic + ",bootindex=1,romfile="]
            if firmware is Firmware.UEFI_HTTP:
                argv += ["-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=n",
                         "-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=n"]
        return self.start(f"qemu-{name}", *argv), serial


@contextlib.contextmanager
def running_lab(workdir: Path, output: Path, ns: str = "") -> Iterator[NetLab]:
    """A lab serving the build in `output` with ISC dhcpd; always taken down."""
    lab = NetLab(workdir, ns=ns) if ns else NetLab(workdir)
    try:
        lab.create()
        lab.start_services(output)
        lab.start_dhcp(DhcpBackend.ISC, output)
        yield lab
    finally:
        lab.close()


@dataclass
class Boot:
    log: str
    marks: dict[str, float]


def wait_for(check: object, timeout: float, what: str) -> None:
    assert callable(check)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if check():
                return
        except FileNotFoundError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up in {timeout} s")


def kea_for_lab(text: str, workdir: Path) -> dict[str, Any]:
    """The generated Kea config, with interface, lease file, socket and logs in the lab."""
    data: dict[str, Any] = json.loads("\n".join(line for line in text.splitlines()
                                                if not line.lstrip().startswith("//")))
    dhcp4 = data["Dhcp4"]
    dhcp4["interfaces-config"] = {"interfaces": ["br0"]}
    dhcp4["lease-database"] = {"type": "memfile", "persist": True, "lfc-interval": 0,
                               "name": str(workdir / "kea-leases4.csv")}
    dhcp4["control-socket"] = {"socket-type": "unix", "socket-name": str(workdir / "kea4.sock")}
    dhcp4["loggers"] = [{"name": "kea-dhcp4", "severity": "INFO",
                         "output_options": [{"output": "stdout", "flush": True}]}]
    return data


def nginx_main(workdir: Path, server_conf: Path) -> str:
    return f"""\
daemon off;
user root;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {workdir}/access.log combined;
    client_body_temp_path {workdir}/nginx-body;
    proxy_temp_path {workdir}/nginx-proxy;
    fastcgi_temp_path {workdir}/nginx-fastcgi;
    uwsgi_temp_path {workdir}/nginx-uwsgi;
    scgi_temp_path {workdir}/nginx-scgi;
    include {server_conf};
}}
"""
