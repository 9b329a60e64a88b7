"""Pointers: the small files that name blobs, written last and atomically.

A node's iPXE script sets the node's own values (kernel arguments, its own
overlay blobs) and chains its group's script, which names the kernel, the
image and the shared overlay blobs; a node's wwclient manifest names its own
runtime blob and includes the group's manifest of shared layers. Pointers are
replaced only after every blob they name is in place, group pointers before
node pointers, so whatever a node reads names complete files. The shared and
own layers never hold the same path (plan.py), so a node that reads a group
pointer from just after a build and its own from just before still gets a
complete, coherent set of files.

A state file remembers each node's pointer inputs, so a build rewrites only
the pointers of nodes whose inputs changed: a new hosts file (a shared layer)
rewrites the group pointers only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from toolchain.build import generate, layout
from toolchain.build.plan import Blob, Group, NodePlan, Plan
from toolchain.fingerprint import digest
from toolchain.fsutil import write_atomic, write_if_changed
from toolchain.model.types import Cluster

MANIFEST_FORMAT = 1


def pointer_key(np: NodePlan, node_key: str, base_key: str) -> str:
    """What a node's pointers are made from (blob contents are fixed by their names).

    `base_key` covers the cluster-wide settings and the pointer templates.
    """
    return digest(base_key, node_key, np.group.id, *(b.url for b in np.own.values()))


class _Sums:
    """sha256 and size of blobs, each file read once per build."""

    def __init__(self, http: Path) -> None:
        self.http = http
        self.seen: dict[str, tuple[str, int]] = {}

    def layer(self, blob: Blob) -> dict[str, object]:
        found = self.seen.get(blob.url)
        if found is None:
            data = (self.http / blob.url).read_bytes()
            found = self.seen[blob.url] = (hashlib.sha256(data).hexdigest(), len(data))
        return {"url": blob.url, "sha256": found[0], "size": found[1]}


def _json(doc: dict[str, object]) -> str:
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def group_manifest(group: Group, sums: _Sums) -> str:
    shared = group.sets["runtime"].shared_blob
    return _json({"format": MANIFEST_FORMAT, "group": group.id,
                  "layers": [sums.layer(shared)] if shared else []})


def node_manifest(cluster: Cluster, np: NodePlan, sums: _Sums) -> str:
    layers: list[dict[str, object]] = [{"include": np.group.manifest_url}]
    if "runtime" in np.own:
        layers.append(sums.layer(np.own["runtime"]))
    return _json({"format": MANIFEST_FORMAT, "node": np.node.name,
                  "interval": cluster.wwclient_interval, "layers": layers})


def publish(cluster: Cluster, plan: Plan, http: Path, state: Path, node_keys: Mapping[str, str],
            base_key: str) -> int:
    """Write the group pointers, then each node's whose inputs changed; return files changed."""
    try:
        done: dict[str, str] = json.loads(state.read_text())
    except (FileNotFoundError, ValueError):
        done = {}
    # The state says which node pointers are current only until one is rewritten:
    # a build killed half-way through the loop below (then an edit undone) must not
    # skip a node whose pointers it already rewrote. It is written again at the end.
    state.unlink(missing_ok=True)
    sums = _Sums(http)
    changed = 0
    for group in plan.groups.values():
        changed += write_if_changed(http / group.script_url, generate.group_ipxe(cluster, group))
        changed += write_if_changed(http / group.manifest_url, group_manifest(group, sums))
    now: dict[str, str] = {}
    for name, np in plan.nodes.items():
        key = now[name] = pointer_key(np, node_keys[name], base_key)
        if done.get(name) == key:
            continue
        # A discoverable node with no MAC yet has no script (`wwstatic discover --assign`).
        if np.node.bootable:
            changed += write_if_changed(http / layout.ipxe_path(np.node), generate.node_ipxe(cluster, np))
        changed += write_if_changed(http / layout.manifest_url(name), node_manifest(cluster, np, sums))
    changed += write_if_changed(http / layout.UNKNOWN_IPXE, generate.unknown_ipxe(cluster))
    write_atomic(state, json.dumps(now, sort_keys=True))
    return changed


def referenced(plan: Plan) -> set[str]:
    """Every file under output/http the current pointers name, pointers included."""
    refs = {layout.UNKNOWN_IPXE}
    for group in plan.groups.values():
        refs.update((group.script_url, group.manifest_url, group.kernel.url))
        refs.update(b.url for _, _, b in group.initrds() if b)
    for np in plan.nodes.values():
        if np.node.bootable:
            refs.add(layout.ipxe_path(np.node))
        refs.add(layout.manifest_url(np.node.name))
        refs.update(b.url for b in np.own.values())
    for blobs in plan.images.values():
        refs.update(b.url for b in (blobs.kernel, blobs.image, blobs.modules, *blobs.kernels.values()) if b)
    return refs
