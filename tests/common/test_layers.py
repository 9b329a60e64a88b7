"""The package's imports point one way: common <- model <- image <- overlay <- build <- ops/cli.

Read from the source with ast, so an import inside a function or under
TYPE_CHECKING counts as much as one at the top: a cycle hidden that way is
still a cycle for the reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from toolchain.project import PACKAGE

# Layer of each subpackage; the top-level modules are "common", except the CLI.
LAYERS = {"common": 0, "model": 1, "image": 2, "overlay": 3, "build": 4, "ops": 5, "cli": 6}


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py") if "shipped" not in p.parts}


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or (len(parts) == 2 and parts[1] not in LAYERS and parts[1] != "node"):
        return "cli" if parts[-1] == "cli" else "common"
    return parts[1]


def imports(path: Path, module: str, known: set[str]) -> set[str]:
    """The toolchain modules `path` imports, anywhere in it."""
    is_pkg = path.name == "__init__.py"
    pkg = module if is_pkg else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "toolchain")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target.split(".")[0] != "toolchain":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
    return {f for f in found if f != module}


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: {i for i in imports(p, m, known) if i in known} for m, p in mods.items()}


def test_every_import_points_down() -> None:
    wrong = []
    for mod, deps in graph().items():
        for dep in deps:
            if dep == "toolchain":
                continue
            a, b = layer(mod), layer(dep)
            if a == "node" or b == "node":
                wrong.append(f"{mod} -> {dep} (node code and wwstatic import nothing of each other)")
            elif LAYERS[b] > LAYERS[a]:
                wrong.append(f"{mod} ({a}) -> {dep} ({b})")
    assert not wrong, "imports against the layering:\n" + "\n".join(sorted(wrong))


def test_no_import_cycle() -> None:
    g = graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in sorted(g[m]):
            if state.get(d) == 1:
                cycles.append([*stack[stack.index(d):], d])
            elif d not in state:
                visit(d, [*stack, d])
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_module_shadows_the_standard_library() -> None:
    import sys

    # `python3 DIR/x.py` puts DIR first on sys.path, so a module there named like a
    # standard one replaces it: the old toolchain/inspect.py broke wwclient.py that
    # way. Scripts are run from node/ (on the nodes) and the top level (the CLI).
    folders = {"toolchain", "toolchain.node"}
    clash = sorted(m for m in modules() if m.rpartition(".")[0] in folders
                   and m.rpartition(".")[2] in sys.stdlib_module_names)
    assert not clash, clash


# Modules still waiting for their split (issue 15); the list only shrinks.
OVERSIZE: set[str] = set()


@pytest.mark.parametrize("path", sorted(modules().values()), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_are_short(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    limit = 1000 if path.name == "wwclient.py" else 500  # wwclient stays one stdlib-only file
    if str(path.relative_to(PACKAGE)) in OVERSIZE:
        assert lines > limit, "no longer over the limit: take it off OVERSIZE"
        return
    assert lines <= limit, f"{path.relative_to(PACKAGE)} has {lines} lines; split it by concern"


def test_the_checker_sees_a_wrong_way_import(tmp_path: Path) -> None:
    # The layering rule itself can fail: a model module importing the build is caught.
    path = tmp_path / "x.py"
    path.write_text("from toolchain.build.plan import Plan\n")
    deps = imports(path, "toolchain.model.x", set(modules()))
    assert "toolchain.build.plan" in deps
    assert LAYERS[layer("toolchain.build.plan")] > LAYERS[layer("toolchain.model.x")]


def test_test_modules_import_only_support_and_lab() -> None:
    """Helpers live in tests/support and tests/lab; no test module imports another."""
    tests = Path(__file__).resolve().parent.parent
    wrong = []
    for path in sorted(tests.rglob("test_*.py")):
        if "data" in path.relative_to(tests).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                allowed = name.split(".")[:2] in (["tests", "support"], ["tests", "lab"])
                if name.startswith("tests") and not allowed:
                    wrong.append(f"{path.relative_to(tests)} imports {name}")
    assert not wrong, wrong
