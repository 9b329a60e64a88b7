"""`wwstatic lint`, `nodes`, `show` and `schema`: the resolved cluster and its schema, for people."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any

import yaml

from toolchain.errors import WWError, WWErrors
from toolchain.hostlist import HostlistError, compress, expand
from toolchain.model import spec
from toolchain.model.load import load_cluster
from toolchain.model.reader import plain
from toolchain.model.types import Cluster, Node
from toolchain.ops.lintrender import Problem, template_problems
from toolchain.verbs import Verb


def select(cluster: Cluster, pattern: str) -> list[Node]:
    """The nodes a hostlist names, in the cluster's order (all for an empty one).

    `nodes`, `show`, `power`, `sensors` and `status` select with this. Naming
    a node that does not exist is an error: a typo must not act on fewer nodes.
    """
    if not pattern:
        return list(cluster.nodes)
    try:
        wanted = set(expand(pattern))
    except HostlistError as exc:
        raise WWError(f"`{pattern}` is not a hostlist: {exc}", hint="e.g. n[01-04] or n01,n03") from None
    found = [n for n in cluster.nodes if n.name in wanted]
    missing = wanted - {n.name for n in found}
    if missing:
        some = "no node matches" if not found else f"{len(missing)} of the nodes named do not exist:"
        raise WWError(f"{some} `{pattern}`" if not found else f"{some} {compress(sorted(missing))}",
                      hint="`wwstatic nodes` lists all nodes")
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


# --- the verbs ------------------------------------------------------------------

def _lint(args: argparse.Namespace) -> int:
    """The cluster file, then every overlay template, checked as the build would."""
    try:
        cluster = load_cluster(args.file)
    except WWError as err:
        if not args.json:
            raise
        problems = [Problem.of(one) for one in (err.errors if isinstance(err, WWErrors) else [err])]
    else:
        problems = template_problems(args.project, cluster)
    if args.json:
        print(json.dumps([asdict(p) for p in problems], indent=2))
    elif problems:
        for p in problems:
            where = ":".join(str(x) for x in (p.file, p.line, p.column) if x)
            hint = f"\n  hint: {p.hint}" if p.hint else ""
            print(f"wwstatic: {where + ': ' if where else ''}error: {p.message}{hint}", file=sys.stderr)
        print(f"wwstatic: {len(problems)} template errors", file=sys.stderr)
    else:
        print(f"{args.file}: {len(cluster.nodes)} nodes, {len(cluster.images)} images, ok "
              "(every template renders)")
    return 1 if problems else 0


def _lint_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true",
                   help="print the errors as JSON: a list of {file, line, column, message, hint, node}")


def _nodes(args: argparse.Namespace) -> int:
    nodes = select(load_cluster(args.file), args.hostlist)
    if args.format == "table":
        print(nodes_table(nodes))
    else:
        print(dump([node_dict(n) for n in nodes], args.format), end="")
    return 0


def _nodes_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("hostlist", nargs="?", default="")
    p.add_argument("--format", choices=("table", "json", "yaml"), default="table")


def _show(args: argparse.Namespace) -> int:
    cluster = load_cluster(args.file, keep_sources=True)
    for node in select(cluster, args.node):
        if args.format == "text":
            print(show(cluster, node))
        else:
            print(dump(node_dict(node), args.format), end="")
    return 0


def _show_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("node", help="a node name or hostlist")
    p.add_argument("--format", choices=("text", "json", "yaml"), default="text")


def _schema(args: argparse.Namespace) -> int:
    if args.markdown:
        print(spec.markdown(), end="")
    else:
        print(json.dumps(spec.json_schema(), indent=2))
    return 0


def _schema_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--markdown", action="store_true", help="print the reference docs instead")


_LINT_HELP = "validate cluster.yaml and render every overlay template (every error at once); exit 1 if wrong"
VERBS = [
    *(Verb(name, _LINT_HELP, _lint_arguments, _lint) for name in ("lint", "check")),
    Verb("nodes", "list nodes (all, or a hostlist)", _nodes_arguments, _nodes),
    Verb("show", "a resolved node, and which profile set each field", _show_arguments, _show),
    Verb("schema", "print the JSON Schema of cluster.yaml", _schema_arguments, _schema),
]
