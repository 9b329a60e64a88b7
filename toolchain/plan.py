"""What a build serves: every blob's name, and what each node's pointers name.

A node's system and runtime overlays are each split in two layers: the files
whose bytes are the same for every node with the same overlay list (static
files, directories, templates that read no per-node variable — the cluster's
hosts file among them) go into one shared blob, rendered once; the rest go
into a small blob of the node's own. The two layers never hold the same path,
so the order in which they unpack does not matter, and a node still gets every
file of its overlays: its iPXE script loads both and wwclient applies both.

Every name is a digest of the inputs that make the blob's bytes (see layout.py),
computed here before anything is built, so the pointers can be written last.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from . import layout, overlay
from .archive import Entry
from .fingerprint import digest, overlay_code
from .model import Cluster, Node

KINDS = ("system", "runtime")


@dataclass(frozen=True)
class Blob:
    url: str      # relative to output/http
    key: str      # the input digest the name carries


@dataclass(frozen=True)
class OverlaySet:
    """One distinct overlay list of one kind, shared by the nodes that use it."""
    kind: str
    names: tuple[str, ...]
    planned: tuple[overlay.Planned, ...]
    shared: tuple[overlay.Planned, ...]
    per_node: tuple[overlay.Planned, ...]
    shared_blob: Blob | None
    shared_entries: tuple[Entry, ...]   # already rendered, when rendered to name the blob
    node_key: str           # digest of the per-node sources; part of each node blob's key
    per_node_reads_nodes: bool


@dataclass(frozen=True)
class NodePlan:
    node: Node
    kernel: Blob
    image: Blob
    own: dict[str, Blob]            # kind -> the node's own blob (absent if it has none)
    layers: dict[str, list[Blob]]   # kind -> blobs to unpack, in order

    def initrds(self) -> list[tuple[str, Blob]]:
        """(name, blob) of every initrd, in the order iPXE loads them."""
        out = [("image", self.image)]
        for kind in KINDS:
            layers = self.layers[kind]
            out += [(f"{kind}{i}" if len(layers) > 1 else kind, b) for i, b in enumerate(layers, 1)]
        return out


@dataclass(frozen=True)
class Plan:
    sets: dict[tuple[str, tuple[str, ...]], OverlaySet]
    nodes: dict[str, NodePlan]
    images: dict[str, tuple[Blob, Blob]]


def entries_digest(entries: Iterable[Entry]) -> str:
    h = hashlib.sha256()
    for e in entries:
        h.update(repr((e.path, e.mode, e.uid, e.gid, e.target, e.source)).encode())
        h.update(e.data or b"")
    return h.hexdigest()


def cluster_key(cluster: Cluster) -> str:
    """A digest of the cluster-wide settings templates can read (all but the nodes)."""
    return digest(repr((cluster.head, cluster.dhcp, cluster.nfs_exports, cluster.ssh_key_types,
                        cluster.wwclient_interval, sorted(cluster.images.items()),
                        Path(cluster.path).name)))


def make_plan(project: Path, cluster: Cluster, env: jinja2.Environment,
              node_json: Mapping[str, str], image_keys: Mapping[str, str]) -> Plan:
    """The plan of a build; `image_keys` are the images' input digests."""
    code = overlay_code()
    ckey = cluster_key(cluster)
    nodes_key = digest(*(node_json[n.name] for n in cluster.nodes))
    images = {name: (Blob(layout.kernel_url(name, key), key), Blob(layout.image_url(name, key), key))
              for name, key in image_keys.items()}

    sets: dict[tuple[str, tuple[str, ...]], OverlaySet] = {}

    def overlay_set(kind: str, names: tuple[str, ...]) -> OverlaySet:
        found = sets.get((kind, names))
        if found is None:
            planned = overlay.plan(project, names, env)
            shared = tuple(p for p in planned if not p.per_node)
            per_node = tuple(p for p in planned if p.per_node)
            blob = None
            rendered: tuple[Entry, ...] = ()
            if shared:
                nodes_part = ""
                if any(p.reads_nodes for p in shared):
                    # A file listing all nodes (hosts) changes with only some node
                    # changes: render it now, once, and name the blob by its bytes.
                    rendered = tuple(overlay.entries(shared, shared_context(cluster), env,
                                                     f"the shared part of {kind} overlays "
                                                     f"{', '.join(names)}"))
                    nodes_part = entries_digest(rendered)
                key = digest(code, kind, *names, overlay.content_digest(shared), ckey, nodes_part)
                blob = Blob(layout.shared_url(kind, key), key)
            found = OverlaySet(kind, names, planned, shared, per_node, blob, rendered,
                               digest(code, kind, *names, overlay.content_digest(per_node), ckey),
                               any(p.reads_nodes for p in per_node))
            sets[(kind, names)] = found
        return found

    plans: dict[str, NodePlan] = {}
    for node in cluster.nodes:
        own: dict[str, Blob] = {}
        layers: dict[str, list[Blob]] = {}
        for kind in KINDS:
            names = node.system_overlays if kind == "system" else node.runtime_overlays
            oset = overlay_set(kind, names)
            layers[kind] = [oset.shared_blob] if oset.shared_blob else []
            if oset.per_node:
                key = digest(oset.node_key, node_json[node.name],
                             nodes_key if oset.per_node_reads_nodes else "")
                own[kind] = Blob(layout.node_blob_url(node.name, kind, key), key)
                layers[kind].append(own[kind])
        kernel, image = images[node.image]
        plans[node.name] = NodePlan(node, kernel, image, own, layers)
    return Plan(sets, plans, images)


def node_context(cluster: Cluster, node: Node) -> dict[str, Any]:
    return {**shared_context(cluster), "node": node, "image": cluster.images[node.image]}


def shared_context(cluster: Cluster) -> dict[str, Any]:
    return {"nodes": cluster.nodes, "head": cluster.head, "cluster_file": Path(cluster.path).name}
