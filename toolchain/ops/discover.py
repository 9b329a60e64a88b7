"""`wwstatic discover`: unknown MACs from the access log, bound to discoverable nodes.

A machine cluster.yaml does not know still gets an address from the DHCP range
and asks for `ipxe/<its mac>.ipxe`; nginx answers with unknown.ipxe and logs the
URI it asked for. `discover` lists those MACs; `discover --assign` binds them,
in the order they first asked, to the nodes marked `discoverable: true` that
have no MAC yet (in the order cluster.yaml defines them), by writing the MAC
into cluster.yaml. The next `doit` builds their iPXE scripts and DHCP entries.

The edit is textual, at positions PyYAML reports, so comments, quoting and
layout stay as the admin wrote them. It is a dry run (the plan and a diff)
unless --yes is given: which machine becomes which node decides its name and
addresses, so a person should look first. With --yes the new file is checked
by loading it, then replaces the old one atomically.
"""

from __future__ import annotations

import argparse
import difflib
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from toolchain.errors import WWError
from toolchain.fsutil import TEMP_PREFIX, TEMP_SUFFIX, write_atomic
from toolchain.hostlist import expand
from toolchain.model.load import load_cluster
from toolchain.model.types import Cluster, Node
from toolchain.ops.accesslog import MacSeen, Scan
from toolchain.verbs import Verb


@dataclass(frozen=True)
class Binding:
    node: Node
    seen: MacSeen


def waiting(cluster: Cluster) -> list[Node]:
    """Discoverable nodes without a MAC, in the order cluster.yaml defines them."""
    return [n for n in cluster.nodes if n.discoverable and not n.bootable]


def plan(cluster: Cluster, scan: Scan) -> list[Binding]:
    # scan.unknown keeps the order of first request (the log is in time order).
    return [Binding(n, s) for n, s in zip(waiting(cluster), scan.unknown.values(), strict=False)]


# --- editing cluster.yaml -------------------------------------------------------

@dataclass(frozen=True)
class _Edit:
    start: int
    end: int
    text: str


