"""Read YAML into a tree that remembers where every value came from.

PyYAML's own constructors lose positions, accept duplicate keys (last wins) and
apply YAML 1.1 typing silently (`52:54:00:12:34:56` is a base-60 integer, `no`
is False). We stop at the composed node graph instead and keep every scalar's
raw text and resolved tag, so the schema can say "line 12: this MAC is read as
a number, quote it" instead of building a wrong cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from toolchain.errors import Loc, WWError

_TAG = "tag:yaml.org,2002:"
# What a human calls each implicit YAML type, for error messages.
TYPE_NAMES = {
    "str": "a string",
    "int": "a number",
    "float": "a number",
    "bool": "a boolean",
    "null": "empty (null)",
    "timestamp": "a date",
    "map": "a mapping",
    "seq": "a list",
}


@dataclass(frozen=True)
class YScalar:
    text: str
    kind: str  # "str", "int", "float", "bool", "null", "timestamp"
    quoted: bool
    loc: Loc


@dataclass(frozen=True)
class YMap:
    items: tuple[tuple[YScalar, YNode], ...]
    loc: Loc

    def keys(self) -> list[str]:
        return [k.text for k, _ in self.items]


@dataclass(frozen=True)
class YSeq:
    items: tuple[YNode, ...]
    loc: Loc


YNode = YScalar | YMap | YSeq


def kind_of(node: YNode) -> str:
    if isinstance(node, YMap):
        return "map"
    if isinstance(node, YSeq):
        return "seq"
    return node.kind


def _loc(file: str, node: yaml.Node) -> Loc:
    mark = node.start_mark
    return Loc(file, mark.line + 1, mark.column + 1)


# Aliases let a few lines stand for a huge tree ("a billion laughs": ten lists of
# ten aliases of the list before, nine deep, are 10**9 values). Beyond this many
# values more than the document writes itself, it is refused, not expanded.
MAX_ALIAS_VALUES = 1_000_000


def _expanded(node: yaml.Node, sizes: dict[int, int], active: set[int]) -> int:
    """How many values `node` stands for with every alias expanded (each node counted once)."""
    if id(node) in sizes:
        return sizes[id(node)]
    if id(node) in active or isinstance(node, yaml.ScalarNode):
        return 1   # a recursive alias: _convert reports it
    active.add(id(node))
    children = node.value if isinstance(node, yaml.SequenceNode) else [n for kv in node.value for n in kv]
    total = 1 + sum(_expanded(n, sizes, active) for n in children)
    active.discard(id(node))
    sizes[id(node)] = total
    return total


def _check_aliases(file: str, root: yaml.Node) -> None:
    sizes: dict[int, int] = {}
    total = _expanded(root, sizes, set())
    if total > len(sizes) + MAX_ALIAS_VALUES:
        raise WWError(f"YAML aliases expand to {total} values", loc=_loc(file, root),
                      hint="anchors and aliases that repeat each other expand exponentially; "
                           "write the values out or use profiles")


def _convert(file: str, node: yaml.Node, active: set[int]) -> YNode:
    if isinstance(node, yaml.ScalarNode):
        tag = node.tag.removeprefix(_TAG)
        return YScalar(node.value, tag, node.style in ("'", '"', "|", ">"), _loc(file, node))
    if id(node) in active:
        raise WWError("a YAML alias refers to itself", loc=_loc(file, node),
                      hint="remove the recursive anchor/alias")
    active = active | {id(node)}
    if isinstance(node, yaml.SequenceNode):
        return YSeq(tuple(_convert(file, n, active) for n in node.value), _loc(file, node))
    assert isinstance(node, yaml.MappingNode)
    items: dict[str, tuple[YScalar, YNode]] = {}
    merged: dict[str, tuple[YScalar, YNode]] = {}
    for key_node, value_node in node.value:
        if key_node.tag == _TAG + "merge":
            # `<<: *anchor` copies keys the mapping does not set itself.
            value = _convert(file, value_node, active)
            sources = value.items if isinstance(value, YSeq) else (value,)
            for src in sources:
                if not isinstance(src, YMap):
                    # At the `<<` itself: an alias's target may be far away.
                    raise WWError("`<<` must merge a mapping", loc=_loc(file, key_node),
                                  hint="write `<<: *anchor` where the anchor names a mapping")
                for k, v in src.items:
                    merged.setdefault(k.text, (k, v))
            continue
        key = _convert(file, key_node, active)
        if not isinstance(key, YScalar):
            raise WWError("a mapping key must be a plain name", loc=key.loc,
                          hint="keys are names such as `image` or `n[01-04]`")
        if key.text in items:
            first = items[key.text][0].loc
            raise WWError(
                f"duplicate key {key.text!r} (first at line {first.line})",
                loc=key.loc,
                hint="YAML would silently keep only the last one; remove or rename one of them",
            )
        items[key.text] = (key, _convert(file, value_node, active))
    for name, pair in merged.items():
        items.setdefault(name, pair)
    return YMap(tuple(items.values()), _loc(file, node))


# libyaml's parser is ten times faster on a 10,000-node file and gives the same
# nodes and marks; errors are parsed again in Python for the messages the tests
# and users know (libyaml words some of them differently).
_FAST_LOADER = getattr(yaml, "CSafeLoader", None)


def load_text(text: str, file: str) -> YNode:
    """Parse YAML text; `file` names it in messages."""
    root = None
    parsed = False
    if _FAST_LOADER is not None:
        try:
            root = yaml.compose(text, Loader=_FAST_LOADER)
            parsed = True
        except yaml.YAMLError:
            pass
    try:
        if not parsed:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        hint = "check indentation, colons and quotes around this place"
        if exc.context_mark and "quoted scalar" in (exc.context or ""):
            # The parser gives up where the file ends or the next key begins;
            # the mistake is the quote that was opened and never closed.
            mark, at = exc.context_mark, exc.problem_mark
            problem = "a quoted string starts here and is not closed"
            hint = (f"close the quote (the parser read on to line {at.line + 1})" if at else
                    "close the quote")
        loc = Loc(file, mark.line + 1, mark.column + 1) if mark else None
        raise WWError(f"YAML syntax: {problem}", loc=loc, hint=hint) from None
    except yaml.reader.ReaderError as exc:
        # Not a MarkedYAMLError: it knows only the character offset, so count lines ourselves.
        before = text[:exc.position]
        loc = Loc(file, before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1)
        raise WWError(f"YAML syntax: control character U+{exc.character:04X} is not allowed", loc=loc,
                      hint="remove it or write it as an escape inside double quotes") from None
    except yaml.YAMLError as exc:
        raise WWError(f"YAML syntax: {exc}", loc=Loc(file, 1, 1)) from None
    except RecursionError:
        # PyYAML's composer recurses once per level of nesting.
        raise WWError("YAML nested too deeply", loc=Loc(file, 1, 1),
                      hint="a cluster definition needs a few levels of nesting, not hundreds") from None
    if root is None:
        return YMap((), Loc(file, 1, 1))
    try:
        _check_aliases(file, root)
        top = _convert(file, root, set())
    except RecursionError:
        raise WWError("YAML nested too deeply", loc=_loc(file, root),
                      hint="a cluster definition needs a few levels of nesting, not hundreds") from None
    # A document of just `~` (or a lone tag) is as empty as no document at all.
    if isinstance(top, YScalar) and top.kind == "null":
        return YMap((), top.loc)
    return top


def load_file(path: Path) -> YNode:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WWError(f"{path} does not exist",
                      hint="run wwstatic from the directory that holds cluster.yaml") from None
    except UnicodeDecodeError as exc:
        raise WWError(f"{path} is not UTF-8 text ({exc.reason})") from None
    return load_text(text, str(path))
