"""Where things are: the package's own data, and every path of a project.

The one place that spells a path. The package's data (shipped overlays, the
build's templates) sits beside the code that reads it; a project is a folder
with cluster.yaml, overlays/ and output/.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
SHIPPED_OVERLAYS = PACKAGE / "overlay" / "shipped"
BUILD_TEMPLATES = PACKAGE / "build" / "templates"
IPXE_TEMPLATES = BUILD_TEMPLATES / "ipxe"


def overlay_dirs(project: Path) -> list[Path]:
    """Where overlays are looked up, first match winning: the site's, then the shipped ones."""
    return [project / "overlays", SHIPPED_OVERLAYS]


@dataclass(frozen=True)
class Project:
    """A project folder: cluster.yaml, the site's overlays, and the output/ the build writes."""
    root: Path

    @property
    def cluster_file(self) -> Path:
        return self.root / "cluster.yaml"

    @property
    def overlays(self) -> Path:
        return self.root / "overlays"

    @property
    def out(self) -> Path:
        return self.root / "output"

    @property
    def http(self) -> Path:
        """What the web server serves."""
        return self.out / "http"

    @property
    def state(self) -> Path:
        """The build's own records (cluster cache, pointer and gc records, text stamps)."""
        return self.out / ".state"

    @property
    def work(self) -> Path:
        """Scratch space of image builds (built roots, spools, source digests)."""
        return self.out / "work"
