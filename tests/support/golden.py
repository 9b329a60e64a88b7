"""Golden files under tests/golden: compared, or rewritten with WWSTATIC_UPDATE_GOLDEN=1."""

from __future__ import annotations

import os

from tests.support.project import TESTS

GOLDEN = TESTS / "golden"


def check_golden(name: str, text: str) -> None:
    """Compare with tests/golden/NAME; WWSTATIC_UPDATE_GOLDEN=1 rewrites it."""
    path = GOLDEN / name
    if os.environ.get("WWSTATIC_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs from its golden file"
