"""Pointers: the small files that name blobs, written last and atomically.

A node's iPXE script names its kernel and initrds; its wwclient manifest names
its runtime layers with their sha256 and size. They are replaced only after
every blob they name is in place, so whatever a node reads is complete. A state
file remembers each node's pointer inputs, so a build rewrites only the
pointers of nodes whose inputs changed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from . import generate, layout
from .fingerprint import digest
from .fsutil import write_atomic
from .model import Cluster
from .plan import Blob, NodePlan, Plan

MANIFEST_FORMAT = 1


def pointer_key(np: NodePlan, node_json: str, base_key: str) -> str:
    """What a node's pointers are made from (blob contents are fixed by their names).

    `base_key` covers the cluster-wide settings and the pointer templates.
    """
    return digest(base_key, node_json, np.kernel.url, *(b.url for _, b in np.initrds()))


class _Sums:
    """sha256 and size of blobs, each file read once per build."""

    def __init__(self, http: Path) -> None:
        self.http = http
        self.seen: dict[str, tuple[str, int]] = {}

    def __call__(self, blob: Blob) -> tuple[str, int]:
        found = self.seen.get(blob.url)
        if found is None:
            data = (self.http / blob.url).read_bytes()
            found = self.seen[blob.url] = (hashlib.sha256(data).hexdigest(), len(data))
        return found


def manifest(cluster: Cluster, np: NodePlan, sums: _Sums) -> str:
    layers = []
    for blob in np.layers["runtime"]:
        sha, size = sums(blob)
        layers.append({"url": blob.url, "sha256": sha, "size": size})
    doc = {"format": MANIFEST_FORMAT, "node": np.node.name,
           "interval": cluster.wwclient_interval, "layers": layers}
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def _write_if_changed(path: Path, text: str) -> bool:
    data = text.encode()
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    write_atomic(path, data)
    return True


def publish(cluster: Cluster, plan: Plan, http: Path, state: Path, node_json: Mapping[str, str],
            base_key: str) -> int:
    """Write the pointers of every node whose inputs changed; return how many files changed."""
    try:
        done: dict[str, str] = json.loads(state.read_text())
    except (FileNotFoundError, ValueError):
        done = {}
    sums = _Sums(http)
    changed = 0
    now: dict[str, str] = {}
    for name, np in plan.nodes.items():
        key = pointer_key(np, node_json[name], base_key)
        now[name] = key
        if done.get(name) == key and (http / layout.ipxe_path(np.node)).exists():
            continue
        changed += _write_if_changed(http / layout.ipxe_path(np.node), generate.node_ipxe(cluster, np))
        changed += _write_if_changed(http / layout.manifest_url(name), manifest(cluster, np, sums))
    changed += _write_if_changed(http / layout.UNKNOWN_IPXE, generate.unknown_ipxe(cluster))
    write_atomic(state, json.dumps(now, sort_keys=True))
    return changed


def referenced(cluster: Cluster, plan: Plan) -> set[str]:
    """Every file under output/http the current pointers name, pointers included."""
    refs = {layout.UNKNOWN_IPXE}
    for np in plan.nodes.values():
        refs.add(layout.ipxe_path(np.node))
        refs.add(layout.manifest_url(np.node.name))
        refs.add(np.kernel.url)
        refs.update(b.url for _, b in np.initrds())
    for kernel, image in plan.images.values():
        refs.update((kernel.url, image.url))
    return refs


def served_files(http: Path, dirs: Iterable[str]) -> Iterable[str]:
    """Files under the given directories of output/http, relative to it."""
    for top in dirs:
        for dirpath, _dirnames, filenames in os.walk(http / top):
            rel = Path(dirpath).relative_to(http).as_posix()
            for f in filenames:
                yield f"{rel}/{f}"
