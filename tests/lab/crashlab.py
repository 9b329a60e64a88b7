"""The crash test: SIGKILL the build at random points while a client reads what is served.

A project like the shipped demo, but its nodes live at 127.0.0.11-14 and its
head at 127.0.0.1:<port>, so a real nginx on loopback serves output/http with
the generated server block (per-node rules included) and a client can ask as
each node (a socket bound to the node's address). The client keeps fetching
every node's iPXE script, the group script it chains, everything they name,
and the node's wwclient manifest with its include and layers, and checks each
answer: HTTP 200, complete (gzip streams end, cpio archives have their trailer,
kernels are as long as their header says), digests as the manifests say, and a
blob's bytes never change once seen (names are content addresses).

Meanwhile builds run with edits to cluster.yaml (kernel arguments, the image's
module list) and to overlays (a per-node template, a file shared by all nodes),
each killed (the whole process group, SIGKILL) after a random delay drawn over
the duration of a whole build of that kind, measured as the runs go. After each
kill doit's store must pass sqlite's integrity check and the lock must be free
(the next build is started with WWSTATIC_LOCK_WAIT=0). After the last run one
normal build; then every file of a clean build of the same inputs must be in
output/http with the same bytes, a further build must run no task, and every
other file must be one gc is waiting to remove.

bench/crash.py runs it in full (50+ runs); tests/build/test_crash.py a short version.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.lab import httpd
from tests.support.project import REPO, TESTS
from toolchain.node import wwclient

NODES = [(f"n0{i}", f"52:54:00:99:00:1{i}", f"127.0.0.1{i}") for i in range(1, 5)]
ASPECTS = ("args", "motd", "issue", "modules")


# --- the project and its inputs -----------------------------------------------

@dataclass
class Inputs:
    """What the runs edit; each field a version number."""
    args: int = 0      # kernel arguments: every node's iPXE script
    motd: int = 0      # a per-node template: each node's own runtime layer, its manifest and script
    issue: int = 0     # a file shared by all nodes: the shared runtime layer, the group's pointers
    modules: int = 0   # the image's modules: its root, archive and kernel, the group's script


def cluster_text(port: int, log: Path, inputs: Inputs) -> str:
    data = yaml.safe_load((REPO / "cluster.yaml").read_text())
    data["head"] = {"ip": "127.0.0.1", "network": "127.0.0.0/24", "http": f"http://127.0.0.1:{port}",
                    "access_log": str(log)}
    demo = data["images"]["demo"]["demo"]
    demo["modules"] = ["virtio_pci", "virtio_net", *[[], ["virtio_blk"], ["virtio_scsi"]][inputs.modules]]
    profile = data["profiles"]["default"]
    profile["kernel"]["args"] = ["console=ttyS0", "quiet"] + (
        [f"wwcrash={inputs.args}"] if inputs.args else [])
    nodes = data["nodes"]["n[01-04]"]
    nodes["network"]["default"]["ip"] = NODES[0][2]
    nodes["network"]["default"]["mac"] = [mac for _, mac, _ in NODES]
    return yaml.safe_dump(data, sort_keys=False)


def write_inputs(project: Path, port: int, inputs: Inputs) -> None:
    (project / "cluster.yaml").write_text(cluster_text(port, project / "access.log", inputs))
    motd = project / "overlays/motd/rootfs/etc/motd.j2"
    motd.write_text((REPO / "overlays/motd/rootfs/etc/motd.j2").read_text()
                    + (f"Crash test edit {inputs.motd}.\n" if inputs.motd else ""))
    # A plain file, the same for every node: it goes into the shared runtime layer.
    (project / "overlays/motd/rootfs/etc/issue").write_text(f"wwstatic crash test {inputs.issue}\n")


def make_project(dest: Path, port: int, inputs: Inputs) -> Path:
    dest.mkdir(parents=True)
    shutil.copy(REPO / "dodo.py", dest / "dodo.py")
    shutil.copytree(REPO / "overlays", dest / "overlays")
    write_inputs(dest, port, inputs)
    return dest


def doit_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", **extra}


def doit(project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "doit", *args], cwd=project, env=env or doit_env(),
                          capture_output=True, text=True, check=False)


def ran(stdout: str) -> list[str]:
    """Tasks doit started (".  name"), in order."""
    return [line[3:].strip() for line in stdout.splitlines() if line.startswith(".  ")]


# --- the client -------------------------------------------------------------------

class Client:
    """Fetches, as each node, everything its pointers name, and checks every answer."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.fetches = 0
        self.cycles = 0
        self.problems: list[str] = []
        self.seen: dict[str, str] = {}       # blob url -> sha256 of its bytes: never changes
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._conns: dict[str, http.client.HTTPConnection] = {}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=120)
        for conn in self._conns.values():
            conn.close()

    def problem(self, text: str) -> None:
        self.problems.append(f"{time.strftime('%H:%M:%S')} {text}")

    def get(self, source: str, path: str) -> bytes | None:
        """The body of a 200 answer, complete; None (and a problem noted) otherwise."""
        self.fetches += 1
        for attempt in (1, 2):
            conn = self._conns.get(source)
            if conn is None:
                conn = self._conns[source] = http.client.HTTPConnection(
                    "127.0.0.1", self.port, timeout=30, source_address=(source, 0))
            try:
                conn.request("GET", path)
                resp = conn.getresponse()
                body = resp.read()   # raises IncompleteRead if shorter than Content-Length
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                del self._conns[source]
                if attempt == 2 or not isinstance(exc, http.client.RemoteDisconnected | ConnectionError):
                    self.problem(f"{source} GET {path}: {exc!r}")
                    return None
                continue   # a kept-alive connection the server closed: once more
            if resp.status != 200:
                self.problem(f"{source} GET {path}: HTTP {resp.status}")
                return None
            return body
        return None

    def _loop(self) -> None:
        while not self._stop.is_set():
            checked: set[str] = set()   # blobs checked this cycle (shared by nodes)
            for node, mac, ip in NODES:
                self.check_node(node, mac, ip, checked)
            self.cycles += 1

    def check_node(self, node: str, mac: str, ip: str, checked: set[str]) -> None:
        script = self.get(ip, f"/ipxe/{mac.replace(':', '-')}.ipxe")
        if script is not None:
            self.check_script(node, ip, script.decode(), checked)
        manifest = self.get(ip, f"/nodes/{node}/runtime.json")
        if manifest is not None:
            self.check_manifest(node, ip, manifest, checked)

    def check_script(self, node: str, ip: str, text: str, checked: set[str]) -> None:
        values = dict(re.findall(r"^set (ww\w+) (\S+)$", text, re.M))
        chain = re.findall(r"^chain \$\{base\}/(\S+) ", text, re.M)
        if values.get("wwnode") != node or len(chain) != 1 or not text.rstrip().endswith("reboot"):
            self.problem(f"{node}: not a complete script of {node}: {text[:200]!r}")
            return
        group = self.get(ip, "/" + chain[0])
        if group is None:
            return
        gtext = group.decode()
        if not gtext.rstrip().endswith("reboot"):
            self.problem(f"{node}: group script {chain[0]} is incomplete")
        for url in re.findall(r"^(?:kernel|initrd) .*?\$\{base\}/(\S+)", gtext, re.M):
            try:
                url = re.sub(r"\$\{(ww\w+)\}", lambda m: values[m.group(1)], url)
            except KeyError as exc:
                self.problem(f"{node}: {chain[0]} uses {exc} which the node's script does not set")
                continue
            self.check_blob(ip, url, checked)

    def check_manifest(self, node: str, ip: str, data: bytes, checked: set[str]) -> None:
        try:
            manifest = wwclient.parse_manifest(data, node)
            layers: list[wwclient.Layer] = []
            for item in manifest.layers:
                if isinstance(item, wwclient.Include):
                    included = self.get(ip, "/" + item.url)
                    if included is None:
                        return
                    layers.extend(wwclient.parse_included(included))
                else:
                    layers.append(item)
        except wwclient.Rejected as exc:
            self.problem(f"{node}: manifest rejected: {exc}")
            return
        for layer in layers:
            body = self.check_blob(ip, layer.url, checked)
            if body is not None and (hashlib.sha256(body).hexdigest() != layer.sha256
                                     or len(body) != layer.size):
                self.problem(f"{node}: layer {layer.url} does not match its manifest's sha256/size")

    def check_blob(self, ip: str, url: str, checked: set[str]) -> bytes | None:
        if url in checked and not url.startswith("nodes/"):
            return None
        body = self.get(ip, "/" + url)
        if body is None:
            return None
        checked.add(url)
        digest = hashlib.sha256(body).hexdigest()
        if self.seen.setdefault(url, digest) != digest:
            self.problem(f"{url}: its bytes changed (a content-addressed name must not)")
        elif url.endswith(".gz"):
            if (why := incomplete_archive(body)) is not None:
                self.problem(f"{url}: {why}")
        elif "/vmlinuz-" in url and (why := incomplete_kernel(body)) is not None:
            self.problem(f"{url}: {why}")
        return body


