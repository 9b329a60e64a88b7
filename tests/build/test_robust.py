"""The build under stress: concurrent builds, killed builds, full and unwritable disks,
garbage collection after crashes, `doit clean`, and reproducibility across the
build environment (umask, time zone, locale, checkout path).

The crash test itself (builds killed at random points while a client reads
every node's files) is tests/build/test_crash.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.lab.crashlab import WRAP
from tests.support.project import make_project, pointed, ran, run_doit
from toolchain.build import gc
from toolchain.node import wwclient

MACS = [f"52-54-00-99-00-1{i}" for i in range(1, 5)]
POINTERS = re.compile(r"^(ipxe/.*|groups/.*|nodes/[^/]+/runtime\.json)$")


def doit_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "TZ": "UTC", "LC_ALL": "C", **extra}


def doit(project: Path, *args: str, env: dict[str, str] | None = None,
         prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, sys.executable, "-m", "doit", *args], cwd=project,
                          env=env or doit_env(), capture_output=True, text=True, check=False)


def digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def pointers(http: Path) -> dict[str, str]:
    return {k: v for k, v in digests(http).items() if POINTERS.match(k)}


def named(output: Path) -> set[str]:
    """Every file the pointers in output/http name (pointers included), each checked
    to exist; a manifest's layers must match their sha256 and size."""
    http = output / "http"
    out: set[str] = set()
    for mac in MACS:
        files = pointed(output, mac)
        out.update([f"ipxe/{mac}.ipxe", *files])
    for manifest in sorted(http.glob("nodes/*/runtime.json")):
        doc = wwclient.parse_manifest(manifest.read_bytes(), manifest.parent.name)
        out.add(manifest.relative_to(http).as_posix())
        for item in doc.layers:
            layers = [item]
            if isinstance(item, wwclient.Include):
                out.add(item.url)
                layers = list(wwclient.parse_included((http / item.url).read_bytes()))
            for layer in layers:
                assert isinstance(layer, wwclient.Layer)
                data = (http / layer.url).read_bytes()
                assert hashlib.sha256(data).hexdigest() == layer.sha256 and len(data) == layer.size, layer
                out.add(layer.url)
    missing = sorted(f for f in out if not (http / f).is_file())
    assert not missing, f"pointers name missing files: {missing}"
    return out


def as_output(dest: Path, http: Path) -> Path:
    """An output/ directory whose http/ is `http` (a copy of a served tree), for named()."""
    dest.mkdir()
    (dest / "http").symlink_to(http)
    return dest


