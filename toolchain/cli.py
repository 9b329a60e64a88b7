"""The `wwstatic` command: build, check, serve, and day-2 operations."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from . import discover, inspect, power, serve, spec, status, wwimport
from .errors import WWError, report
from .model import load_cluster


def _lint(args: argparse.Namespace) -> int:
    cluster = load_cluster(Path(args.file))
    if args.json:
        print(json.dumps([json.loads(n.to_json()) for n in cluster.nodes], indent=2))
    else:
        print(f"{args.file}: {len(cluster.nodes)} nodes, {len(cluster.images)} images, ok")
    return 0


def _nodes(args: argparse.Namespace) -> int:
    cluster = load_cluster(Path(args.file))
    nodes = inspect.select(cluster, args.hostlist)
    if args.format == "table":
        print(inspect.nodes_table(nodes))
    else:
        print(inspect.dump([inspect.node_dict(n) for n in nodes], args.format), end="")
    return 0


def _show(args: argparse.Namespace) -> int:
    cluster = load_cluster(Path(args.file), keep_sources=True)
    for node in inspect.select(cluster, args.node):
        if args.format == "text":
            print(inspect.show(cluster, node))
        else:
            print(inspect.dump(inspect.node_dict(node), args.format), end="")
    return 0


def _schema(args: argparse.Namespace) -> int:
    if args.markdown:
        print(spec.markdown(), end="")
    else:
        print(json.dumps(spec.json_schema(), indent=2))
    return 0


def _build(args: argparse.Namespace) -> int:
    from doit.cmd_base import ModuleTaskLoader
    from doit.doit_cmd import DoitMain

    from . import tasks

    return int(DoitMain(ModuleTaskLoader(vars(tasks))).run(args.doit_args))


def _tftp(args: argparse.Namespace) -> int:
    from .tftp import serve

    root = Path(args.root)
    if not root.is_dir():
        raise WWError(f"TFTP root {root} is not a directory", hint="run doit first to build output/tftp")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("tftpy").setLevel(logging.WARNING)
    serve(root, args.listen, args.port)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wwstatic", description=__doc__)
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True)

    for name in ("lint", "check"):
        c = sub.add_parser(name, help="validate cluster.yaml (every error at once); exit 1 if wrong")
        c.add_argument("file", nargs="?", default="cluster.yaml")
        c.add_argument("--json", action="store_true", help="print the resolved nodes as JSON")
        c.set_defaults(func=_lint)

    n = sub.add_parser("nodes", help="list nodes (all, or a hostlist)")
    n.add_argument("hostlist", nargs="?", default="")
    n.add_argument("--file", default="cluster.yaml")
    n.add_argument("--format", choices=("table", "json", "yaml"), default="table")
    n.set_defaults(func=_nodes)

    s = sub.add_parser("show", help="a resolved node, and which profile set each field")
    s.add_argument("node", help="a node name or hostlist")
    s.add_argument("--file", default="cluster.yaml")
    s.add_argument("--format", choices=("text", "json", "yaml"), default="text")
    s.set_defaults(func=_show)

    wwimport.register(sub)

    j = sub.add_parser("schema", help="print the JSON Schema of cluster.yaml")
    j.add_argument("--markdown", action="store_true", help="print the reference docs instead")
    j.set_defaults(func=_schema)

    b = sub.add_parser("build", help="build output/ (runs doit; extra arguments go to doit)")
    b.add_argument("doit_args", nargs=argparse.REMAINDER)
    b.set_defaults(func=_build)

    t = sub.add_parser("tftp", help="serve the TFTP tree read-only")
    t.add_argument("--root", default="output/tftp")
    t.add_argument("--listen", default="0.0.0.0", help="address to listen on")
    t.add_argument("--port", type=int, default=69)
    t.set_defaults(func=_tftp)

    serve.register(sub)
    status.register(sub)
    discover.register(sub)
    power.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except WWError as err:
        if args.debug:
            raise
        return report(err)


if __name__ == "__main__":
    sys.exit(main())
