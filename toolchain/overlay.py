"""Overlays: directory trees of files and Jinja2 templates, rendered per node.

An overlay `NAME` is `overlays/NAME/rootfs/` in the project (a site overlay) or,
if there is none, the shipped `toolchain/overlays/NAME/rootfs/`: a site overlay
replaces the shipped one of the same name as a whole, as in Warewulf. Files
ending in `.j2` are rendered (the suffix dropped); others are copied. A node's
overlays are layered in list order, later files replacing earlier ones.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import stat
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import jinja2.nodes

from .archive import Entry
from .errors import WWError

SHIPPED = Path(__file__).parent / "overlays"


@dataclass(frozen=True)
class SourceFile:
    rel: str      # path inside the overlay's rootfs
    path: Path    # file on disk
    kind: str     # "dir", "file", "template", "symlink"


def overlay_dirs(project: Path) -> list[Path]:
    return [project / "overlays", SHIPPED]


def find_overlay(name: str, project: Path) -> Path:
    for base in overlay_dirs(project):
        candidate = base / name / "rootfs"
        if candidate.is_dir():
            return candidate
    known = sorted({p.parent.name for base in overlay_dirs(project) for p in base.glob("*/rootfs")})
    raise WWError(f"overlay `{name}` does not exist",
                  hint=f"create overlays/{name}/rootfs/ or use one of: {', '.join(known)}")


def _package_link(path: Path, root: Path) -> bool:
    """A shipped overlay's relative link to a file of the package outside its rootfs.

    Such a link stands for the file itself, read at build time: it keeps one
    copy of files the package also uses (wwclient.py). Any other link is put in
    the archive as a link.
    """
    target = os.readlink(path)
    if target.startswith("/") or not root.is_relative_to(SHIPPED):
        return False
    real = (path.parent / target).resolve()
    return (real.is_file() and not real.is_relative_to(root.resolve())
            and real.is_relative_to(SHIPPED.parent.resolve()))


def list_sources(root: Path) -> list[SourceFile]:
    out: list[SourceFile] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(dirpath)
        for name in sorted(dirnames + filenames):
            path = base / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink() and _package_link(path, root):
                out.append(SourceFile(rel, path, "file"))
            elif path.is_symlink():
                out.append(SourceFile(rel, path, "symlink"))
            elif path.is_dir():
                out.append(SourceFile(rel, path, "dir"))
            elif name.endswith(".j2"):
                out.append(SourceFile(rel, path, "template"))
            else:
                out.append(SourceFile(rel, path, "file"))
    return out


def make_env(project: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(d) for d in overlay_dirs(project)]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["shquote"] = lambda v: shlex.quote(str(v))
    return env


def _template_line(exc: BaseException, filename: str) -> int:
    line = 0
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == filename and frame.lineno:
            line = frame.lineno
    return line


def render(env: jinja2.Environment, src: SourceFile, overlay_root: Path,
           context: Mapping[str, Any], who: str) -> bytes:
    """Render one template; on error raise WWError naming template, line and node."""
    name = f"{overlay_root.parent.name}/rootfs/{src.rel}"
    try:
        template = env.get_template(name)
        return template.render(context).encode()
    except jinja2.TemplateSyntaxError as exc:
        raise WWError(f"template syntax: {exc.message} (rendering for {who})",
                      hint="fix the template; nothing was written") from None
    except jinja2.TemplateError as exc:
        line = _template_line(exc, str(src.path))
        where = f"{src.path}:{line}" if line else str(src.path)
        raise WWError(f"{where}: template error for {who}: {exc}",
                      hint="fix the template or the node's settings; nothing was written") from None


@dataclass(frozen=True)
class Planned:
    """One file of a layered overlay list: the source that wins for path `rel`."""
    rel: str              # path in the archive (template suffix dropped)
    src: SourceFile
    root: Path            # the overlay's rootfs directory
    per_node: bool        # its bytes may differ from node to node
    reads_nodes: bool     # it reads the list of all nodes


# Context variables that differ between nodes. A template that reads none of
# them renders the same for every node, so it is rendered once and shared.
PER_NODE_VARIABLES = frozenset({"node", "image"})


def _template_deps(env: jinja2.Environment, src: SourceFile, root: Path) -> tuple[bool, bool]:
    """(per_node, reads_nodes) of a template, judged from its source."""
    name = f"{root.parent.name}/rootfs/{src.rel}"
    try:
        ast = env.parse(src.path.read_text(), name, str(src.path))
    except jinja2.TemplateSyntaxError:
        return True, True   # rendering reports the error with its line
    names = jinja2.meta.find_undeclared_variables(ast)
    # An include or import may read anything: count it as per node.
    includes = any(True for _ in ast.find_all((jinja2.nodes.Include, jinja2.nodes.Import,
                                                jinja2.nodes.FromImport, jinja2.nodes.Extends)))
    return includes or bool(names & PER_NODE_VARIABLES), includes or "nodes" in names


def plan(project: Path, names: tuple[str, ...], env: jinja2.Environment) -> tuple[Planned, ...]:
    """The files of overlays `names` layered in order (later win), sorted by path."""
    chosen: dict[str, Planned] = {}
    for name in names:
        root = find_overlay(name, project)
        for src in list_sources(root):
            if src.kind == "template":
                per_node, reads_nodes = _template_deps(env, src, root)
                chosen[src.rel[: -len(".j2")]] = Planned(src.rel[: -len(".j2")], src, root,
                                                         per_node, reads_nodes)
            else:
                chosen[src.rel] = Planned(src.rel, src, root, False, False)
    return tuple(chosen[k] for k in sorted(chosen))


def entries(planned: Iterable[Planned], context: Mapping[str, Any], env: jinja2.Environment,
            who: str) -> list[Entry]:
    """Archive entries of planned files, rendering templates with `context`."""
    out: list[Entry] = []
    for p in planned:
        src = p.src
        if src.kind == "dir":
            out.append(Entry(p.rel, stat.S_IFDIR | 0o755))
        elif src.kind == "symlink":
            out.append(Entry(p.rel, stat.S_IFLNK | 0o777, target=os.readlink(src.path)))
        else:
            # git keeps only the executable bit, so that is all we take from disk.
            perm = 0o755 if os.stat(src.path).st_mode & 0o100 else 0o644
            data = (render(env, src, p.root, context, who) if src.kind == "template"
                    else src.path.read_bytes())
            out.append(Entry(p.rel, stat.S_IFREG | perm, data=data))
    return out


def with_parents(planned: tuple[Planned, ...], subset: Iterable[Planned]) -> list[Planned]:
    """`subset` plus the directories above its files, so an archive of it unpacks alone."""
    dirs = {p.rel: p for p in planned if p.src.kind == "dir"}
    picked = {p.rel: p for p in subset}
    for rel in list(picked):
        parent = rel.rpartition("/")[0]
        while parent and parent not in picked:
            if parent in dirs:
                picked[parent] = dirs[parent]
            parent = parent.rpartition("/")[0]
    return [picked[k] for k in sorted(picked)]


def layer(project: Path, names: tuple[str, ...], context: Mapping[str, Any],
          env: jinja2.Environment, who: str) -> list[Entry]:
    """The entries of `names` layered in order, sorted by path."""
    return entries(plan(project, names, env), context, env, who)


def content_digest(planned: Iterable[Planned]) -> str:
    """A digest of the planned sources' paths, kinds, modes and bytes."""
    h = hashlib.sha256()
    for p in planned:
        src = p.src
        h.update(f"{p.rel}\0{src.rel}\0{src.kind}\0{p.root.parent.name}\0".encode())
        if src.kind == "symlink":
            h.update(os.readlink(src.path).encode())
        elif src.kind != "dir":
            h.update(b"x" if os.stat(src.path).st_mode & 0o100 else b"-")
            h.update(src.path.read_bytes())
        h.update(b"\n")
    return h.hexdigest()


def source_files(project: Path, names: tuple[str, ...]) -> list[Path]:
    """The files whose change must rebuild an overlay of these names."""
    return [s.path for n in names for s in list_sources(find_overlay(n, project))
            if s.kind in ("file", "template")]
