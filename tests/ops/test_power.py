"""`wwstatic power` and `sensors` against real IPMI LAN simulators (OpenIPMI's ipmi_sim).

Each simulated BMC listens on 127.0.0.1 with its own UDP port (the node's
ipmi.port). Its chassis power is a file that a small script (ipmi_sim's
`chassis_control` hook) reads and writes, so the test sees what the BMC did.
n03's BMC does not exist (unreachable) and n04's password in cluster.yaml is wrong.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.project import make_project

USER, PASSWORD = "admin", "s3cret-pw"
POWER_SCRIPT = """\
#!/bin/sh
# ipmi_sim calls: <this> get power | <this> set power 1 | set reset 1 | set shutdown 1
state="$(dirname "$0")/power"
case "$1" in
get) echo "power:$(cat "$state" 2>/dev/null || echo 0)" ;;
set) case "$2" in
     power) echo "$3" | tr -d '"' > "$state" ;;
     shutdown) echo 0 > "$state" ;;
     esac ;;
esac
"""
# One BMC with a temperature sensor (number 1, 45 degrees C) and its full SDR record.
SIM = """\
mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02
sensor_add 0x20 0 1 0x01 0x01
sensor_set_value 0x20 0 1 0x2d 0
sensor_set_threshold 0x20 0 1 settable 111000 0xa0 0x90 0x70 00 00 00
sensor_set_event_support 0x20 0 1 enable scanning per-state \
000111111000000 000111111000000 000111111000000 000111111000000
main_sdr_add 0x20 0x00 0x00 0x51 0x01 0x32 0x20 0x00 0x01 0x07 0x01 0x67 0x68 0x01 0x01 \
0x00 0x00 0x00 0x00 0x38 0x38 0x00 0x01 0x00 0x00 0x01 0x00 0x00 0x00 0x00 0x00 0x00 0x00 \
0x00 0x00 0xff 0x00 0xa0 0x90 0x70 0x00 0x00 0x00 0x00 0x00 0x00 0x00 0x00 \
0xc7 0x4d 0x42 0x20 0x54 0x65 0x6d 0x70
mc_enable 0x20
"""


def lan_conf(port: int, script: Path) -> str:
    auths = "none md2 md5 straight"
    return f"""\
name "bmc{port}"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 {port}
    priv_limit admin
    allowed_auths_callback {auths}
    allowed_auths_user {auths}
    allowed_auths_operator {auths}
    allowed_auths_admin {auths}
    guid a123456789abcdefa123456789abcdef
  endlan
  chassis_control "{script}"
  user 2 true "{USER}" "{PASSWORD}" admin 10 {auths}
"""


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def bmcs(tmp_path: Path) -> Iterator[tuple[Path, dict[str, Path]]]:
    ports = {n: free_udp_port() for n in ("n01", "n02", "n03", "n04")}
    procs: list[subprocess.Popen[bytes]] = []
    states: dict[str, Path] = {}
    try:
        for name in ("n01", "n02", "n04"):
            d = tmp_path / "bmc" / name
            (d / "state").mkdir(parents=True)
            script = d / "chassis.sh"
            script.write_text(POWER_SCRIPT)
            script.chmod(0o755)
            (d / "lan.conf").write_text(lan_conf(ports[name], script))
            (d / "sim.emu").write_text(SIM)
            procs.append(subprocess.Popen(
                ["ipmi_sim", "-n", "-c", d / "lan.conf", "-f", d / "sim.emu", "-s", d / "state"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            states[name] = d / "power"
        time.sleep(1.0)
        assert all(p.poll() is None for p in procs), "ipmi_sim did not start"

        def edit(data: dict[str, object]) -> None:
            nodes = data["nodes"]
            assert isinstance(nodes, dict)
            nodes["n[01-04]"]["ipmi"] = {"ip": "127.0.0.1", "user": USER, "password": PASSWORD}
            base = nodes.pop("n[01-04]")
            macs = base["network"]["default"].pop("mac")
            for i, name in enumerate(ports):
                node = {**base, "network": {"default": {"ip": f"10.99.0.{11 + i}", "mac": macs[i]}},
                        "ipmi": {"ip": "127.0.0.1", "port": ports[name], "user": USER,
                                 "password": "wrong" if name == "n04" else PASSWORD}}
                nodes[name] = node

        project = make_project(tmp_path / "p", edit)
        yield project, states
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def wwstatic(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "toolchain.cli", *args], cwd=project,
                          capture_output=True, text=True, check=False, timeout=120)


def lines(done: subprocess.CompletedProcess[str]) -> dict[str, str]:
    return {ln.split(": ", 1)[0]: ln.split(": ", 1)[1] for ln in done.stdout.splitlines()
            if ln.startswith("n0")}


def test_power_and_sensors(bmcs: tuple[Path, dict[str, Path]]) -> None:
    project, states = bmcs
    done = wwstatic(project, "power", "status", "n[01-02]")
    assert done.returncode == 0, done.stdout + done.stderr
    assert lines(done) == {"n01": "off", "n02": "off"}
    assert done.stdout.splitlines()[-1] == "power status: 2 ok, 0 failed"

    done = wwstatic(project, "power", "on", "n01", "--fanout", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert states["n01"].read_text().strip() == "1" and not states["n02"].exists()
    assert lines(wwstatic(project, "power", "status", "n[01-02]")) == {"n01": "on", "n02": "off"}
    assert wwstatic(project, "power", "soft", "n01").returncode == 0
    assert states["n01"].read_text().strip() == "0"
    for action in ("cycle", "reset", "off"):
        done = wwstatic(project, "power", action, "n02")
        assert done.returncode == 0, (action, done.stdout + done.stderr)

    # All four at once: two good, one BMC that is not there, one wrong password.
    t0 = time.monotonic()
    done = wwstatic(project, "power", "status", "n[01-04]", "--timeout", "1", "--retries", "0")
    took = time.monotonic() - t0
    assert done.returncode == 1
    got = lines(done)
    assert got["n01"] == "off"
    assert got["n03"].startswith("ERROR BMC 127.0.0.1:") and "did not answer" in got["n03"]
    assert got["n04"].startswith("ERROR") and "refused the password" in got["n04"]
    assert done.stdout.splitlines()[-1] == "power status: 2 ok, 2 failed (n03, n04)"
    assert took < 60
    # The password is never on ipmitool's command line (other users see it in ps).
    assert PASSWORD not in done.stdout + done.stderr

    done = wwstatic(project, "sensors", "n01")
    assert done.returncode == 0, done.stdout + done.stderr
    temp = [ln for ln in done.stdout.splitlines() if "MB Temp" in ln]
    assert temp and "45 degrees C" in temp[0] and temp[0].startswith("n01: ")


def test_power_bad_input(bmcs: tuple[Path, dict[str, Path]]) -> None:
    project, _ = bmcs
    done = wwstatic(project, "power", "on", "x[1-2]")
    assert done.returncode == 1 and "no node matches" in done.stderr and "Traceback" not in done.stderr
    done = wwstatic(project, "power", "on", "n01", "--fanout", "0")
    assert done.returncode == 1 and "--fanout" in done.stderr
