"""The overlay fixture project: a cluster, a head's files and an image root."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.project import TESTS

FIXTURE = TESTS / "fixtures" / "overlays"


def fixture_project(dest: Path) -> Path:
    """The overlay fixture (cluster.yaml, a head's files, an image root) copied to `dest`."""
    shutil.copytree(FIXTURE, dest)
    text = (dest / "cluster.yaml").read_text().replace("IMAGE_ROOT", str(dest / "image"))
    (dest / "cluster.yaml").write_text(text)
    return dest