def _find(node: yaml.MappingNode, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return k, v
    return None


def _insert(text: str, mapping: yaml.MappingNode, keys: list[str], value: str) -> _Edit:
    """Add `keys[0]: {keys[1]: ... value}` to a mapping, in the mapping's own style."""
    if mapping.flow_style or text[mapping.start_mark.index] == "{":
        inner = value
        for k in reversed(keys[1:]):
            inner = f"{{{k}: {inner}}}"
        at = mapping.start_mark.index + 1
        sep = ", " if mapping.value else ""
        return _Edit(at, at, f"{keys[0]}: {inner}{sep}")
    first = mapping.value[0][0]
    indent = first.start_mark.column
    at = first.start_mark.index - indent
    lines = []
    for depth, k in enumerate(keys):
        pad = " " * (indent + 2 * depth)
        lines.append(f"{pad}{k}: {value}\n" if depth == len(keys) - 1 else f"{pad}{k}:\n")
    return _Edit(at, at, "".join(lines))


def _replace_null(text: str, key: yaml.Node, val: yaml.Node, new: str) -> _Edit:
    if val.start_mark.index != val.end_mark.index:      # `null` or `~` written out
        return _Edit(val.start_mark.index, val.end_mark.index, new)
    colon = text.index(":", key.end_mark.index)          # `mac:` with nothing after it
    return _Edit(colon + 1, colon + 1, " " + new)


def _node_edits(text: str, file: str, value: yaml.Node, dev: str, count: int,
                macs: dict[int, str]) -> list[_Edit]:
    """Edits giving the nodes at these indexes of one node key their MACs."""
    if count == 1:
        new = f'"{macs[0]}"'
    else:
        new = "[" + ", ".join(f'"{macs[i]}"' if i in macs else "null" for i in range(count)) + "]"
    if not isinstance(value, yaml.MappingNode):
        raise WWError(f"{file}:{value.start_mark.line + 1}: cannot add a MAC to this node",
                      hint="write the node as a mapping")
    path = ["network", dev, "mac"]
    mapping = value
    for depth, key in enumerate(path[:-1]):
        found = _find(mapping, key)
        if found is None:
            return [_insert(text, mapping, path[depth:], new)]
        if not isinstance(found[1], yaml.MappingNode):
            raise WWError(f"{file}:{found[1].start_mark.line + 1}: `{key}` is not a mapping; "
                          "cannot add a MAC under it", hint="write it as a mapping, or add the MAC by hand")
        mapping = found[1]
    found = _find(mapping, "mac")
    if found is None:
        return [_insert(text, mapping, ["mac"], new)]
    mac_key, val = found
    if _is_null(val):
        return [_replace_null(text, mac_key, val, new)]
    if isinstance(val, yaml.SequenceNode) and len(val.value) == count and all(
            _is_null(val.value[i]) for i in macs):
        return [_Edit(val.value[i].start_mark.index, val.value[i].end_mark.index, f'"{mac}"')
                for i, mac in macs.items()]
    raise WWError(f"{file}:{val.start_mark.line + 1}: cannot place the MAC here",
                  hint="for a hostlist key, write one MAC or null per node of the hostlist")


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")


def edit(text: str, file: str, bindings: list[Binding]) -> str:
    """cluster.yaml text with each binding's MAC written into its node."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    nodes = _find(root, "nodes") if isinstance(root, yaml.MappingNode) else None
    if nodes is None or not isinstance(nodes[1], yaml.MappingNode):
        raise WWError(f"{file} has no `nodes` mapping")
    wanted = {b.node.name: b for b in bindings}
    edits: list[_Edit] = []
    for key, value in nodes[1].value:
        names = expand(key.value)
        macs = {i: wanted.pop(n).seen.mac for i, n in enumerate(names) if n in wanted}
        if macs:
            dev = next(b.node.primary_network for b in bindings if b.node.name in names)
            edits += _node_edits(text, file, value, dev, len(names), macs)
    if wanted:
        raise WWError(f"node {next(iter(wanted))} is not defined by a key of `nodes` in {file}")
    # From the end backwards, so earlier positions stay valid.
    for e in sorted(edits, key=lambda e: e.start, reverse=True):
        text = text[:e.start] + e.text + text[e.end:]
    return text


def assign(path: Path, bindings: list[Binding], write: bool) -> str:
    """Edit cluster.yaml; return the unified diff. Write (checked, atomically) only if `write`."""
    old = path.read_text(encoding="utf-8")
    new = edit(old, str(path), bindings)
    diff = "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                        str(path), str(path)))
    if not write:
        return diff
    check = path.with_name(f"{TEMP_PREFIX}{path.name}.discover{TEMP_SUFFIX}")
    try:
        check.write_text(new, encoding="utf-8")
        cluster = load_cluster(check)
        for b in bindings:
            if cluster.node(b.node.name).mac != b.seen.mac:
                raise WWError(f"editing {path} did not give {b.node.name} MAC {b.seen.mac}",
                              hint="add the MAC by hand; please report this")
    finally:
        check.unlink(missing_ok=True)
    mode = os.stat(path).st_mode & 0o7777
    write_atomic(path, new, mode)
    return diff


# --- the command ----------------------------------------------------------------

def _run(args: argparse.Namespace) -> int:
    path: Path = args.file
    cluster = load_cluster(path)
    scan = Scan(cluster, Path(args.log or cluster.head.access_log)).update()
    free = waiting(cluster)
    if not args.assign:
        if not scan.unknown:
            print("no unknown MACs in the log")
        else:
            rows = [("MAC", "FIRST SEEN", "LAST SEEN", "IP", "REQUESTS")]
            rows += [(u.mac, u.first, u.last, u.ip, str(u.count)) for u in scan.unknown.values()]
            widths = [max(len(r[i]) for r in rows) for i in range(5)]
            for r in rows:
                print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        print(f"{len(free)} discoverable node(s) without a MAC"
              + (f": {', '.join(n.name for n in free)}" if free else ""))
        return 0
    bindings = plan(cluster, scan)
    if not bindings:
        print("nothing to assign: " + ("no unknown MACs in the log" if not scan.unknown
                                       else "no discoverable node without a MAC"))
        return 0
    for b in bindings:
        print(f"{b.node.name} <- {b.seen.mac} (first asked {b.seen.first} from {b.seen.ip})")
    diff = assign(path, bindings, args.yes)
    if args.yes:
        print(f"wrote {path}; run doit to build the nodes' files")
    else:
        print(diff, end="")
        print("dry run: nothing written; add --yes to write cluster.yaml")
    left = len(scan.unknown) - len(bindings)
    if left > 0:
        print(f"{left} unknown MAC(s) left: no more discoverable nodes without a MAC")
    return 0


def _arguments(d: argparse.ArgumentParser) -> None:
    d.add_argument("--log", help="the access log (default: head.access_log of cluster.yaml)")
    d.add_argument("--assign", action="store_true",
                   help="bind unknown MACs, first asked first, to discoverable nodes without one")
    d.add_argument("--yes", action="store_true", help="with --assign: write cluster.yaml")


VERBS = [Verb("discover", "unknown MACs from the access log; --assign binds them", _arguments, _run)]
