"""`wwstatic nodes` and `wwstatic show`: the resolved cluster, for people."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import yaml

from toolchain.errors import WWError
from toolchain.hostlist import HostlistError, expand
from toolchain.model.reader import plain
from toolchain.model.types import Cluster, Node


def select(cluster: Cluster, pattern: str) -> list[Node]:
    if not pattern:
        return list(cluster.nodes)
    try:
        wanted = set(expand(pattern))
    except HostlistError as exc:
        raise WWError(f"`{pattern}` is not a hostlist: {exc}", hint="e.g. n[01-04] or n01,n03") from None
    found = [n for n in cluster.nodes if n.name in wanted]
    missing = wanted - {n.name for n in found}
    if missing and not found:
        raise WWError(f"no node matches `{pattern}`", hint="`wwstatic nodes` lists all nodes")
    return found


def node_dict(node: Node) -> dict[str, Any]:
    return json.loads(node.to_json())  # type: ignore[no-any-return]


def dump(data: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(data, indent=2, sort_keys=False, default=str)
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def nodes_table(nodes: list[Node]) -> str:
    rows = [("NODE", "IP", "MAC", "IMAGE", "PROFILES")]
    rows += [(n.name, n.ip, n.mac, n.image, ",".join(n.profiles)) for n in nodes]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)


def show(cluster: Cluster, node: Node) -> str:
    """Every field of the node with the profile (or the node) that set it."""
    sources = cluster.sources.get(node.name, {})
    lines = [f"node {node.name}  (profiles: {', '.join(node.profiles) or 'none'})"]
    width = max((len(p) for p in sources), default=10)
    for path in sorted(sources):
        val = sources[path]
        value = plain(val)
        shown = " ".join(map(str, value)) if isinstance(value, list) else str(value)
        lines.append(f"  {path.ljust(width)}  {shown}  [{val.source}, line {val.loc.line}]")
    set_here = {p.split(".")[0] for p in sources}
    defaults = {k: v for k, v in asdict(node).items()
                if k not in set_here and k not in ("name", "profiles", "ipmi")
                and v not in ("", {}, (), [], None, False)}
    if defaults:
        lines.append("  defaults:")
        for k, v in defaults.items():
            lines.append(f"  {k.ljust(width)}  {v}")
    return "\n".join(lines)
