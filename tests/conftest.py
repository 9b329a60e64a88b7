"""Shared fixtures (a built copy of the shipped demo project), boot timings, and the lab-marker check."""

from __future__ import annotations

import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.project import BOOT_TIMES, boot_project


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


# What a test needs the lab for: a network namespace, daemons in it, QEMU nodes.
LAB_NAMES = {"NetLab", "running_lab"}


def _uses_lab(function: object) -> bool:
    code = getattr(function, "__code__", None)
    if not isinstance(code, types.CodeType):
        return False
    names = set(code.co_names) | {c.co_name for c in code.co_consts if isinstance(c, types.CodeType)}
    return bool(names & LAB_NAMES)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that runs in the lab, by itself or through a fixture, carries the `lab` marker."""
    unmarked = []
    for item in items:
        if not isinstance(item, pytest.Function) or item.get_closest_marker("lab"):
            continue
        info = item._fixtureinfo
        functions = [item.function, *(d.func for defs in info.name2fixturedefs.values() for d in defs)]
        if any(_uses_lab(f) for f in functions):
            unmarked.append(item.nodeid)
    if unmarked:
        raise pytest.UsageError("these tests use tests/lab's network namespace but lack "
                                "@pytest.mark.lab: " + ", ".join(unmarked))
