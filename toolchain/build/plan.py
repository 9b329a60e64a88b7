"""What a build serves: every blob's name, and what each node's pointers name.

A node's system and runtime overlays are each split in two layers (split.py):
the files whose bytes are the same for every node with the same overlay list go
into one shared blob, rendered once; the rest go into a small blob of the
node's own, unpacked after it. A node still gets every file of its overlays:
its iPXE script loads both and wwclient applies both, in that order.

Every name is a digest of what makes the blob's bytes (see layout.py), known
here before anything is built, so the pointers can be written last. A shared
blob is rendered here and named by its bytes; a node's blob is named by its
inputs (its settings, the per-node sources, the files they include).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from toolchain.build import layout
from toolchain.fingerprint import digest, overlay_code
from toolchain.model.types import Cluster, Node
from toolchain.overlay import functions, split

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
    shared: tuple[split.Source, ...]
    per_node: tuple[split.Source, ...]
    shared_part: split.Part             # rendered when planned
    shared_blob: Blob | None
    node_key: str           # digest of what all node blobs of the set depend on
    per_node_reads_nodes: bool
    uses_image: bool        # a per-node template may read files of the node's image


@dataclass(frozen=True)
class Group:
    """Nodes with the same image and overlay lists share a kernel, image and shared layers.

    The group's own pointers (an iPXE script and a wwclient manifest) name those,
    so a change to a shared layer (the hosts file) rewrites a few group pointers,
    not one pointer per node.
    """
    id: str                      # stable while the image and overlay lists stay the same
    image: str
    kernel: Blob
    image_blob: Blob
    sets: dict[str, OverlaySet]  # kind -> overlay set
    modules: Blob | None = None  # the kernel's modules, for an image booting another's kernel

    def initrds(self) -> list[tuple[str, str, Blob | None]]:
        """(name, kind, shared blob or None for the node's own) of each initrd, in load order."""
        out: list[tuple[str, str, Blob | None]] = [("image", "image", self.image_blob)]
        if self.modules:
            out.append(("modules", "modules", self.modules))
        for kind in KINDS:
            oset = self.sets[kind]
            if oset.shared_blob:
                out.append((kind, kind, oset.shared_blob))
            if oset.per_node:
                out.append((f"{kind}-node", kind, None))
        return out

    @property
    def script_url(self) -> str:
        return layout.group_url(self.id, "ipxe")

    @property
    def manifest_url(self) -> str:
        return layout.group_url(self.id, "json")


@dataclass(frozen=True)
class NodePlan:
    node: Node
    group: Group
    own: dict[str, Blob]            # kind -> the node's own blob (absent if it has none)

    @property
    def kernel(self) -> Blob:
        return self.group.kernel

    def initrds(self) -> list[tuple[str, Blob]]:
        """(name, blob) of every initrd, in the order iPXE loads them."""
        return [(name, blob or self.own[kind]) for name, kind, blob in self.group.initrds()]


@dataclass(frozen=True)
class ImageBlobs:
    kernel: Blob
    image: Blob
    modules: Blob | None
    # More kernels of the image, by the version prefix nodes ask for (kernel.version)
    kernels: dict[str, Blob] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    sets: dict[tuple[str, tuple[str, ...]], OverlaySet]
    groups: dict[str, Group]
    nodes: dict[str, NodePlan]
    images: dict[str, ImageBlobs]


# The cluster's value, field by field: every dataclass field but those left out of its
# equality (the loader's locations, for messages). `nodes` is keyed node by node.
KEYED_FIELDS = tuple(f.name for f in dataclasses.fields(Cluster) if f.compare and f.name != "nodes")


def cluster_key(cluster: Cluster, read: Iterable[str] | None = None) -> str:
    """A digest of the cluster-wide values templates can read, all of them or the `read` ones
    (Cluster field names, and "cluster_file", the name of `path`).

    A name that is not a field (a method such as `cluster.node`) counts as all.
    """
    names = set(KEYED_FIELDS) if read is None else set(read) - {"nodes"}
    if not names <= {*KEYED_FIELDS, "cluster_file"}:
        names = set(KEYED_FIELDS)
    return digest(*(f"{name}={_value(cluster, name)!r}" for name in sorted(names)))


def _value(cluster: Cluster, name: str) -> object:
    if name == "cluster_file":
        return Path(cluster.path).name
    value = getattr(cluster, name)
    return sorted(value.items()) if isinstance(value, dict) else value


def make_plan(project: Path, cluster: Cluster, env: jinja2.Environment,
              node_key: Mapping[str, str], image_keys: Mapping[str, str]) -> Plan:
    """The plan of a build; `image_keys` are the images' input digests."""
    code = overlay_code()
    nodes_key = digest(*(node_key[n.name] for n in cluster.nodes))
    images: dict[str, ImageBlobs] = {}
    asked: dict[str, set[str]] = {}   # image -> kernel versions its nodes choose
    for node in cluster.nodes:
        if node.kernel.version and node.kernel.version != cluster.images[node.image].kernel_version:
            asked.setdefault(node.image, set()).add(node.kernel.version)
    for name, key in image_keys.items():
        img = cluster.images[name]
        kernels = {v: Blob(layout.kernel_url(name, k), k)
                   for v in sorted(asked.get(name, ())) for k in [digest(key, "kernel", v)]}
        modules = (Blob(layout.modules_url(name, key, img.compression), key) if img.kernel_from
                   else None)
        images[name] = ImageBlobs(Blob(layout.kernel_url(name, key), key),
                                  Blob(layout.image_url(name, key, img.compression), key), modules,
                                  kernels)

    sets: dict[tuple[str, tuple[str, ...]], OverlaySet] = {}

    def overlay_set(kind: str, names: tuple[str, ...]) -> OverlaySet:
        found = sets.get((kind, names))
        if found is None:
            srcs = split.sources(project, names, env)
            shared = tuple(s for s in srcs if not s.per_node)
            per_node = tuple(s for s in srcs if s.per_node)
            # Rendered once here and named by its bytes: a file listing all nodes
            # (hosts) changes with only some node changes, and included head files count.
            part = split.render(project, names, shared, shared_context(cluster), env,
                                f"the shared part of {kind} overlays {', '.join(names)}")
            if part.secrets:   # split.sources keeps them per node: this is a bug
                raise AssertionError(f"secret files {sorted(part.secrets)} in a shared part")
            blob = None
            if part.entries:
                key = digest(code, kind, split.entries_digest(part.entries))
                blob = Blob(layout.shared_url(kind, key), key)
            heads = [digest(str(f), f.read_bytes().hex()) if f.is_file() else digest(str(f))
                     for f in split.head_files(project, env, per_node)]
            read = split.cluster_fields(project, env, per_node)
            # The shared part's path list, not its bytes: which of the node's files a
            # later overlay's shared file replaces (split.own). A hosts file changed
            # by one node's IP then leaves every other node's part as it was.
            paths = repr(sorted(part.origin.items()))
            node_part_key = digest(code, kind, *names, split.sources_digest(project, names, per_node),
                                   cluster_key(cluster, read), paths, *heads)
            found = OverlaySet(kind, names, shared, per_node, part, blob, node_part_key,
                               read is None or "nodes" in read, split.uses_image(per_node))
            sets[(kind, names)] = found
        return found

    groups: dict[tuple[object, ...], Group] = {}
    plans: dict[str, NodePlan] = {}
    for node in cluster.nodes:
        blobs = images[node.image]
        version = node.kernel.version if node.kernel.version in blobs.kernels else ""
        # The version only when it picks another kernel: other groups keep their ids.
        gkey: tuple[object, ...] = (node.image, node.system_overlays, node.runtime_overlays,
                                    *((version,) if version else ()))
        group = groups.get(gkey)
        if group is None:
            group = groups[gkey] = Group(layout.short(digest(repr(gkey))), node.image,
                                         blobs.kernels.get(version, blobs.kernel),
                                         blobs.image,
                                         {"system": overlay_set("system", node.system_overlays),
                                          "runtime": overlay_set("runtime", node.runtime_overlays)},
                                         blobs.modules)
        own: dict[str, Blob] = {}
        for kind, oset in group.sets.items():
            if oset.per_node:
                key = digest(oset.node_key, node_key[node.name],
                             nodes_key if oset.per_node_reads_nodes else "",
                             image_keys[node.image] if oset.uses_image else "")
                own[kind] = Blob(layout.node_blob_url(node.name, kind, key), key)
        plans[node.name] = NodePlan(node, group, own)
    return Plan(sets, {g.id: g for g in groups.values()}, plans, images)


def node_context(cluster: Cluster, node: Node) -> dict[str, Any]:
    return functions.make_context(cluster, node)


def shared_context(cluster: Cluster) -> dict[str, Any]:
    """What templates of a shared part see: all but the per-node variables."""
    return {"nodes": cluster.nodes, "head": cluster.head, "cluster": cluster,
            "cluster_file": Path(cluster.path).name}
