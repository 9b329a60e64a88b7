"""Where things are: the package's own data, and every path of a project.

The one place that spells a path. The package's data (shipped overlays, the
build's templates) sits beside the code that reads it; a project is a folder
with cluster.yaml, overlays/ and output/.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
SHIPPED_OVERLAYS = PACKAGE / "overlay" / "shipped"
BUILD_TEMPLATES = PACKAGE / "build" / "templates"
IPXE_TEMPLATES = BUILD_TEMPLATES / "ipxe"
# `wwstatic -f FILE build` tells the build (another process, when doit runs
# its own way) which cluster file to read instead of the project's cluster.yaml.
CLUSTER_ENV = "WWSTATIC_CLUSTER"


def overlay_dirs(project: Path) -> list[Path]:
    """Where overlays are looked up, first match winning: the site's, then the shipped ones."""
    return [project / "overlays", SHIPPED_OVERLAYS]


@dataclass(frozen=True)
class Project:
    """A project folder: cluster.yaml, the site's overlays, and the output/ the build writes."""
    root: Path
    cluster: Path | None = None  # None: the project's own cluster.yaml

    @classmethod
    def current(cls) -> Project:
        """The project a build runs on: the current directory, and CLUSTER_ENV if set."""
        named = os.environ.get(CLUSTER_ENV)
        return cls(Path.cwd(), Path(named).absolute() if named else None)

    @property
    def cluster_file(self) -> Path:
        return self.cluster or self.root / "cluster.yaml"

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