def incomplete_archive(data: bytes) -> str | None:
    """Why a gzip'd cpio archive is not whole, or None."""
    d = zlib.decompressobj(wbits=31)
    try:
        raw = d.decompress(data)
    except zlib.error as exc:
        return f"gzip stream is damaged: {exc}"
    if not d.eof:
        return "gzip stream is truncated"
    # The trailer entry, then NUL padding to the archive's block size (up to 10 KiB).
    end = raw.rfind(b"TRAILER!!!", max(0, len(raw) - 11000))
    if end < 0 or raw[end + 10:].strip(b"\0"):
        return "cpio archive has no trailer at its end"
    return None


def incomplete_kernel(data: bytes) -> str | None:
    """Why an x86 bzImage is shorter than its own header says, or None."""
    if len(data) < 0x230 or data[0x202:0x206] != b"HdrS":
        return "not a bzImage"
    setup = (data[0x1F1] or 4) + 1
    syssize = int.from_bytes(data[0x1F4:0x1F8], "little")
    if len(data) < setup * 512 + syssize * 16:
        return f"kernel truncated ({len(data)} bytes)"
    return None


# --- the runs ----------------------------------------------------------------------

@dataclass
class Run:
    index: int
    edits: list[str]
    kind: str                 # what the build has to do: image, overlay or none
    point: str                # when the kill was due: "<delay> s" or "write <n>"
    fraction: float           # that, over the expected length of such a build
    killed: bool
    task: str                 # the task doit had started last (the kill point)
    seconds: float


