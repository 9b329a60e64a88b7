"""The shipped project copied, edited and built, as most build and boot tests need it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

TESTS = Path(__file__).resolve().parent.parent
REPO = TESTS.parent
BOOT_TIMES: list[tuple[str, dict[str, float]]] = []


def pointed(output: Path, mac: str) -> list[str]:
    """The files a node's iPXE script and the group script it chains name, relative to output/http."""
    script = (output / "http/ipxe" / f"{mac.replace(':', '-')}.ipxe").read_text()
    values = dict(re.findall(r"^set (ww\w+) (\S+)$", script, re.M))
    group = re.findall(r"^chain \$\{base\}/(\S+)", script, re.M)
    assert len(group) == 1, script
    text = (output / "http" / group[0]).read_text()
    urls = re.findall(r"^(?:kernel|initrd) .*?\$\{base\}/(\S+)", text, re.M)
    return [group[0], *(re.sub(r"\$\{(ww\w+)\}", lambda m: values[m.group(1)], u) for u in urls)]


def run_doit(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "doit", *args], cwd=project,
                          capture_output=True, text=True, check=False)


def make_project(dest: Path, edit: object = None) -> Path:
    """A copy of the shipped project (cluster.yaml, overlays, dodo.py) in `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dodo.py", dest / "dodo.py")
    shutil.copytree(REPO / "overlays", dest / "overlays")
    text = (REPO / "cluster.yaml").read_text()
    if callable(edit):
        data = yaml.safe_load(text)
        edit(data)
        text = yaml.safe_dump(data, sort_keys=False)
    (dest / "cluster.yaml").write_text(text)
    return dest


def boot_project(dest: Path, edit: Callable[[dict[str, Any]], None] | None = None,
                 prepare: Callable[[Path], None] | None = None, poweroff: bool = True) -> Path:
    """A copy of the shipped project for boot tests, built.

    nginx logs (in wwstatic's format) to `dest/access.log`; with `poweroff`, the
    demo image's nodes power off once booted. `edit` changes cluster.yaml's
    data after that, and `prepare(project)` adds files before the build.
    """
    def edit_all(data: dict[str, Any]) -> None:
        data["head"]["access_log"] = str(dest / "access.log")
        if poweroff:
            # no_timer_check: under TCG on a loaded host, the kernel's check that the
            # timer interrupt arrives can time out and panic ("IO-APIC + timer doesn't
            # work!"), after the whole boot chain worked; the check proves nothing here.
            data["profiles"]["default"]["kernel"]["args"] += ["wwstatic.demo=poweroff", "panic=5",
                                                              "no_timer_check"]
        if edit is not None:
            edit(data)

    project = make_project(dest, edit_all)
    if prepare is not None:
        prepare(project)
    done = run_doit(project)
    assert done.returncode == 0, done.stdout + done.stderr
    return project


def ran(result: subprocess.CompletedProcess[str]) -> set[str]:
    """The tasks doit executed (".  name"), not the up-to-date ones ("-- name")."""
    return {line[3:].strip() for line in result.stdout.splitlines() if line.startswith(".  ")}
