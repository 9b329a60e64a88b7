"""Read YAML against the field table (spec.py) into located trees, and merge them.

A tree maps each key to a `Val` (a leaf: the value, where it was written and
which profile or node wrote it) or, for structs and named entries, to a nested
dict. Reading collects every error instead of stopping at the first, so one run
reports all the mistakes of a file.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from toolchain.errors import Loc, WWError
from toolchain.model import values as schema
from toolchain.model.grammar import Grammar
from toolchain.model.spec import Field, Kind, by_key, field_in
from toolchain.model.yamlsrc import YMap, YNode, YScalar, YSeq

Tree = dict[str, Any]


@dataclass(frozen=True)
class Val:
    value: Any
    loc: Loc
    source: str  # "node" or "profile NAME"
    # Where each item of a list is (provenance, not part of the value).
    item_locs: tuple[Loc, ...] = field(default=(), compare=False)


class Reader:
    """Reads trees; errors go to `self.errors` and the offending value is skipped."""

    def __init__(self) -> None:
        self.errors: list[WWError] = []
        # Per-node lists whose length is not the hostlist's: the loader then
        # skips the key instead of expanding it into nodes that cannot be built.
        self.miscounted = 0

    def error(self, message: str, loc: Loc, hint: str) -> None:
        self.errors.append(WWError(message, loc=loc, hint=hint))

    def guard(self, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(*args), or None with the error recorded."""
        try:
            return fn(*args)
        except WWError as err:
            self.errors.append(err)
            return None

    def struct(self, fields: tuple[Field, ...], node: YNode, what: str, source: str,
               is_node: bool = True, count: int = 1) -> Tree:
        ymap = self.guard(schema.as_map, node, what)
        if ymap is None:
            return {}
        allowed = {f.key: f.help for f in fields if is_node or not f.node_only}
        index = by_key(fields)
        tree: Tree = {}
        for key, value in ymap.items:
            if key.text not in allowed:
                self.guard(schema.check_keys, YMap(((key, value),), key.loc), allowed, what)
                continue
            got = self.value(index[key.text], value, f"{what}: {key.text}", source, is_node, count)
            if got is not None:
                tree[key.text] = got
        return tree

    def value(self, f: Field, node: YNode, what: str, source: str, is_node: bool,
              count: int) -> Any:
        if f.kind is Kind.STRUCT:
            return self.struct(f.fields, node, what, source, is_node, count)
        if f.kind is Kind.DICT:
            return self.entries(f, node, what, source, is_node, count)
        if f.kind is Kind.ITEMS:
            return self.items(f, node, what, source)
        if f.kind is Kind.TAGS:
            return self.tags(node, what, source)
        if f.per_node and isinstance(node, YScalar) and node.kind == "null":
            return Val("", node.loc, source)   # not known yet, for every node of the key
        if f.per_node and isinstance(node, YSeq):
            # `null` holds the place of a value not known yet (a discoverable
            # node's MAC); the model decides whether that node may lack it.
            values = ["" if isinstance(n, YScalar) and n.kind == "null" else self.guard(leaf, f, n, what)
                      for n in node.items]
            if any(v is None for v in values):
                return None
            if len(values) != count:
                self.miscounted += 1
                self.errors.append(WWError(
                    f"{what}: {len(values)} values for {count} node(s)", loc=node.loc,
                    hint="give exactly one per node of the hostlist, in its order"))
                return None
            return Val(values, node.loc, source, tuple(n.loc for n in node.items))
        value = self.guard(leaf, f, node, what)
        if value is None:
            return None
        if f.kind is Kind.LIST and isinstance(node, YSeq):
            return Val(value, node.loc, source, tuple(n.loc for n in node.items))
        if f.per_node and count > 1:
            self.miscounted += 1
            self.errors.append(WWError(
                f"{what}: one value for {count} nodes; each node needs its own", loc=node.loc,
                hint="write a list with one value per node of the hostlist"))
            return None
        return Val(value, node.loc, source)

    def entries(self, f: Field, node: YNode, what: str, source: str, is_node: bool,
                count: int) -> Tree | None:
        ymap = self.guard(schema.as_map, node, what)
        if ymap is None:
            return None
        out: Tree = {}
        for key, value in ymap.items:
            if not key.text:
                self.errors.append(WWError(f"{what}: empty {f.entry}", loc=key.loc,
                                           hint=f"give each entry a {f.entry}"))
                continue
            out[key.text] = self.struct(f.fields, value, f"{what} {key.text}", source,
                                        is_node, count)
        return out

    def items(self, f: Field, node: YNode, what: str, source: str) -> Val | None:
        if isinstance(node, YScalar) and node.kind == "null":
            return Val([], node.loc, source)
        if not isinstance(node, YSeq):
            self.errors.append(WWError(f"{what} must be a list", loc=node.loc,
                                       hint="write `- key: value` items indented below it"))
            return None
        return Val([self.struct(f.fields, item, f"{what} item {i + 1}", source)
                    for i, item in enumerate(node.items)], node.loc, source)

    def tags(self, node: YNode, what: str, source: str) -> Tree | None:
        ymap = self.guard(schema.as_map, node, what)
        if ymap is None:
            return None
        out: Tree = {}
        for key, value in ymap.items:
            # Tag values are text for templates: keep what was written (`no`
            # stays "no", 0755 stays "0755") instead of YAML 1.1's reading of it.
            if isinstance(value, YScalar):
                if self.guard(schema.check_text, key.text, key, f"{what}: tag name", Grammar.TAG) is None \
                        or self.guard(schema.check_text, value.text, value, f"{what}: tag `{key.text}`",
                                      Grammar.TEXT) is None:
                    continue
                out[key.text] = Val(value.text, value.loc, source)
            else:
                self.errors.append(WWError(f"{what}: tag `{key.text}` must be a single value",
                                           loc=value.loc, hint="write `name: value`"))
        return out