@dataclass
class Report:
    runs: list[Run] = field(default_factory=list)
    fetches: int = 0
    cycles: int = 0
    problems: list[str] = field(default_factory=list)    # inconsistencies the client saw
    failures: list[str] = field(default_factory=list)    # builds, store, lock, final checks
    clean_seconds: float = 0.0
    compared: int = 0          # files of the clean build compared byte for byte
    waiting: int = 0           # unnamed files gc is waiting to remove
    removed_by_gc: int = 0

    @property
    def killed(self) -> int:
        return sum(r.killed for r in self.runs)

    def kill_points(self) -> Counter[str]:
        """Killed runs by the task doit had started last ("start-up": loading, planning)."""
        return Counter(r.task.split(":")[0] if r.task else "start-up" for r in self.runs if r.killed)


def store_ok(project: Path) -> str | None:
    """None if doit's sqlite store is whole."""
    db = project / "output/.doit.db"
    if not db.exists():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            result = conn.execute("PRAGMA integrity_check").fetchone()[0]
            conn.execute("select count(*) from doit").fetchone()
    except sqlite3.Error as exc:
        return f"{db}: {exc}"
    return None if result == "ok" else f"{db}: integrity_check says {result}"


WRAP = TESTS / "support" / "crashwrap.py"


@dataclass(frozen=True)
class Outcome:
    killed: bool
    task: str          # the task doit had started last: where the kill landed
    seconds: float
    code: int
    stderr: str
    writes: int        # files put in place (-1: unknown, killed by time)
    last: str          # the file put in place last, when killed after a write


def run_killed(project: Path, env: dict[str, str], delay: float | None = None,
               writes: int = 0) -> Outcome:
    """Start a build, SIGKILL its process group after `delay` s or right after its
    `writes`-th file is put in place (tests/support/crashwrap.py), unless it ends first."""
    start = time.monotonic()
    counted = project.parent / "writes.txt"
    counted.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, str(WRAP), str(writes), str(counted)], cwd=project, env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    lines: list[str] = []
    err: list[str] = []
    assert proc.stdout is not None and proc.stderr is not None
    readers = [threading.Thread(target=lambda s=s, into=into: into.extend(s), daemon=True)
               for s, into in ((proc.stdout, lines), (proc.stderr, err))]
    for t in readers:
        t.start()
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        # The whole group: compressors and dpkg-deb die with the build, as in a crash.
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    seconds = time.monotonic() - start
    for t in readers:
        t.join(timeout=30)
    started = ran("".join(lines))
    killed = proc.returncode == -signal.SIGKILL
    done, last = -1, ""
    if counted.exists():
        n, _, last = counted.read_text().strip().partition(" ")
        done = int(n)
    return Outcome(killed, started[-1] if started else "", seconds, proc.returncode, "".join(err), done, last)


def choose_edits(rng: random.Random, inputs: Inputs, image_every: float) -> list[str]:
    if rng.random() < 0.2:
        return []          # no edit: the interrupted build is simply run again
    edits = rng.sample(["args", "motd", "issue"], rng.randint(1, 2))
    if rng.random() < image_every:
        edits.append("modules")
    for aspect in edits:
        # Three versions each: an edit is sometimes undone, so a blob gc was
        # waiting to remove is named again.
        setattr(inputs, aspect, (getattr(inputs, aspect) + 1) % 3)
    return edits


