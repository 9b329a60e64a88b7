"""An overlay list in two parts: what every node gets alike, and what is its own.

Each source file of the overlays is judged once, from its text: static files,
directories, symlinks and templates that read nothing per node (the cluster's
hosts file among them) make the shared part, rendered once for all nodes with
the same overlay list; templates that read the node (or its image, or its host
keys) make each node's own part (functions.node_dependent is conservative).

Layering still follows the list: a later overlay's file wins. The shared part
unpacks before the node's part, so a node's file from an earlier overlay that a
later overlay's shared file replaces is left out of the node's part (`own`).
"""

from __future__ import annotations

import hashlib
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import jinja2.nodes

from toolchain.archive import Entry
from toolchain.overlay import functions
from toolchain.overlay import render as overlay
from toolchain.overlay.manifest import MANIFEST


@dataclass(frozen=True)
class Source:
    index: int                  # position of its overlay in the list
    name: str                   # the overlay
    src: overlay.SourceFile
    per_node: bool
    reads_nodes: bool           # a per-node template that also reads all nodes


@dataclass(frozen=True)
class Part:
    """Rendered entries of one part, and which overlay (by index) each path came from."""
    entries: tuple[Entry, ...]
    origin: Mapping[str, int]
    secrets: frozenset[str] = frozenset()   # paths the manifests mark secret


def sources(project: Path, names: tuple[str, ...], env: jinja2.Environment) -> tuple[Source, ...]:
    out: list[Source] = []
    for index, name in enumerate(names):
        root = overlay.find_overlay(name, project)
        manifest = overlay.manifest_of(root)
        listed = overlay.list_sources(root)
        blocks = any(s.kind == "template" and overlay.writes_blocks(s) for s in listed)
        if not blocks:   # a template's {% file %} blocks write paths known only when rendered
            manifest.check_matches(_output(s) for s in listed)
        for src in listed:
            per_node = reads_nodes = False
            if src.kind == "template":
                _check_text(src)
                template = overlay.template_name(root, src)
                try:
                    per_node = functions.node_dependent(env, template) or functions.reads_secret(
                        env, template)
                except jinja2.TemplateSyntaxError:
                    per_node = True   # rendering it reports the error with its line
                reads_nodes = per_node and _reads_nodes(env, src)
                # Its blocks may write any path: private if the manifest can make one so.
                per_node = per_node or (manifest.has_private and overlay.writes_blocks(src))
            if src.kind in ("file", "template"):
                # A secret is the node's own even when every node's copy is the same
                # (a munge.key): every address on the network can fetch a shared part.
                executable = bool(src.path.stat().st_mode & 0o100)
                per_node = per_node or manifest.meta(_output(src), stat.S_IFREG, executable).private(
                    stat.S_IFREG)
            out.append(Source(index, name, src, per_node, reads_nodes))
    return tuple(out)


def _output(src: overlay.SourceFile) -> str:
    return src.rel.removesuffix(".j2") if src.kind == "template" else src.rel


def _reads_nodes(env: jinja2.Environment, src: overlay.SourceFile) -> bool:
    try:
        ast = env.parse(src.path.read_text())
        used = jinja2.meta.find_undeclared_variables(ast)   # compiles: an unknown filter fails here
    except jinja2.TemplateSyntaxError:
        return True
    refs = any(True for _ in ast.find_all((jinja2.nodes.Include, jinja2.nodes.Import,
                                           jinja2.nodes.FromImport, jinja2.nodes.Extends)))
    return refs or bool(used & {"nodes", "cluster"})


def _check_text(src: overlay.SourceFile) -> None:
    """A template must be UTF-8 text: every later reader decodes it."""
    data = src.path.read_bytes()
    try:
        data.decode()
    except UnicodeDecodeError as exc:
        raise overlay.TemplateError(str(src.path), data[: exc.start].count(b"\n") + 1, "",
                                    f"the template is not UTF-8 text (byte {exc.start})",
                                    "save it as UTF-8, or drop the .j2 suffix to copy it as it is"
                                    ) from None


