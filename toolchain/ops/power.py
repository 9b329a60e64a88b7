"""`wwstatic power` and `wwstatic sensors`: the nodes' BMCs through ipmitool.

One ipmitool per node, at most --fanout at once (a 10,000-node `power on` must
not open 10,000 sessions, nor take 10,000 round trips in a row). The password
goes to ipmitool in a file only we can read, never on its command line (which
any user sees in `ps`). Failures are told apart from ipmitool's verbose
messages: no answer (wrong address, BMC down), wrong user, wrong password, a
cipher suite the BMC does not offer.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from toolchain.errors import WWError
from toolchain.model.load import load_cluster
from toolchain.model.types import Node
from toolchain.ops import show
from toolchain.proc import ProcError, run
from toolchain.verbs import Verb

ACTIONS = {
    "on": ["chassis", "power", "on"],
    "off": ["chassis", "power", "off"],
    "cycle": ["chassis", "power", "cycle"],
    "reset": ["chassis", "power", "reset"],
    "soft": ["chassis", "power", "soft"],      # ACPI shutdown request to the OS
    "status": ["chassis", "power", "status"],
}
SENSORS = ["sdr", "list"]


@dataclass(frozen=True)
class Options:
    timeout: int = 2       # seconds ipmitool waits for each answer (-N)
    retries: int = 1       # ipmitool's retries (-R)
    cipher: int = 3        # RMCP+ cipher suite: 3 (HMAC-SHA1, AES) is offered by nearly all BMCs


@dataclass(frozen=True)
class Result:
    node: str
    ok: bool
    text: str


def _argv(node: Node, command: list[str], password_file: Path, opt: Options) -> list[str]:
    i = node.ipmi
    argv = ["ipmitool", "-I", i.interface, "-H", i.ip, "-p", str(i.port),
            "-N", str(opt.timeout), "-R", str(opt.retries)]
    if i.interface == "lanplus":
        argv += ["-C", str(opt.cipher)]
    if i.user:
        argv += ["-U", i.user]
    return [*argv, "-f", str(password_file), *command]


def explain(node: Node, err: ProcError, opt: Options) -> str:
    """Why ipmitool failed, in the admin's terms."""
    i = node.ipmi
    where = f"BMC {i.ip}:{i.port}"
    text = err.stderr
    if err.returncode is None or "Get Auth Capabilities error" in text or "No response" in text:
        return (f"{where} did not answer (waited {opt.timeout} s x {opt.retries + 1}): "
                "wrong ipmi.ip/port, BMC down or not on this network")
    if "HMAC is invalid" in text or "invalid integrity check" in text:
        return f"{where} refused the password of user {i.user or '(anonymous)'}: check ipmi.password"
    if "unauthorized name" in text:
        return f"{where} does not know user {i.user or '(anonymous)'}: check ipmi.user"
    if "invalid authentication algorithm" in text or "cipher" in text.lower():
        return f"{where} does not offer cipher suite {opt.cipher}: try --cipher 17 (or 3)"
    lines = [ln for ln in text.strip().splitlines() if ln and not ln.startswith("Loading IANA")]
    return f"{where}: " + (lines[-1] if lines else f"ipmitool failed with exit code {err.returncode}")


def _summary_of(command: list[str], out: str) -> str:
    if command == SENSORS:
        return out.rstrip("\n")
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    last = lines[-1] if lines else "done"
    if command == ACTIONS["status"] and last.startswith("Chassis Power is "):
        return last.removeprefix("Chassis Power is ")
    return last


def one(node: Node, command: list[str], secrets: Path, opt: Options) -> Result:
    if not node.ipmi.ip:
        return Result(node.name, False, "no BMC address: set ipmi.ip in cluster.yaml")
    # A node-owned password file: mode 0600 in our private directory.
    pw = secrets / node.name
    fd = os.open(pw, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(node.ipmi.password)
    try:
        # ipmitool waits timeout x (retries + 1) per message; the ceiling only
        # catches a hung ipmitool.
        out = run(_argv(node, command, pw, opt), capture=True, hint="install ipmitool",
                  timeout=opt.timeout * (opt.retries + 1) * 4 + 10)
    except ProcError as err:
        if "Unable to establish" not in err.stderr:
            return Result(node.name, False, explain(node, err, opt))
        # No session: ipmitool says why only when verbose, and verbose output
        # would garble the result, so ask again, verbose and harmlessly (a power
        # command must not be sent twice).
        try:
            run([*_argv(node, ["-v", *ACTIONS["status"]], pw, opt)], capture=True,
                timeout=opt.timeout * (opt.retries + 1) * 4 + 10)
        except ProcError as again:
            return Result(node.name, False, explain(node, again, opt))
        return Result(node.name, False, explain(node, err, opt))
    finally:
        pw.unlink()
    return Result(node.name, True, _summary_of(command, out))


def fan_out(nodes: list[Node], command: list[str], fanout: int, opt: Options) -> list[Result]:
    """Run `command` on every node's BMC, at most `fanout` at a time; results in node order."""
    with tempfile.TemporaryDirectory(prefix="wwstatic-ipmi-") as tmp, \
            ThreadPoolExecutor(max_workers=max(1, fanout)) as pool:
        return list(pool.map(lambda n: one(n, command, Path(tmp), opt), nodes))


def report(results: list[Result], what: str) -> int:
    for r in results:
        if "\n" in r.text:
            for line in r.text.splitlines():
                print(f"{r.node}: {line}")
        else:
            print(f"{r.node}: {r.text if r.ok else 'ERROR ' + r.text}")
    failed = [r.node for r in results if not r.ok]
    print(f"{what}: {len(results) - len(failed)} ok, {len(failed)} failed"
          + (f" ({', '.join(failed)})" if failed else ""))
    return 1 if failed else 0


def _options(args: argparse.Namespace) -> Options:
    if args.fanout < 1:
        raise WWError("--fanout must be at least 1")
    return Options(timeout=args.timeout, retries=args.retries, cipher=args.cipher)


def _power(args: argparse.Namespace) -> int:
    cluster = load_cluster(args.file)
    nodes = show.select(cluster, args.hostlist)
    return report(fan_out(nodes, ACTIONS[args.action], args.fanout, _options(args)),
                  f"power {args.action}")


def _sensors(args: argparse.Namespace) -> int:
    cluster = load_cluster(args.file)
    nodes = show.select(cluster, args.hostlist)
    return report(fan_out(nodes, SENSORS, args.fanout, _options(args)), "sensors")


def _bmc_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("hostlist", help="nodes, e.g. n[01-04]")
    p.add_argument("--fanout", type=int, default=32, help="BMCs talked to at once")
    p.add_argument("--timeout", type=int, default=2, help="seconds to wait for each BMC answer")
    p.add_argument("--retries", type=int, default=1)
    p.add_argument("--cipher", type=int, default=3, help="RMCP+ cipher suite (lanplus)")


def _power_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=sorted(ACTIONS))
    _bmc_arguments(p)


VERBS = [
    Verb("power", "BMC power control of nodes (ipmitool), in parallel", _power_arguments, _power),
    Verb("sensors", "BMC sensor readings of nodes (ipmitool sdr list)", _bmc_arguments, _sensors),
]