def leaf(f: Field, node: YNode, what: str) -> Any:
    """One scalar (or list of strings) of kind `f.kind`, or WWError."""
    k = f.kind
    if k in (Kind.STR, Kind.NAME, Kind.PATH):
        return schema.as_text(node, what, f.text_grammar())
    if k is Kind.INT:
        return schema.as_int(node, what, 0, f.maximum)
    if k is Kind.BOOL:
        return schema.as_bool(node, what)
    if k is Kind.IPV4:
        return schema.as_ipv4(node, what)
    if k is Kind.NETMASK:
        return schema.as_netmask(node, what)
    if k is Kind.MAC:
        return schema.as_mac(node, what)
    if k is Kind.CHOICE:
        return schema.as_choice(node, what, f.choices)
    if k is Kind.LIST:
        items = schema.as_list(node, what)
        nodes = node.items if isinstance(node, YSeq) else [node]
        for item, at in zip(items, nodes, strict=False):
            if f.choices and item.lstrip("~") not in f.choices:
                raise WWError(f"{what}: `{item}` is not one of {', '.join(f.choices)}", loc=at.loc,
                              hint=f"choose from: {', '.join(f.choices)}")
            if not f.choices:
                schema.check_text(item.removeprefix("~"), at, f"each item of {what}", f.text_grammar())
        return items
    if k is Kind.FREE:
        return schema.as_free(node)
    raise AssertionError(k)


# --- merging ------------------------------------------------------------------

def apply_list(acc: list[str], items: list[str]) -> list[str]:
    """Append `items`; an item `~x` removes every `x` added so far instead."""
    out = list(acc)
    for item in items:
        if item.startswith("~"):
            out = [x for x in out if x != item[1:]]
        else:
            out.append(item)
    return out


def check_removals(acc: list[str], val: Val, what: str) -> None:
    """Raise WWError at a `~x` of `val` that removes nothing: most likely a typo."""
    held = list(acc)
    for i, item in enumerate(val.value):
        if not item.startswith("~"):
            held.append(item)
        elif item[1:] in held:
            held = [x for x in held if x != item[1:]]
        else:
            loc = val.item_locs[i] if i < len(val.item_locs) else val.loc
            raise WWError(f"{what}: `{item}` removes `{item[1:]}`, which nothing set before "
                          f"({val.source})", loc=loc,
                          hint="the list holds: " + (", ".join(held) or "nothing")
                          + "; remove the `~` item or fix its spelling")


def deep_merge(acc: Any, new: Any) -> Any:
    """Maps merge key by key, recursively; anything else is replaced."""
    if isinstance(acc, dict) and isinstance(new, dict):
        out = dict(acc)
        for k, v in new.items():
            out[k] = deep_merge(out[k], v) if k in out else v
        return out
    return new


