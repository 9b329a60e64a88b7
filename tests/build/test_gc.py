"""Unit tests of toolchain.build.gc: files no pointer names go only after the grace period.

Hermetic and in-process: the served tree is a few files under tmp_path, the
clock is the `now` each call is given, and the scan is gc.served_files() or a
spy around it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolchain.build import gc
from toolchain.fsutil import TEMP_PREFIX, TEMP_SUFFIX, is_temporary

GRACE = 100.0
DIRS = ("images", "nodes", "shared", "ipxe", "groups")
FILES = ("images/img/vmlinuz-a", "images/img/image-a.img.gz", "nodes/n1/runtime-a.img.gz",
         "nodes/n1/runtime.json", "shared/system-a.img.gz", "ipxe/52-54-00-00-00-01.ipxe")


def served(root: Path, files: Iterable[str] = FILES) -> Path:
    http = root / "http"
    for rel in files:
        (http / rel).parent.mkdir(parents=True, exist_ok=True)
        (http / rel).write_text(rel)
    return http


class Scan:
    """served_files() over DIRS, counting its walks."""

    def __init__(self, http: Path) -> None:
        self.http, self.walks = http, 0

    def __call__(self) -> Iterable[str]:
        self.walks += 1
        return list(gc.served_files(self.http, DIRS))


def collector(root: Path, http: Path) -> Callable[..., gc.GcResult]:
    state = root / "gc.json"
    scan = Scan(http)

    def collect(named: Iterable[str], now: float, written: Iterable[str] = ()) -> gc.GcResult:
        return gc.collect(http, set(named), state, GRACE, scan, written, now=now)
    collect.scan = scan  # type: ignore[attr-defined]
    return collect


def present(http: Path) -> set[str]:
    return set(gc.served_files(http, DIRS))


# --- served_files --------------------------------------------------------------


def test_served_files_lists_files_under_the_given_directories_only(tmp_path: Path) -> None:
    http = served(tmp_path)
    (http / "boot").mkdir()
    (http / "boot" / "ipxe.efi").write_text("x")
    (http / "images" / "empty").mkdir()
    assert set(gc.served_files(http, ("images", "nodes"))) == set(FILES[:4])
    assert list(gc.served_files(http, ("missing",))) == []


def test_an_empty_output_collects_nothing_and_keeps_a_record(tmp_path: Path) -> None:
    http = tmp_path / "http"
    http.mkdir()
    collect = collector(tmp_path, http)
    assert collect((), 0.0) == gc.GcResult(0, [])
    assert gc.up_to_date(tmp_path / "gc.json", (), GRACE, now=1.0)


# --- the grace period ---------------------------------------------------------------


def test_unnamed_files_go_after_the_grace_period_named_files_never(tmp_path: Path) -> None:
    http = served(tmp_path)
    collect = collector(tmp_path, http)
    named = set(FILES[3:])
    assert collect(named, 1000.0) == gc.GcResult(3, [])
    assert present(http) == set(FILES)
    assert collect(named, 1000.0 + GRACE - 1) == gc.GcResult(3, [])
    result = collect(named, 1000.0 + GRACE)
    assert result == gc.GcResult(0, sorted(FILES[:3]))
    assert present(http) == named
    assert not (http / "images").exists()           # directories left empty go too
    assert collect(named, 1e9).removed == []


def test_a_file_named_again_leaves_the_list_and_waits_afresh_when_unnamed(tmp_path: Path) -> None:
    http = served(tmp_path)
    collect = collector(tmp_path, http)
    old = "shared/system-a.img.gz"
    collect(set(FILES) - {old}, 0.0)
    collect(FILES, 50.0)                             # the change undone: named again
    collect(set(FILES) - {old}, 90.0)                # and unnamed again: waits from 90
    assert collect(set(FILES) - {old}, 0.0 + GRACE).removed == []
    assert collect(set(FILES) - {old}, 90.0 + GRACE).removed == [old]


def test_unpend_forgets_the_waiting_time_of_files_about_to_be_named(tmp_path: Path) -> None:
    http = served(tmp_path)
    collect = collector(tmp_path, http)
    state = tmp_path / "gc.json"
    old = "shared/system-a.img.gz"
    collect(set(FILES) - {old}, 0.0)
    gc.unpend(state, set(FILES))                     # a build about to name it again ...
    assert not gc.up_to_date(state, set(FILES) - {old}, GRACE, now=1.0)
    # ... killed before publishing: the next collection finds it unnamed, without a walk,
    # and it waits from then.
    assert collect(set(FILES) - {old}, 50.0).pending == 1
    assert collect.scan.walks == 1  # type: ignore[attr-defined]
    assert collect(set(FILES) - {old}, 50.0 + GRACE - 1).removed == []
    assert collect(set(FILES) - {old}, 50.0 + GRACE).removed == [old]


def test_temporary_files_of_killed_builds_go_sooner(tmp_path: Path) -> None:
    http = served(tmp_path, [*FILES, "ipxe/.52-54-00-00-00-01.ipxe.x1.tmp"])
    state = tmp_path / "gc.json"
    grace = 10_000.0
    gc.collect(http, set(FILES), state, grace, Scan(http), now=0.0)
    assert gc.collect(http, set(FILES), state, grace, Scan(http), now=600.0).removed == [
        "ipxe/.52-54-00-00-00-01.ipxe.x1.tmp"]


def test_files_gone_meanwhile_leave_the_list(tmp_path: Path) -> None:
    http = served(tmp_path)
    collect = collector(tmp_path, http)
    collect(FILES[1:], 0.0)
    (http / FILES[0]).unlink()
    assert collect(FILES[1:], 1.0) == gc.GcResult(0, [])


# --- the record, and when it scans -------------------------------------------------


def test_the_record_keeps_the_named_files_and_each_waiting_files_first_time(tmp_path: Path) -> None:
    http = served(tmp_path)
    collect = collector(tmp_path, http)
    state = tmp_path / "gc.json"
    collect(FILES[2:], 5.0)
    collect(FILES[1:], 7.0)           # FILES[1] named again
    collect(FILES[3:], 9.0)           # FILES[1] and FILES[2] unnamed now
    assert json.loads(state.read_text())["since"] == {FILES[0]: 5.0, FILES[1]: 9.0, FILES[2]: 9.0}
    assert state.with_name("gc.json.named").read_text().splitlines() == sorted(FILES[3:])
    assert json.loads(state.with_name("gc.json.summary").read_text())["first"] == 5.0


def test_up_to_date_until_the_named_set_changes_or_a_waiting_file_is_due(tmp_path: Path) -> None:
    http = served(tmp_path)
    collect = collector(tmp_path, http)
    state = tmp_path / "gc.json"
    assert not gc.up_to_date(state, FILES[1:], GRACE, now=0.0)     # never collected
    collect(FILES[1:], 10.0)
    assert gc.up_to_date(state, reversed(FILES[1:]), GRACE, now=10.0 + GRACE - 1)
    assert not gc.up_to_date(state, FILES[1:], GRACE, now=10.0 + GRACE)
    assert not gc.up_to_date(state, FILES[2:], GRACE, now=11.0)
    collect(FILES, 12.0)
    assert gc.up_to_date(state, FILES, GRACE, now=1e9)                # nothing waits


def test_the_tree_is_walked_first_and_once_per_grace_period_only(tmp_path: Path) -> None:
    http = served(tmp_path)
    collect = collector(tmp_path, http)
    collect(FILES, 0.0)
    assert collect.scan.walks == 1  # type: ignore[attr-defined]
    stray = "nodes/n9/runtime-z.img.gz"     # left by a build killed before it noted it
    served(tmp_path, [stray])
    collect(FILES, 10.0)
    assert collect.scan.walks == 1  # type: ignore[attr-defined]
    assert json.loads((tmp_path / "gc.json").read_text())["since"] == {}   # not seen without a walk
    # A file named last time and not now is looked at without a walk; so is one a build wrote.
    fresh = "nodes/n8/runtime-y.img.gz"
    served(tmp_path, [fresh])
    assert collect(FILES[1:], 20.0, written=[fresh]).pending == 2
    collect(FILES[1:], GRACE)
    assert collect.scan.walks == 2  # type: ignore[attr-defined]
    assert stray in json.loads((tmp_path / "gc.json").read_text())["since"]


# --- the property -----------------------------------------------------------------

NAMES = [f"nodes/n{i % 3}/f{i}" for i in range(8)]


# Whole delays hit the end of the grace period exactly; random ones fall anywhere.
DELAYS = st.sampled_from([0.0, 1.0, GRACE - 1, GRACE]) | st.floats(0, 2 * GRACE)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sets(st.sampled_from(NAMES)), DELAYS,
                          st.none() | st.sets(st.sampled_from(NAMES))),
                min_size=1, max_size=8))
def test_gc_removes_exactly_the_files_unnamed_for_the_grace_period(
        steps: list[tuple[set[str], float, set[str] | None]]) -> None:
    """Whatever the named sets and clock: a named file is never removed, and an unnamed
    file goes at the first collection `grace` after the collection that first found
    it unnamed. A build's unpend() of the files it is about to name resets that, even
    when that build is killed and the next collection names other files."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        http = served(root, NAMES)
        state = root / "gc.json"
        now = 0.0
        waiting: dict[str, float] = {}   # the model: first collection that found it unnamed
        exists = set(NAMES)
        for named, delay, unpend in steps:
            now += delay
            if unpend is not None:
                gc.unpend(state, unpend)
                waiting = {f: t for f, t in waiting.items() if f not in unpend}
            result = gc.collect(http, named, state, GRACE, Scan(http), now=now)
            assert not set(result.removed) & named
            for f in exists - named:
                waiting.setdefault(f, now)
            for f in named:
                waiting.pop(f, None)
            due = {f for f, t in waiting.items() if now - t >= GRACE}
            assert set(result.removed) == due
            exists -= due
            waiting = {f: t for f, t in waiting.items() if f not in due}
            assert result.pending == len(waiting)
            assert present(http) == exists


