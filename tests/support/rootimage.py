"""A tiny project on a root-directory image: builds in a fraction of a second, in-process."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from tests.support.project import REPO


def make_root(root: Path) -> Path:
    """An image root with a kernel and a file, for `images: {img: {root: ...}}`."""
    (root / "boot").mkdir(parents=True, exist_ok=True)
    (root / "etc").mkdir(exist_ok=True)
    (root / "boot" / "vmlinuz-6.1.0-9-amd64").write_text("the kernel\n")
    (root / "etc" / "motd").write_text("from the image\n")
    return root


def cluster(root: Path, nodes: int = 3, runtime: tuple[str, ...] = ("hosts",)) -> dict[str, object]:
    """cluster.yaml's data: `nodes` nodes n01... on 10.99.0.0/24, one profile."""
    return {
        "head": {"ip": "10.99.0.1", "network": "10.99.0.0/24", "http": "http://10.99.0.1"},
        "images": {"img": {"root": str(root)}},
        "profiles": {"default": {"image": "img", "system_overlays": ["wwinit", "hostname"],
                                 "runtime_overlays": list(runtime)}},
        "nodes": {f"n{i:02d}": {"profiles": ["default"],
                                "network": {"default": {"ip": f"10.99.0.{10 + i}",
                                                        "mac": f"52:54:00:99:00:{10 + i:02x}"}}}
                  for i in range(1, nodes + 1)},
    }


def write_project(dest: Path, data: dict[str, object]) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dodo.py", dest / "dodo.py")
    (dest / "overlays").mkdir(exist_ok=True)
    (dest / "cluster.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


def blobs(project: Path) -> dict[str, tuple[int, int]]:
    """Every blob under output/http (layout.BLOB_DIRS), with its inode and mtime."""
    from toolchain.build import layout
    http = project / "output" / "http"
    out: dict[str, tuple[int, int]] = {}
    for d in layout.BLOB_DIRS:
        for f in (http / d).rglob("*"):
            if f.is_file() and not f.name.endswith(".json"):
                st = f.stat()
                out[f.relative_to(http).as_posix()] = (st.st_ino, st.st_mtime_ns)
    return out
