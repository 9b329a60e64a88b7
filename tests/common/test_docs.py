"""The admin guide: every example cluster file builds, and the reference is generated."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.support.project import REPO, pointed, run_doit
from toolchain.build import layout
from toolchain.model import spec
from toolchain.model.load import load_cluster

DOCS = REPO / "docs"
EXAMPLES = sorted((DOCS / "examples").glob("*.yaml"))


def test_there_are_examples_and_every_guide_page_is_linked() -> None:
    assert len(EXAMPLES) >= 2
    index = (DOCS / "README.md").read_text()
    for page in DOCS.glob("*.md"):
        if page.name != "README.md":
            assert f"({page.name})" in index, f"{page.name} is not linked from docs/README.md"
    for page in DOCS.glob("*.md"):
        for target in re.findall(r"\]\(([^)#:]+)\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_reference_is_generated() -> None:
    assert (DOCS / "cluster-yaml.md").read_text() == spec.markdown()


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_example_builds(example: Path, tmp_path: Path) -> None:
    project = tmp_path / example.stem
    project.mkdir()
    shutil.copy(REPO / "dodo.py", project / "dodo.py")
    shutil.copytree(REPO / "overlays", project / "overlays")
    shutil.copy(example, project / "cluster.yaml")
    done = run_doit(project)
    assert done.returncode == 0, done.stdout + done.stderr
    cluster = load_cluster(project / "cluster.yaml")
    http = project / "output/http"
    dhcpd = (project / "output/etc/dhcpd.conf").read_text()
    for node in cluster.nodes:
        assert (http / layout.manifest_url(node.name)).is_file()
        if node.bootable:
            files = pointed(project / "output", node.mac)
            assert len(files) >= 3 and all((http / f).is_file() for f in files), files
            assert f"host {node.name} {{" in dhcpd
        else:  # a discoverable node waiting for its MAC
            assert node.discoverable and f"host {node.name} {{" not in dhcpd
    again = run_doit(project)
    assert again.returncode == 0 and not [ln for ln in again.stdout.splitlines() if ln.startswith(". ")]