# --- temporaries a killed process leaves ------------------------------------------

# Each kind of temporary, made by the code that makes it in a process killed while it
# is open (os._exit skips every cleanup, as SIGKILL would).
LEAVE = {
    "atomic write": "from toolchain.fsutil import atomic_open\n"
                    "with atomic_open(out / 'http/images/demo/image-a.img.gz') as f:\n"
                    "    f.write(b'part'); f.flush(); os._exit(9)",
    "scratch directory": "from toolchain.fsutil import temp_dir\n"
                         "with temp_dir(out / 'work', 'wwstatic-oci') as d:\n"
                         "    (Path(d) / 'blob').write_bytes(b'x'); os._exit(9)",
    "host key scratch": "from toolchain.fsutil import temp_dir\n"
                        "(out / 'keys').mkdir()\n"
                        "with temp_dir(out / 'keys', 'keygen') as d: os._exit(9)",
}
# Never temporaries, though some are dot-files in the same directories.
KEEP = ("http/images/demo/image-b.img.gz", ".lock", ".state/gc.json", "work/spool.tmp", "etc/.keep")


def run_py(code: str, out: Path) -> subprocess.CompletedProcess[str]:
    prelude = f"import os, sys\nfrom pathlib import Path\nout = Path({str(out)!r})\n"
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True,
                          check=False)


