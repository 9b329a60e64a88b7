"""Every value a shipped template writes goes through an emitter (toolchain/emit.py).

The templates are parsed with Jinja's own parser, and every `{{ ... }}` must
end in an emitter filter, be a constant, or be one of the few calls below.
"""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest
from jinja2 import nodes

from toolchain import emit
from toolchain.overlay import render
from toolchain.project import BUILD_TEMPLATES, SHIPPED_OVERLAYS

# Calls whose result is written as it is, and why that is safe:
# skip()/symlink() write nothing (they mark the output); ssh_host_key/pubkey are
# ssh-keygen's own files, copied byte for byte.
WHOLE_FILE_CALLS = {"skip", "symlink", "ssh_host_key", "ssh_host_pubkey"}


def templates() -> list[Path]:
    return sorted([*BUILD_TEMPLATES.rglob("*.j2"), *SHIPPED_OVERLAYS.glob("*/rootfs/**/*.j2")])


def unplaced(expr: nodes.Expr) -> list[nodes.Expr]:
    """The parts of an output expression that reach the file without an emitter."""
    if isinstance(expr, nodes.Const):
        return []
    if isinstance(expr, nodes.Filter) and expr.name in emit.FILTERS:
        return []
    if isinstance(expr, nodes.CondExpr):
        return unplaced(expr.expr1) + (unplaced(expr.expr2) if expr.expr2 else [])
    if isinstance(expr, nodes.Call) and isinstance(expr.node, nodes.Name) \
            and expr.node.name in WHOLE_FILE_CALLS:
        return []
    return [expr]


def violations(env: jinja2.Environment, source: str) -> list[str]:
    ast = env.parse(source)
    return [f"line {bad.lineno}: {{{{ ... }}}} without an emitter"
            for out in ast.find_all(nodes.Output) for expr in out.nodes
            if not isinstance(expr, nodes.TemplateData) for bad in unplaced(expr)]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> jinja2.Environment:
    return render.make_env(tmp_path_factory.mktemp("scan"))


@pytest.mark.parametrize("path", templates(), ids=lambda p: str(p.relative_to(p.parents[3])))
def test_every_value_through_an_emitter(env: jinja2.Environment, path: Path) -> None:
    assert violations(env, path.read_text()) == []


def test_scan_finds_bare_values(env: jinja2.Environment) -> None:
    """The scan itself can fail: a bare value, a value joined after its emitter, a
    filter that is not an emitter, and a condition with a bare branch are all caught."""
    for bad in ("{{ node.name }}", "{{ a | sh ~ b }}", "x={{ a | upper }}",
                "{{ a | sh if c else b }}", "{{ fail('x') }}"):
        assert violations(env, bad), bad
    for good in ("{{ a | sh }}", "{{ 'x' if c else 'y' }}", "{{ skip() }}", "{{ (a ~ b) | nginx }}"):
        assert not violations(env, good), good