def served_files(http: Path) -> dict[str, str]:
    return {p.relative_to(http).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(http.rglob("*")) if p.is_file()}


def other_outputs(project: Path, *paths: Path) -> dict[str, bytes]:
    """output/etc, tftp and iso: rewritten in place, not content-addressed.

    Project paths (nginx's root) are replaced by a mark, so a build elsewhere
    compares equal.
    """
    out: dict[str, bytes] = {}
    for sub in ("etc", "tftp", "iso"):
        for f in sorted((project / "output" / sub).rglob("*")):
            if f.is_file():
                data = f.read_bytes()
                for path in paths:
                    data = data.replace(str(path).encode(), b"<project>")
                out[f.relative_to(project / "output").as_posix()] = data
    return out


def crash_test(work: Path, runs: int, seed: int, grace: float = 30.0, image_every: float = 0.15,
               log: object = None) -> Report:
    """Everything above; `log` (a callable taking a line) hears about each run."""
    say = log if callable(log) else (lambda _line: None)
    rng = random.Random(seed)
    report = Report()
    port = httpd.free_port()
    inputs = Inputs()
    project = make_project(work / "site", port, inputs)
    env = doit_env(WWSTATIC_GC_GRACE=str(grace), WWSTATIC_LOCK_WAIT="0")

    first = run_killed(project, env)
    report.clean_seconds = first.seconds
    if first.code != 0:
        report.failures.append(f"the first build failed: {first.stderr[-2000:]}")
        return report
    say(f"clean build: {report.clean_seconds:.1f} s")
    # How long a whole build of each kind takes, and how many files it writes:
    # the most seen in the runs that finish.
    # The first build of a kind is not killed: it measures.
    expected = {"image": report.clean_seconds}
    files = {"image": first.writes}
    conf = (project / "output/etc/nginx.conf").read_text()
    client = Client(port)
    pending: set[str] = set()    # edits since the last build that finished
    stamp = project / "output/work/images/demo/rootfs.done"
    roots = {inputs.modules: stamp.read_text()}   # the root stamp of each module list
    with httpd.running(work / "nginx", conf, port):
        client.start()
        try:
            for index in range(runs):
                edits = choose_edits(rng, inputs, image_every)
                write_inputs(project, port, inputs)
                pending |= set(edits)
                # An image build while the root on disk is not that of the module list asked for.
                now = stamp.read_text() if stamp.exists() else None
                kind = ("image" if now is None or roots.get(inputs.modules) != now else
                        "overlay" if pending - {"modules"} else "none")
                # Half the kills after a random delay (anywhere, mid-write too), half
                # right after a random file write (between any two, publish's too);
                # each drawn a little past the whole build, so some runs finish:
                # those are the builds that continue from a killed one.
                if kind not in expected:
                    out = run_killed(project, env)
                    point, fraction = "-", 1.0
                elif rng.random() < 0.5:
                    delay = rng.uniform(0, 1.15 * expected[kind])
                    out = run_killed(project, env, delay=delay)
                    point, fraction = f"{delay:.2f} s", delay / expected[kind]
                else:
                    nth = rng.randint(1, max(1, round(1.15 * files[kind])))
                    out = run_killed(project, env, writes=nth)
                    point, fraction = f"write {nth}", nth / max(1, files[kind])
                    if out.killed:
                        point += f" ({out.last})"
                if not out.killed:
                    pending.clear()
                    roots[inputs.modules] = stamp.read_text()
                    # The longest seen: a build that had less left to do (after a kill
                    # late in the last one) must not shrink the range kills are drawn from.
                    expected[kind] = max(expected.get(kind, 0.0), out.seconds)
                    files[kind] = max(files.get(kind, 0), out.writes)
                    if out.code != 0:
                        report.failures.append(f"run {index}: build failed ({out.code}): "
                                               f"{out.stderr[-2000:]}")
                if (bad := store_ok(project)) is not None:
                    report.failures.append(f"run {index}: {bad}")
                run = Run(index, edits, kind, point, fraction, out.killed, out.task, out.seconds)
                report.runs.append(run)
                say(f"run {index:3d}: {kind:7s} edits={','.join(edits) or '-':22s} "
                    f"{'killed' if out.killed else 'done  '} at {point:>9s} ({fraction:4.0%}, "
                    f"{out.seconds:4.1f} s) in {out.task or '(start-up)'}; "
                    f"fetches so far {client.fetches}, problems {len(client.problems)}")
            final_start = time.time()
            final = doit(project, env=env)
            if final.returncode != 0:
                report.failures.append(f"the final build failed: {final.stderr[-2000:]}")
            # Nothing left to do (but gc, when its grace period ends: not now).
            again = doit(project, env={**env, "WWSTATIC_GC_GRACE": "1e9"})
            if again.returncode != 0 or ran(again.stdout):
                report.failures.append(f"a build after the final one ran {ran(again.stdout)}")
            # Let the client see the final tree too.
            seen = client.cycles
            deadline = time.monotonic() + 60
            while client.cycles < seen + 2 and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            client.stop()
    report.fetches, report.cycles, report.problems = client.fetches, client.cycles, client.problems
    compare_with_clean(work, project, grace, final_start, report)
    return report