def remove_as_lock_holder(out: Path, now: float) -> tuple[list[str], float | None]:
    """gc.remove_temporaries() in a build that holds output/'s lock, at time `now`."""
    done = run_py("import json\nfrom toolchain.build import gc, lock\nlock.acquire(out)\n"
                  f"removed, due = gc.remove_temporaries(out, [out], 3600, now={now})\n"
                  "print(json.dumps([[str(p.relative_to(out)) for p in removed], due]))", out)
    assert done.returncode == 0, done.stderr
    removed, due = json.loads(done.stdout)
    return sorted(removed), due


@pytest.fixture
def leftovers(tmp_path: Path) -> tuple[Path, set[str], float]:
    out = tmp_path / "output"
    for rel in KEEP:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(rel)
    for kind, code in LEAVE.items():
        assert run_py(code, out).returncode == 9, kind
    left = {str(p.relative_to(out)) for p in out.rglob("*") if is_temporary(p.name)}
    assert len(left) == len(LEAVE), left   # one of each kind, and named as fsutil says
    newest = max((out / rel).lstat().st_mtime for rel in left)
    return out, left, newest


def test_every_kind_of_temporary_goes_after_the_grace_and_nothing_else(
        leftovers: tuple[Path, set[str], float]) -> None:
    out, left, newest = leftovers
    oldest = min((out / rel).lstat().st_mtime for rel in left)
    # None is old enough yet: they stay, and the first of them falls due at its time.
    assert remove_as_lock_holder(out, newest + gc.TEMP_GRACE - 1) == ([], oldest + gc.TEMP_GRACE)
    assert {str(p.relative_to(out)) for p in out.rglob("*") if is_temporary(p.name)} == left
    assert remove_as_lock_holder(out, newest + gc.TEMP_GRACE) == (sorted(left), None)
    assert not [p for p in out.rglob("*") if is_temporary(p.name)]
    for rel in KEEP:
        assert (out / rel).is_file(), rel


