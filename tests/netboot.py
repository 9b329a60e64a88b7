"""A private network with real daemons, and QEMU nodes that boot from it.

`NetLab` makes a network namespace with a bridge (the head's cluster network)
and taps for the nodes; starts ISC dhcpd, nginx, the wwstatic TFTP server and an
IPv6 RA responder inside it; boots QEMU there; and stops everything it started
by PID and deletes the namespace, also when a test fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HEAD_CIDR = "10.99.0.1/24"
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
HERE = Path(__file__).parent


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
    def start(self, name: str, *argv: str | Path) -> Proc:
        log = self.workdir / f"{name}.log"
        out = log.open("wb")
        popen = subprocess.Popen(["ip", "netns", "exec", self.ns, *map(str, argv)],
                                 stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
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
        leases = self.workdir / "dhcpd.leases"
        leases.touch()
        self.start("dhcpd", "dhcpd", "-4", "-f", "-d", "-cf", output / "etc/dhcpd.conf",
                   "-lf", leases, "-pf", self.workdir / "dhcpd.pid", "br0")
        self.start("tftp", sys.executable, "-m", "toolchain.cli", "tftp",
                   "--root", output / "tftp", "--listen", HEAD_CIDR.split("/")[0])
        conf = self.workdir / "nginx.conf"
        conf.write_text(nginx_main(self.workdir, output / "etc/nginx.conf"))
        self.start("nginx", "nginx", "-e", self.workdir / "nginx-error.log", "-c", conf)
        self.start("ra", sys.executable, HERE / "ra_responder.py", "br0")
        wait_for(lambda: "listening" in (self.workdir / "ra.log").read_text(), 10, "RA responder")
        wait_for(lambda: (self.workdir / "nginx.pid").exists(), 10, "nginx")
        wait_for(lambda: "Server starting" in (self.workdir / "dhcpd.log").read_text()
                 or "Sending on" in (self.workdir / "dhcpd.log").read_text(), 10, "dhcpd")
        for proc in self.procs:
            if proc.popen.poll() is not None:
                raise RuntimeError(f"{proc.name} exited: {proc.log.read_text()[-2000:]}")

    # --- nodes -------------------------------------------------------------------
    def boot(self, name: str, mac: str, firmware: str, until: str, timeout: float,
             memory: int = 512) -> Boot:
        """Boot a QEMU node; return when `until` shows in its serial log or QEMU exits."""
        tap = self.add_tap()
        serial = self.workdir / f"{name}.serial.log"
        nic = f"virtio-net-pci,netdev=n0,mac={mac},bootindex=1"
        argv: list[str | Path] = [
            "qemu-system-x86_64", "-accel", "tcg", "-m", str(memory), "-nodefaults", "-vga", "none",
            "-display", "none", "-serial", f"file:{serial}", "-no-reboot",
            "-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no",
        ]
        if firmware == "bios":
            # SeaBIOS runs the NIC's iPXE ROM, which goes straight to HTTP.
            argv += ["-machine", "pc,graphics=off", "-device", nic, "-boot", "n"]
        elif firmware == "uefi-pxe":
            # OVMF's own PXE (no iPXE ROM on the NIC) fetches snponly.efi by TFTP.
            vars_copy = self.workdir / f"{name}.vars.fd"
            shutil.copyfile(OVMF_VARS, vars_copy)
            argv += ["-machine", "q35", "-device", nic + ",romfile=",
                     "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
                     "-drive", f"if=pflash,format=raw,file={vars_copy}"]
        else:
            raise ValueError(firmware)
        start = time.monotonic()
        proc = self.start(f"qemu-{name}", *argv)
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