def store_is_whole(project: Path) -> None:
    db = project / "output/.doit.db"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def edit_motd(project: Path, extra: str = "Edited.\n") -> None:
    motd = project / "overlays/motd/rootfs/etc/motd.j2"
    motd.write_text(motd.read_text() + extra)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped demo built once, with umask 022, TZ=UTC and LC_ALL=C."""
    project = make_project(tmp_path_factory.mktemp("reference") / "site")
    result = doit(project, prefix=("sh", "-c", 'umask 022; exec "$@"', "sh"))
    assert result.returncode == 0, result.stderr
    return project


# --- reproducibility -------------------------------------------------------------

def modes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): oct(p.stat().st_mode) for p in sorted(root.rglob("*"))}


def _locales() -> list[str]:
    found = subprocess.run(["locale", "-a"], capture_output=True, text=True, check=False).stdout.split()
    return [name for name in ("C.utf8", "en_US.utf8") if name in found]


# Each variation is built in a checkout of its own path too.
VARIATIONS = {
    "umask 077": ({}, "077"),
    "TZ Pacific/Auckland": ({"TZ": "Pacific/Auckland"}, "022"),
    **{f"locale {name}": ({"LC_ALL": name, "LANG": name}, "022") for name in _locales()},
}


@pytest.mark.parametrize("variation", list(VARIATIONS))
def test_output_does_not_depend_on_the_build_environment(reference: Path, tmp_path: Path,
                                                         variation: str) -> None:
    env, umask = VARIATIONS[variation]
    project = make_project(tmp_path / "another" / "checkout")
    result = doit(project, env=doit_env(**env), prefix=("sh", "-c", f'umask {umask}; exec "$@"', "sh"))
    assert result.returncode == 0, result.stderr
    for sub in ("http", "tftp"):
        assert digests(project / "output" / sub) == digests(reference / "output" / sub), sub
        # Modes too: under umask 077 nginx (another user) must still read the
        # tree, directories included, and secrets stay 0640/0600 either way.
        assert modes(project / "output" / sub) == modes(reference / "output" / sub), sub
    assert oct((project / "output").stat().st_mode & 0o777) == "0o755"
    for name in ("dhcpd.conf", "dnsmasq.conf", "kea-dhcp4.conf"):
        assert (project / "output/etc" / name).read_bytes() == (reference / "output/etc" / name).read_bytes()


# --- concurrency ---------------------------------------------------------------

def test_two_builds_started_together(reference: Path, tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    builds = [subprocess.Popen([sys.executable, "-m", "doit"], cwd=project, env=doit_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for _ in range(2)]
    results = [b.communicate(timeout=300) for b in builds]
    assert [b.returncode for b in builds] == [0, 0], results
    # One built, the other waited for it and then found nothing (or little) to do.
    assert sum("waiting for it" in err for _, err in results) == 1, results
    assert not any("Traceback" in out + err for out, err in results)
    store_is_whole(project)
    assert digests(project / "output/http") == digests(reference / "output/http")
    named(project / "output")
    again = doit(project)
    assert again.returncode == 0 and ran(again) == set(), again.stdout


def test_a_killed_build_frees_the_lock(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    build = subprocess.Popen([sys.executable, "-m", "doit"], cwd=project, env=doit_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        # Killed while it holds the lock and works (the image root appears early).
        deadline = time.monotonic() + 120
        while not (project / "output/work").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (project / "output/.lock").read_text().strip() == str(build.pid)
        assert build.poll() is None, "the build ended before it could be killed"
    finally:
        os.killpg(build.pid, signal.SIGKILL)
        build.wait()
    # The kernel dropped the flock with the process: a build that will not wait runs.
    result = doit(project, env=doit_env(WWSTATIC_LOCK_WAIT="0"))
    assert result.returncode == 0, result.stderr
    assert "another build" not in result.stderr
    store_is_whole(project)
    named(project / "output")


def test_the_lock_is_not_inherited_by_programs_the_build_runs(tmp_path: Path) -> None:
    # A build runs pigz, dpkg-deb, depmod...: if one of them inherited the lock
    # and outlived a killed build, the next build would wait for it.
    project = make_project(tmp_path / "p")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import os, subprocess, sys; os.chdir(sys.argv[1]); import toolchain.build.tasks; "
        "child = subprocess.Popen(['sleep', '120']); print(child.pid, flush=True); "
        "os.kill(os.getpid(), 9)"), str(project)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    child = int(holder.stdout.readline())
    holder.wait()
    try:
        assert Path(f"/proc/{child}").exists(), "the child should outlive the build"
        result = doit(project, "tftp", env=doit_env(WWSTATIC_LOCK_WAIT="0"))
        assert result.returncode == 0, result.stderr
        assert "another build" not in result.stderr
    finally:
        os.kill(child, signal.SIGKILL)


# --- a full disk, an unwritable output ------------------------------------------

FULL_DISK = r"""
set -eu
P=$1; T=$2; PY=$3
# A copy of output/ on a tmpfs mounted over it (in this mount namespace only),
# then filled up: the next build has no byte to write.
cp -a "$P/output" "$T/saved"
mount -t tmpfs -o size=64m tmpfs "$P/output"
cp -a "$T/saved/." "$P/output/"
fallocate -l "$(df -B1 --output=avail "$P/output" | tail -1)" "$P/output/filler"
cd "$P"
set +e
"$PY" -m doit > "$T/full.out" 2> "$T/full.err"; echo $? > "$T/full.rc"
# An image written through pigz (a separate process) on the same full disk.
"$PY" -c "
import os
from pathlib import Path
from toolchain.archive import Compression, Entry, write_cpio
from toolchain.errors import WWError
try:
    write_cpio([Entry('big', 0o100644, data=os.urandom(1 << 20))], Path('output/http/images/big.img.gz'),
               Compression.GZIP, what='a test image')