def render(project: Path, names: tuple[str, ...], picked: Iterable[Source],
           context: Mapping[str, Any], env: jinja2.Environment, who: str) -> Part:
    """The `picked` sources rendered with `context` and layered in list order."""
    by_overlay: dict[int, list[overlay.SourceFile]] = {}
    for s in picked:
        by_overlay.setdefault(s.index, []).append(s.src)
    entries: dict[str, Entry] = {}
    origin: dict[str, int] = {}
    secrets: set[str] = set()
    for index in sorted(by_overlay):
        one = overlay.render_overlay(project, names[index], context, env, who, by_overlay[index])
        for e in one.entries:
            entries[e.path] = e
            origin[e.path] = index
            secrets.discard(e.path)
        secrets |= one.secrets
    return Part(tuple(entries[k] for k in sorted(entries)), origin, frozenset(secrets))


def own(node_part: Part, shared: Part) -> list[Entry]:
    """The node's entries minus those a later overlay's shared file replaces."""
    return [e for e in node_part.entries
            if shared.origin.get(e.path, -1) <= node_part.origin[e.path]]


def entries_digest(entries: Iterable[Entry]) -> str:
    h = hashlib.sha256()
    for e in entries:
        h.update(repr((e.path, e.mode, e.uid, e.gid, e.target, e.source, e.size)).encode())
        h.update(e.data or b"")
    return h.hexdigest()


def sources_digest(project: Path, names: tuple[str, ...], picked: Iterable[Source]) -> str:
    """A digest of the picked sources' paths, kinds, modes and bytes, and the overlays' manifests."""
    h = hashlib.sha256()
    for s in picked:
        src = s.src
        h.update(f"{s.index}\0{s.name}\0{src.rel}\0{src.kind}\0".encode())
        if src.kind == "symlink":
            h.update(str(src.path.readlink()).encode())
        elif src.kind != "dir":
            h.update(b"x" if src.path.stat().st_mode & 0o100 else b"-")
            h.update(src.path.read_bytes())
        h.update(b"\n")
    for name in names:
        manifest = overlay.find_overlay(name, project).parent / MANIFEST
        h.update(manifest.read_bytes() if manifest.exists() else b"-")
    return h.hexdigest()


def head_files(project: Path, env: jinja2.Environment, picked: Iterable[Source]) -> list[Path]:
    """Build-host files the picked templates include by a constant name (include_head)."""
    out: list[Path] = []
    for s in picked:
        if s.src.kind != "template":
            continue
        try:
            ast = env.parse(s.src.path.read_text())
        except jinja2.TemplateSyntaxError:
            continue
        for call in ast.find_all(jinja2.nodes.Call):
            if (isinstance(call.node, jinja2.nodes.Name) and call.node.name == "include_head"
                    and call.args and isinstance(call.args[0], jinja2.nodes.Const)):
                out.append(project / str(call.args[0].value))  # as include_head() joins it
    return out


def uses_image(picked: Iterable[Source]) -> bool:
    """Whether a picked template may read files of the node's image."""
    return any(s.src.kind == "template" and "include_image" in s.src.path.read_text() for s in picked)


def cluster_fields(project: Path, env: jinja2.Environment,
                   picked: Iterable[Source]) -> frozenset[str] | None:
    """The cluster fields the picked templates read (functions.cluster_fields); None: all."""
    found: set[str] = set()
    for s in picked:
        if s.src.kind != "template":
            continue
        try:
            fields = functions.cluster_fields(env, overlay.template_name(
                overlay.find_overlay(s.name, project), s.src))
        except jinja2.TemplateSyntaxError:
            return None   # rendering it reports the error with its line
        if fields is None:
            return None
        found |= fields
    return frozenset(found)
