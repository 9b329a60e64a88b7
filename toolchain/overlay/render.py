"""Overlays: directory trees of files and Jinja2 templates, rendered per node.

An overlay `NAME` is `overlays/NAME/rootfs/` in the project (a site overlay) or,
if there is none, the shipped `toolchain/overlay/shipped/NAME/rootfs/`: a site overlay
replaces the shipped one of the same name as a whole, as in Warewulf. Files
ending in `.j2` are rendered (the suffix dropped); others are copied. A node's
overlays are layered in list order, later files replacing earlier ones.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from toolchain.archive import Entry
from toolchain.errors import WWError
from toolchain.overlay import functions
from toolchain.overlay.manifest import MANIFEST, Manifest, load_manifest
from toolchain.project import PACKAGE, SHIPPED_OVERLAYS, overlay_dirs


@dataclass(frozen=True)
class SourceFile:
    rel: str      # path inside the overlay's rootfs
    path: Path    # file on disk
    kind: str     # "dir", "file", "template", "symlink"


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
    if target.startswith("/") or not root.is_relative_to(SHIPPED_OVERLAYS):
        return False
    real = (path.parent / target).resolve()
    return (real.is_file() and not real.is_relative_to(root.resolve())
            and real.is_relative_to(PACKAGE))


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
    functions.install(env, project)
    return env


def _project(env: jinja2.Environment) -> Path:
    project = getattr(env, "wwstatic_project", None)
    if not isinstance(project, Path):
        raise TypeError("make the environment with overlay.make_env()")
    return project


class TemplateError(WWError):
    """A template that failed to render: where (file and line) and for whom, for `lint --json`."""

    def __init__(self, file: str, line: int, who: str, what: str, hint: str) -> None:
        super().__init__(f"{file}:{line}: {what}" if line else f"{file}: {what}", hint=hint)
        self.file, self.line, self.who, self.what = file, line, who, what


def _where(exc: BaseException, default: Path) -> tuple[str, int]:
    """File and line of the innermost template frame of `exc` (an include's, if it failed there)."""
    where = (str(default), 0)
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename.endswith(".j2") and frame.lineno:
            where = (frame.filename, frame.lineno)
    return where


def template_name(overlay_root: Path, src: SourceFile) -> str:
    """The loader's name of an overlay template: NAME/rootfs/REL."""
    return f"{overlay_root.parent.name}/rootfs/{src.rel}"


def render_template(env: jinja2.Environment, src: SourceFile, overlay_root: Path,
                    context: Mapping[str, Any], who: str) -> functions.RenderState:
    """Render one template; on any error raise WWError naming template, line and node."""
    state = functions.RenderState(_project(env), functions.Output(src.rel[: -len(".j2")]))
    try:
        template = env.get_template(template_name(overlay_root, src))
        state.main.data = template.render({**context, functions.STATE: state})
        state.outputs()  # text outside {% file %} blocks is an error too
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(exc.filename or str(src.path), exc.lineno, who,
                            f"template syntax: {exc.message} (rendering for {who})",
                            "fix the template; nothing was written") from None
    except jinja2.UndefinedError as exc:
        raise TemplateError(*_where(exc, src.path), who, f"template error for {who}: {exc.message}",
                            "fix the template or set the value in cluster.yaml; nothing was written"
                            ) from None
    except WWError as exc:
        raise TemplateError(*_where(exc, src.path), who, f"{exc.message} (rendering for {who})",
                            (exc.hint + "; " if exc.hint else "") + "nothing was written") from None
    except Exception as exc:  # a template can raise anything (a bad method call, 1/0): all user errors
        raise TemplateError(*_where(exc, src.path), who,
                            f"template error for {who}: {type(exc).__name__}: {exc}",
                            "fix the template or the node's settings; nothing was written") from None
    return state


def render(env: jinja2.Environment, src: SourceFile, overlay_root: Path,
           context: Mapping[str, Any], who: str) -> bytes:
    """The content of a template that writes one regular file (b"" if it skips itself)."""
    outputs = render_template(env, src, overlay_root, context, who).outputs()
    if len(outputs) > 1 or (outputs and outputs[0].target is not None):
        raise WWError(f"{src.path} writes several files or a symlink",
                      hint="use overlay.render_template() for it")
    return outputs[0].data.encode() if outputs else b""


@dataclass(frozen=True)
class Layered:
    entries: list[Entry]              # sorted by path, parents before children
    secrets: frozenset[str]           # paths of files marked `secret: true`
    head_files: tuple[Path, ...]      # build-host files templates included

    @property
    def secret(self) -> bool:
        return bool(self.secrets)


@cache
def _manifest(path: Path, mtime_ns: int) -> Manifest:
    return load_manifest(path.parent)


def manifest_of(overlay_root: Path) -> Manifest:
    path = overlay_root.parent / MANIFEST
    return _manifest(path, path.stat().st_mtime_ns if path.exists() else 0)


def render_overlay(project: Path, name: str, context: Mapping[str, Any], env: jinja2.Environment,
                   who: str, sources: list[SourceFile] | None = None) -> Layered:
    """One overlay (or some of its `sources`) rendered for one node, with manifest metadata."""
    root = find_overlay(name, project)
    manifest = manifest_of(root)
    entries: dict[str, Entry] = {}
    secrets: set[str] = set()
    head_files: list[Path] = []

    def put(rel: str, kind: int, executable: bool = False, data: bytes | None = None,
            target: str = "") -> None:
        meta = manifest.meta(rel, kind, executable)
        mode = kind | (0o777 if kind == stat.S_IFLNK else meta.perm)
        entries[rel] = Entry(rel, mode, meta.uid, meta.gid, data=data, target=target)
        if meta.secret and kind == stat.S_IFREG:
            secrets.add(rel)

    for src in list_sources(root) if sources is None else sources:
        if src.kind == "dir":
            put(src.rel, stat.S_IFDIR)
        elif src.kind == "symlink":
            put(src.rel, stat.S_IFLNK, target=os.readlink(src.path))
        else:
            # git keeps only the executable bit, so that is all we take from disk.
            executable = bool(os.stat(src.path).st_mode & 0o100)
            if src.kind == "file":
                put(src.rel, stat.S_IFREG, executable, data=src.path.read_bytes())
                continue
            state = render_template(env, src, root, context, who)
            head_files += state.head_files
            for out in state.outputs():
                if out.target is not None:
                    put(out.rel, stat.S_IFLNK, target=out.target)
                else:
                    put(out.rel, stat.S_IFREG, executable, data=out.data.encode())
    # {% file %} may write into directories the overlay does not have: add them
    # (with the manifest's metadata) so that unpacking never needs a missing parent.
    for rel in list(entries):
        parent = posixpath.dirname(rel)
        while parent and parent not in entries:
            put(parent, stat.S_IFDIR)
            parent = posixpath.dirname(parent)
    return Layered([entries[k] for k in sorted(entries)], frozenset(secrets), tuple(head_files))


def layer_all(project: Path, names: tuple[str, ...], context: Mapping[str, Any],
              env: jinja2.Environment, who: str) -> Layered:
    """The overlays `names` rendered for one node and layered in order, later files winning."""
    entries: dict[str, Entry] = {}
    secrets: set[str] = set()
    head_files: list[Path] = []
    for name in names:
        one = render_overlay(project, name, context, env, who)
        for e in one.entries:
            entries[e.path] = e
            secrets.discard(e.path)
        secrets |= one.secrets
        head_files += one.head_files
    return Layered([entries[k] for k in sorted(entries)], frozenset(secrets), tuple(head_files))


def layer(project: Path, names: tuple[str, ...], context: Mapping[str, Any],
          env: jinja2.Environment, who: str) -> list[Entry]:
    """The entries of `names` layered in order, sorted by path."""
    return layer_all(project, names, context, env, who).entries


_FILE_TAG = re.compile(r"{%-?\s*file\b")


def writes_blocks(src: SourceFile) -> bool:
    """Whether a template may write `{% file %}` blocks (by its text: conservative)."""
    return bool(_FILE_TAG.search(src.path.read_text(errors="replace")))


def preview(project: Path, names: tuple[str, ...], path: str, context: Mapping[str, Any],
            env: jinja2.Environment, who: str) -> tuple[Entry, bool] | None:
    """The entry at `path` of the layered overlays `names` and whether it is secret,
    rendering only the templates that may write it."""
    rel = path.strip("/")
    for name in reversed(names):  # the last overlay writing a path wins
        root = find_overlay(name, project)
        candidates = [s for s in list_sources(root)
                      if s.rel == rel or (s.kind == "template" and (
                          s.rel[: -len(".j2")] == rel or writes_blocks(s)))]
        if candidates:
            one = render_overlay(project, name, context, env, who, candidates)
            for e in one.entries:
                if e.path == rel:
                    return e, rel in one.secrets
    return None