except WWError as err:
    print(err)
" > "$T/pigz.txt" 2>&1
cp -a "$P/output/http" "$T/after-full"
rm "$P/output/filler"
"$PY" -m doit > "$T/fixed.out" 2> "$T/fixed.err"; echo $? > "$T/fixed.rc"
cp -a "$P/output/http" "$T/after-fixed"
"""


def test_a_full_disk_fails_clearly_and_keeps_serving(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    assert run_doit(project).returncode == 0
    before = pointers(project / "output/http")
    edit_motd(project)    # the next build writes new node layers and pointers
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", FULL_DISK, "sh",
                           str(project), str(scratch), sys.executable], capture_output=True, text=True,
                          check=False, timeout=600)
    assert done.returncode == 0, done.stderr
    err = (scratch / "full.err").read_text()
    assert (scratch / "full.rc").read_text().strip() != "0"
    assert "Traceback" not in err + (scratch / "full.out").read_text()
    errors = [line for line in err.splitlines() if line.startswith("wwstatic: ")]
    assert len(errors) == 1, err
    assert re.fullmatch(rf"wwstatic: error: cannot write {re.escape(str(project))}/output/http/nodes/n0\d/"
                        r"runtime-[0-9a-f]{20}\.img\.gz: no space left on device", errors[0]), err
    assert "  hint: free space on the file system of output/" in err
    # The served tree is as it was: same pointers, and everything they name is there.
    after = scratch / "after-full"
    assert pointers(after) == before
    named(as_output(scratch / "out-full", after))
    assert not list(after.rglob(".*.tmp")), "temporary files left behind"
    # The same through pigz: the file it was writing and the reason.
    pigz = (scratch / "pigz.txt").read_text()
    assert "cannot write output/http/images/big.img.gz: no space left on device" in pigz, pigz
    # With space again, the build finishes and the new pointers name complete files.
    assert (scratch / "fixed.rc").read_text().strip() == "0", (scratch / "fixed.err").read_text()
    assert pointers(scratch / "after-fixed") != before
    named(as_output(scratch / "out-fixed", scratch / "after-fixed"))


READ_ONLY = r"""
set -eu
cd "$1"
mount --bind "$3" "$3"
mount -o remount,bind,ro "$3"
exec "$2" -m doit
"""

# Root ignores file modes (CAP_DAC_OVERRIDE), so a chmod alone proves nothing when
# the tests run as root. Dropping that capability and CAP_DAC_READ_SEARCH from the
# build (setpriv, from util-linux) makes uid 0 obey the modes like any owner,
# without switching to another user who could not even run the venv under /root.
NO_OVERRIDE = ("setpriv", "--inh-caps=-dac_override,-dac_read_search",
               "--bounding-set=-dac_override,-dac_read_search")


@pytest.mark.parametrize("how", ["read-only output/http", "read-only output/", "no write permission"])
def test_an_unwritable_output_fails_clearly_and_keeps_serving(tmp_path: Path, how: str) -> None:
    project = make_project(tmp_path / "p")
    assert run_doit(project).returncode == 0
    http = project / "output/http"
    before = digests(http)
    edit_motd(project)
    where = http
    if how.startswith("read-only"):
        # Mounted read-only in a mount namespace of the build's own: nothing leaks to the host.
        ro = http if how == "read-only output/http" else project / "output"
        result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", READ_ONLY,
                                 "sh", str(project), sys.executable, str(ro)], capture_output=True, text=True,
                                check=False, timeout=600)
        reason = "read-only file system"
        # All of output/: the build stops at its lock, before doit opens its store there.
        where = http if ro == http else project / "output/.lock"
    else:
        dirs = [http, *(d for d in http.rglob("*") if d.is_dir())]
        for d in dirs:
            d.chmod(0o555)
        try:
            result = doit(project, prefix=NO_OVERRIDE)
        finally:
            for d in dirs:
                d.chmod(0o755)
        reason = "permission denied"
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("wwstatic: ")]
    assert len(errors) == 1, result.stderr
    assert re.fullmatch(rf"wwstatic: error: cannot write {re.escape(str(where))}\S*: {reason}", errors[0])
    assert "  hint: " in result.stderr and "the files being served are unchanged" in result.stderr
    assert digests(http) == before
    named(project / "output")


# --- garbage collection -------------------------------------------------------------

@pytest.mark.parametrize("after", ["the first pointer", "the last pointer"])
def test_gc_never_removes_what_a_pointer_names_after_a_crash_mid_publish(tmp_path: Path,
                                                                       after: str) -> None:
    project = make_project(tmp_path / "p")
    assert run_doit(project).returncode == 0
    motd = project / "overlays/motd/rootfs/etc/motd.j2"
    original = motd.read_text()
    edit_motd(project)
    # Killed right after publish put the first pointer in place, or after its stamp
    # (all pointers written, doit's store not yet saved).
    only = r"^http/(ipxe|groups)/|/runtime\.json$" if after == "the first pointer" else r"^\.state/published$"
    killed = subprocess.run([sys.executable, str(WRAP), "1", str(tmp_path / "count")], cwd=project,
                            env=doit_env(WWCRASH_ONLY=only), capture_output=True, text=True, check=False,
                            start_new_session=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    edited = named(project / "output")
    # The edit is undone, and gc may remove at once whatever it finds unnamed.
    motd.write_text(original)
    result = doit(project, env=doit_env(WWSTATIC_GC_GRACE="0"))
    assert result.returncode == 0, result.stderr
    now = named(project / "output")
    gone = {f for f in edited - now if not (project / "output/http" / f).exists()}
    assert gone, "gc removed nothing: the test would prove nothing"
    assert all(f.startswith("nodes/") for f in gone), gone


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.sets(st.sampled_from([f"{d}/{n}" for d in ("shared", "nodes/n1", "images/x", "ipxe")
                                      for n in ("a", "b", ".c.tmp")]), max_size=12),
       data=st.data(), grace=st.sampled_from([0.0, 5.0, 3600.0]), age=st.floats(0, 7200))
def test_gc_collect_removes_only_unnamed_files_after_the_grace(tmp_path: Path, files: set[str],
                                                              data: st.DataObject, grace: float,
                                                              age: float) -> None:
    http = tmp_path / "http"
    shutil.rmtree(http, ignore_errors=True)
    for rel in files:
        (http / rel).parent.mkdir(parents=True, exist_ok=True)
        (http / rel).write_text(rel)
    keep = data.draw(st.sets(st.sampled_from(sorted(files)))) if files else set()
    state = tmp_path / "gc.json"
    now = 1e9
    state.write_text(json.dumps({"since": {rel: now - age for rel in files}}))
    result = gc.collect(http, keep, state, grace, lambda: files, now=now)
    assert all((http / rel).is_file() for rel in keep)
    for rel in files - keep:
        limit = min(grace, 600) if rel.rpartition("/")[2].startswith(".") else grace
        assert (rel in result.removed) == (age >= limit)
        assert (http / rel).exists() == (rel not in result.removed)
    assert set(json.loads(state.read_text())["since"]) == files - keep - set(result.removed)


def test_doit_clean_never_removes_what_a_pointer_names(tmp_path: Path) -> None:
    # Blobs are named by their inputs and removed by gc after the grace period
    # only: their tasks (image, shared, node) declare no `clean`, and publish and
    # gc have no targets. `doit clean` removes what is rebuilt in place: output/etc,
    # the TFTP tree, the UEFI HTTP boot binary, the ISOs and the image root's stamp.
    project = make_project(tmp_path / "p")
    assert run_doit(project).returncode == 0
    http = project / "output/http"
    files = named(project / "output")
    before = digests(http)
    result = doit(project, "clean")
    assert result.returncode == 0, result.stderr
    assert named(project / "output") == files
    after = digests(http)
    assert {k: v for k, v in before.items() if k in after} == after
    assert set(before) - set(after) == {"boot/snponly.efi"}
    assert not (project / "output/etc/dhcpd.conf").exists()
    for task in ("image", "shared", "node", "publish", "gc"):
        assert doit(project, "clean", task).returncode == 0
    assert digests(http) == after
    rebuilt = doit(project)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert digests(http) == before
    blobs = {"image:demo", "shared:runtime:hosts,motd", "node:n01", "publish"}
    assert not ran(rebuilt) & blobs, rebuilt.stdout