def test_temporaries_stay_while_a_build_holds_the_lock(leftovers: tuple[Path, set[str], float]) -> None:
    out, left, newest = leftovers
    holder = subprocess.Popen([sys.executable, "-c", "import sys\nfrom pathlib import Path\n"
                               "from toolchain.build import lock\n"
                               f"lock.acquire(Path({str(out)!r}))\nprint('held', flush=True)\n"
                               "sys.stdin.read()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        assert gc.remove_temporaries(out, [out], 3600, now=newest + 10 * gc.TEMP_GRACE) == ([], None)
        assert {str(p.relative_to(out)) for p in out.rglob("*") if is_temporary(p.name)} == left
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait()


def test_temporaries_under_skip_are_left_to_collect(tmp_path: Path) -> None:
    """The served tree's temporaries are unnamed files for collect(), which records them."""
    out = tmp_path / "output"
    (out / "http/groups").mkdir(parents=True)
    (out / ".state").mkdir()
    served = out / "http/groups" / f"{TEMP_PREFIX}x.ipxe.abc{TEMP_SUFFIX}"
    other = out / ".state" / f"{TEMP_PREFIX}gc.json.abc{TEMP_SUFFIX}"
    for f in (served, other):
        f.write_text("partial")
    later = max(f.lstat().st_mtime for f in (served, other)) + gc.TEMP_GRACE
    done = run_py("import json\nfrom toolchain.build import gc, lock\nlock.acquire(out)\n"
                  f"removed, due = gc.remove_temporaries(out, [out], 3600, now={later}, "
                  "skip=[out / 'http'])\nprint(json.dumps([str(p) for p in removed]))", out)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [str(other)]
    assert served.exists()


def test_a_temporary_falling_due_makes_gc_run_again(tmp_path: Path) -> None:
    state = tmp_path / "gc.json"
    gc.collect(tmp_path, set(), state, 3600, lambda: [], now=1000.0, temporaries_due=1600.0)
    assert gc.up_to_date(state, set(), 3600, now=1599.0)
    assert not gc.up_to_date(state, set(), 3600, now=1600.0)
    gc.collect(tmp_path, set(), state, 3600, lambda: [], now=1600.0)
    assert gc.up_to_date(state, set(), 3600, now=99999.0)


def test_a_killed_write_s_temporary_is_recorded_without_a_walk(tmp_path: Path) -> None:
    """Beside a file a build noted it would write, the temporary a kill left is waited on;
    after a publish cut short, the next collection walks the whole tree."""
    http, state = tmp_path / "http", tmp_path / "gc.json"
    (http / "nodes/n02").mkdir(parents=True)
    gc.collect(http, set(), state, 3600, lambda: [], now=1000.0)   # the first one walks
    temp = http / "nodes/n02" / f"{TEMP_PREFIX}runtime-1.img.gz.ab12cd{TEMP_SUFFIX}"
    temp.write_text("partial")
    walked: list[bool] = []

    def scan() -> list[str]:
        walked.append(True)
        return []
    gc.collect(http, set(), state, 3600, scan, written=["nodes/n02/runtime-1.img.gz"], now=1001.0)
    assert not walked
    assert "nodes/n02/" + temp.name in json.loads(state.read_text())["since"]
    gc.rescan(state)
    assert not gc.up_to_date(state, set(), 3600, now=1002.0)
    gc.collect(http, set(), state, 3600, scan, now=1002.0)
    assert walked and gc.up_to_date(state, set(), 3600, now=1003.0)