def compare_with_clean(work: Path, project: Path, grace: float, final_start: float, report: Report) -> None:
    clean = work / "clean"
    shutil.copytree(project, clean, ignore=shutil.ignore_patterns("output", "access.log"))
    result = doit(clean)
    if result.returncode != 0:
        report.failures.append(f"the clean build failed: {result.stderr[-2000:]}")
        return
    mine, want = served_files(project / "output/http"), served_files(clean / "output/http")
    report.compared = len(want)
    for rel, digest in want.items():
        if mine.get(rel) != digest:
            report.failures.append(f"{rel}: {'missing' if rel not in mine else 'differs'} after the crashes")
    mine_other, want_other = other_outputs(project, project, clean), other_outputs(clean, project, clean)
    report.compared += len(want_other)
    for rel, data in want_other.items():
        if mine_other.get(rel) != data:
            report.failures.append(f"output/{rel}: {'missing' if rel not in mine_other else 'differs'} "
                                   "after the crashes")
    try:
        pending: dict[str, float] = json.loads((project / "output/.state/gc.json").read_text())["since"]
    except FileNotFoundError:
        pending = {}
    extra = set(mine) - set(want)
    report.waiting = len(extra)
    for rel in sorted(extra):
        if rel not in pending:
            report.failures.append(f"{rel}: no pointer names it, yet gc does not know it")
    for rel, since in pending.items():
        if rel in want:
            report.failures.append(f"{rel}: gc means to remove a file the pointers name")
        if since < final_start - grace - 1:
            report.failures.append(f"{rel}: unnamed for longer than the grace period, yet not removed")
    report.removed_by_gc = sum(1 for rel in report_seen_removed(project, pending))


def report_seen_removed(project: Path, pending: dict[str, float]) -> list[str]:
    """Blobs the client once fetched that gc has removed since (found from the access log)."""
    log = project / "access.log"
    if not log.exists():
        return []
    http = project / "output/http"
    urls = set()
    for line in log.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) > 6 and parts[3] == "200":
            urls.add(parts[6].lstrip("/"))
    return [u for u in urls if not (http / u).exists() and u not in pending]


def summary(report: Report, seed: int) -> str:
    kinds = Counter(r.kind for r in report.runs)
    fractions = sorted(r.fraction for r in report.runs if r.killed)
    spread = Counter(min(int(f * 5), 4) for f in fractions)
    lines = [
        f"runs: {len(report.runs)} (seed {seed}; builds killed: {report.killed}, finished: "
        f"{len(report.runs) - report.killed}; kinds: {dict(sorted(kinds.items()))})",
        f"fetches checked: {report.fetches} in {report.cycles} client cycles over {len(NODES)} nodes",
        f"inconsistencies: {len(report.problems)}",
        f"other failures (builds, store, lock, final comparison): {len(report.failures)}",
        "kill points by task: " + ", ".join(f"{k} {v}" for k, v in sorted(report.kill_points().items())),
        "kill points by fifth of the build: " + ", ".join(
            f"{i * 20}-{i * 20 + 20}% {spread.get(i, 0)}" for i in range(5)),
        "kill points (after a delay, or right after the n-th file put in place):",
        *(f"  run {r.index}: {r.kind} build, {r.point}, in {r.task or 'start-up'}"
          for r in report.runs if r.killed),
        f"clean build: {report.clean_seconds:.1f} s; final tree: {report.compared} files equal to a clean "
        f"build's, {report.waiting} unnamed files waiting for gc, {report.removed_by_gc} fetched files "
        f"removed by gc after the grace period",
    ]
    lines += [f"INCONSISTENCY {p}" for p in report.problems[:20]]
    lines += [f"FAILURE {f}" for f in report.failures[:20]]
    return "\n".join(lines)
