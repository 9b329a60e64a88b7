"""What one build works on: the project's paths, its resolved cluster and each node's key."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from toolchain.model.types import Cluster
from toolchain.project import Project


@dataclass(frozen=True)
class Context:
    paths: Project
    cluster: Cluster
    node_keys: dict[str, str]

    @property
    def root(self) -> Path:
        return self.paths.root

    @property
    def out(self) -> Path:
        return self.paths.out

    @property
    def http(self) -> Path:
        return self.paths.http

    @property
    def state(self) -> Path:
        return self.paths.state
