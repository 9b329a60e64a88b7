"""Digests that name blobs and decide what is up to date."""

from __future__ import annotations

import hashlib
import re
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def digest(*parts: str) -> str:
    """sha256 of the parts, each ended by NUL so ("ab", "c") differs from ("a", "bc")."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()


def _files(package: Path, root: str) -> list[Path]:
    """Every file of a subpackage (code and data: templates, shipped overlays), or one module."""
    path = package / root
    if path.is_dir():
        return [p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    return [path] if path.is_file() else []


def _module_file(package: Path, module: str) -> Path | None:
    """The file of module `toolchain.a.b` (a module, or a package's __init__)."""
    parts = module.split(".")[1:]
    base = package.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if parts and candidate.is_file():
            return candidate
    return None


# Import statements, anywhere in a module (in functions and under TYPE_CHECKING too).
# A regex, not ast: parsing the package would cost a third of a no-change build;
# a match in a string or comment only adds a file to the digest.
_IMPORT = re.compile(r"^[ \t]*(?:from[ \t]+(\.*[\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n]*)"
                     r"|import[ \t]+([^\n]*))", re.M)


@cache
def _imports(package: Path, path: Path) -> frozenset[Path]:
    """The toolchain modules `path` imports."""
    pkg = ["toolchain", *path.relative_to(package).parent.parts]
    found: set[Path] = set()
    for base, names, plain in _IMPORT.findall(path.read_text()):
        if plain:
            modules = [n.split()[0] for n in plain.split("#")[0].split(",") if n.strip()]
        else:
            level = len(base) - len(base.lstrip("."))
            if level:
                base = ".".join([*pkg[: len(pkg) - level + 1], *filter(None, [base.lstrip(".")])])
            listed = [n.split()[0] for n in names.split("#")[0].strip("()").replace("\n", ",").split(",")
                      if n.strip() and not n.strip().startswith("#")]
            # `from toolchain.build import layout` imports a module; `from x import name`, x.
            modules = [base, *(f"{base}.{n}" for n in listed)]
        for name in modules:
            if name.split(".")[0] == "toolchain" and (file := _module_file(package, name)):
                found.add(file)
    return frozenset(found)


@cache
def code_digest(*roots: str, package: Path = PACKAGE) -> str:
    """A digest of the code that makes a kind of output: every file of the `roots`
    (subpackages or modules, relative to the package) and every toolchain module they
    import, followed to the end.

    Part of every blob name, so a wwstatic upgrade that changes how bytes are made
    also changes the names, and a served name never changes its bytes. Derived from
    the files and their imports, so a new module is covered without a list to update;
    paths are relative, so the checkout's location does not matter.
    """
    todo = [f for r in roots for f in _files(package, r)]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        if path.suffix == ".py":
            todo.extend(_imports(package, path) - seen)
    h = hashlib.sha256()
    for path in sorted(seen):
        h.update(path.relative_to(package).as_posix().encode() + b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()


# What makes each kind of blob: the subpackage that builds it (with what it imports).
def archive_code(package: Path = PACKAGE) -> str:
    return code_digest("archive.py", package=package)


def image_code(package: Path = PACKAGE) -> str:
    return code_digest("image", package=package)


def overlay_code(package: Path = PACKAGE) -> str:
    return code_digest("overlay", package=package)


def model_code(package: Path = PACKAGE) -> str:
    """The loader's code: what the resolved cluster is made by."""
    return code_digest("model", package=package)