def merge(fields: tuple[Field, ...], acc: Tree, layer: Tree, what: str = "") -> Tree:
    """`layer` over `acc`, each field by its kind (pure: neither input changes).

    A `~x` list item that removes nothing raises WWError (see check_removals).
    """
    index = by_key(fields)
    out = dict(acc)
    for key, val in layer.items():
        f = index[key]
        if f.kind is Kind.LIST:
            prev = acc[key].value if key in acc else []
            if key != "profiles":   # profiles' `~name` is checked where they are chosen
                check_removals(prev, val, f"{what}{key}".strip())
            out[key] = Val(apply_list(prev, val.value), val.loc, val.source)
        elif f.kind is Kind.TAGS:
            out[key] = {**acc.get(key, {}), **val}
        elif f.kind is Kind.FREE:
            value = deep_merge(acc[key].value, val.value) if key in acc else val.value
            out[key] = Val(value, val.loc, val.source)
        elif f.kind is Kind.STRUCT:
            out[key] = merge(f.fields, acc.get(key, {}), val, f"{what}{key}.")
        elif f.kind is Kind.DICT:
            entries = dict(acc.get(key, {}))
            for name, sub in val.items():
                entries[name] = merge(f.fields, entries.get(name, {}), sub, f"{what}{key}.{name}.")
            out[key] = entries
        else:
            out[key] = val
    return out


def instantiate(fields: tuple[Field, ...], tree: Tree, index: int) -> Tree:
    """The tree of the index-th node of a hostlist key: its own MAC, its IP counted up."""
    by = by_key(fields)
    out: Tree = {}
    for key, val in tree.items():
        f = by[key]
        if f.kind is Kind.STRUCT:
            out[key] = instantiate(f.fields, val, index)
        elif f.kind is Kind.DICT:
            out[key] = {name: instantiate(f.fields, sub, index) for name, sub in val.items()}
        elif f.per_node and isinstance(val.value, list):
            at = val.item_locs[index] if val.item_locs else val.loc
            out[key] = Val(val.value[index], at, val.source)
        elif f.increments and index:
            out[key] = Val(_add(val.value, index), val.loc, val.source)
        else:
            out[key] = val
    return out


def _add(ip: ipaddress.IPv4Address, n: int) -> ipaddress.IPv4Address | None:
    try:
        return ip + n
    except ipaddress.AddressValueError:
        return None


def flatten(tree: Tree, prefix: str = "") -> dict[str, Val]:
    """`a.b.c` paths of every leaf, for provenance display."""
    out: dict[str, Val] = {}
    for key, val in tree.items():
        path = f"{prefix}{key}"
        if isinstance(val, Val):
            out[path] = val
        else:
            out.update(flatten(val, path + "."))
    return out


def plain(tree: Any) -> Any:
    """The tree's values without locations."""
    if isinstance(tree, Val):
        return plain(tree.value)
    if isinstance(tree, dict):
        return {k: plain(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [plain(v) for v in tree]
    return tree


# --- reading the merged tree ------------------------------------------------------

_UNSET = object()


def _find(tree: Tree, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if not isinstance(tree, dict) or key not in tree:
            return _UNSET
        tree = tree[key]
    return tree.value if isinstance(tree, Val) else tree


def get(tree: Tree, *keys: str) -> Any:
    """The value at `keys`, or None where it is not set (to tell set from unset)."""
    found = _find(tree, keys)
    return None if found is _UNSET else found


def setting(fields: tuple[Field, ...], tree: Tree, *keys: str) -> Any:
    """The value at `keys` of a tree read with `fields`, or the table's default for it.

    The default is looked up here so that no caller writes one of its own.
    """
    found = _find(tree, keys)
    return field_in(fields, keys).unset() if found is _UNSET else found


def loc_at(tree: Tree, *keys: str, default: Loc) -> Loc:
    for key in keys:
        if not isinstance(tree, dict) or key not in tree:
            return default
        tree = tree[key]
    return tree.loc if isinstance(tree, Val) else default


def key_loc(ymap: YNode, key: str) -> Loc:
    """Where `key` of a mapping is written (for a mistake in its value as a whole)."""
    if isinstance(ymap, YMap):
        for k, _ in ymap.items:
            if k.text == key:
                return k.loc
    return ymap.loc
