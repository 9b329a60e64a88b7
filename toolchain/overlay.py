"""Overlays: directory trees of files and Jinja2 templates, rendered per node.

An overlay `NAME` is `overlays/NAME/rootfs/` in the project (a site overlay) or,
if there is none, the shipped `toolchain/overlays/NAME/rootfs/`: a site overlay
replaces the shipped one of the same name as a whole, as in Warewulf. Files
ending in `.j2` are rendered (the suffix dropped); others are copied. A node's
overlays are layered in list order, later files replacing earlier ones.
"""

from __future__ import annotations

import os
import shlex
import stat
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

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


def layer(project: Path, names: tuple[str, ...], context: Mapping[str, Any],
          env: jinja2.Environment, who: str) -> list[Entry]:
    """The entries of `names` layered in order, sorted by path."""
    entries: dict[str, Entry] = {}
    for name in names:
        root = find_overlay(name, project)
        for src in list_sources(root):
            if src.kind == "dir":
                entries[src.rel] = Entry(src.rel, stat.S_IFDIR | 0o755)
            elif src.kind == "symlink":
                entries[src.rel] = Entry(src.rel, stat.S_IFLNK | 0o777, target=os.readlink(src.path))
            else:
                # git keeps only the executable bit, so that is all we take from disk.
                perm = 0o755 if os.stat(src.path).st_mode & 0o100 else 0o644
                if src.kind == "template":
                    rel = src.rel[: -len(".j2")]
                    data = render(env, src, root, context, who)
                else:
                    rel = src.rel
                    data = src.path.read_bytes()
                entries[rel] = Entry(rel, stat.S_IFREG | perm, data=data)
    return [entries[k] for k in sorted(entries)]


def source_files(project: Path, names: tuple[str, ...]) -> list[Path]:
    """The files whose change must rebuild an overlay of these names."""
    return [s.path for n in names for s in list_sources(find_overlay(n, project))
            if s.kind in ("file", "template")]
