"""Linters as tests, so CI is just pytest."""

from __future__ import annotations

import subprocess
import sys

from tests.support.project import REPO


def test_ruff() -> None:
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=REPO,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy() -> None:
    done = subprocess.run([sys.executable, "-m", "mypy"], cwd=REPO,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
