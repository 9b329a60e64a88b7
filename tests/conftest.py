"""Shared fixtures: a built copy of the shipped demo project, and boot timings."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
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
            data["profiles"]["default"]["kernel"]["args"] += ["wwstatic.demo=poweroff", "panic=5"]
        if edit is not None:
            edit(data)

    project = make_project(dest, edit_all)
    if prepare is not None:
        prepare(project)
    done = run_doit(project)
    assert done.returncode == 0, done.stdout + done.stderr
    return project


@pytest.fixture(scope="session")
def demo_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The shipped demo, built, with nodes told to power off once booted."""
    yield boot_project(tmp_path_factory.mktemp("demo"))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if BOOT_TIMES:
        terminalreporter.section("boot times (seconds from QEMU start)")
        for name, marks in BOOT_TIMES:
            shown = ", ".join(f"{k!r}: {v:.1f}" for k, v in marks.items())
            terminalreporter.write_line(f"{name}: {shown}")
