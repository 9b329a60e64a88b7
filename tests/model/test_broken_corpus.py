"""A corpus of broken cluster.yaml files, each checked through the CLI.

Every tests/data/broken/NAME.yaml starts with a line

    # expect: LINE:COL substring of the message

giving the place and text of the first error `wwstatic lint` must report. The
files use only the shipped overlays (wwinit, hostname, hosts): overlays are
looked up next to the cluster file, and there are none next to these.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.project import REPO, TESTS

CORPUS = TESTS / "data" / "broken"
FILES = sorted(CORPUS.glob("*.yaml"))
EXPECT = re.compile(r"# expect: (\d+):(\d+) (\S.*)\Z")


@dataclass(frozen=True)
class Expect:
    line: int
    col: int
    text: str


def expectation(path: Path) -> Expect:
    first = path.read_text(encoding="utf-8").split("\n", 1)[0]
    m = EXPECT.match(first)
    assert m, f"{path.name}: the first line must be `# expect: LINE:COL text`, not {first!r}"
    return Expect(int(m.group(1)), int(m.group(2)), m.group(3))


def lint(path: Path) -> subprocess.CompletedProcess[str]:
    path_entries = [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path_entries)}
    return subprocess.run([sys.executable, "-m", "toolchain.cli", "lint", "-f", str(path)], cwd=path.parent,
                          env=env, capture_output=True, text=True, check=False, timeout=60)


def test_corpus_size() -> None:
    assert len(FILES) >= 40, f"only {len(FILES)} files in {CORPUS}"


def test_corpus_names_are_unique_mistakes() -> None:
    # Two files expecting the same message at the same place test the same thing twice.
    seen: dict[Expect, str] = {}
    for path in FILES:
        exp = expectation(path)
        assert exp not in seen, f"{path.name} repeats {seen[exp]}"
        seen[exp] = path.name


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_broken_file(path: Path) -> None:
    exp = expectation(path)
    done = lint(path)
    out = f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.returncode == 1, out
    assert "Traceback" not in done.stderr, out
    errors = [line for line in done.stderr.splitlines() if ": error: " in line]
    assert errors, out
    # The first error reported is the expected one, at its place.
    assert f"{path.name}:{exp.line}:{exp.col}: error:" in errors[0], out
    assert exp.text in errors[0], out
    assert "hint:" in done.stderr, out
