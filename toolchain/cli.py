"""The `wwstatic` command: build, check, serve, and day-2 operations."""

from __future__ import annotations

import argparse
import json
import logging
import stat
import sys
from pathlib import Path

import jinja2

from toolchain.errors import WWError, report
from toolchain.model import spec, warewulf
from toolchain.model.load import known_overlays, load_cluster
from toolchain.ops import discover, power, serve, status
from toolchain.ops import show as inspect
from toolchain.project import overlay_dirs


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


def _render(args: argparse.Namespace) -> int:
    from toolchain.overlay import functions as template_ext
    from toolchain.overlay import render as overlay

    path = Path(args.file)
    cluster = load_cluster(path)
    try:
        node = cluster.node(args.node)
    except KeyError:
        raise WWError(f"node {args.node} is not in {path}",
                      hint="`wwstatic nodes` lists the nodes") from None
    project = path.resolve().parent
    names = node.system_overlays + node.runtime_overlays
    found = overlay.preview(project, names, args.path, template_ext.make_context(cluster, node),
                            overlay.make_env(project), f"node {node.name}")
    if found is None:
        raise WWError(f"no overlay of node {node.name} writes {args.path}",
                      hint=f"its overlays: {', '.join(names) or '(none)'}")
    entry, secret = found
    kind = stat.S_IFMT(entry.mode)
    if args.long:
        what = {stat.S_IFDIR: "directory", stat.S_IFLNK: "symlink"}.get(kind, "file")
        print(f"# /{entry.path}: {what} {stat.S_IMODE(entry.mode):04o} {entry.uid}:{entry.gid}"
              + (" secret" if secret else ""))
    if kind == stat.S_IFLNK:
        print(f"-> {entry.target}")
    elif kind == stat.S_IFREG and entry.data is not None:
        sys.stdout.flush()
        sys.stdout.buffer.write(entry.data)
    return 0


def _overlay_list(args: argparse.Namespace) -> int:
    from toolchain.overlay import render as overlay

    project = Path(args.file).resolve().parent
    site, shipped = overlay_dirs(project)
    for name in sorted(known_overlays(project)):
        where = "site" if (site / name / "rootfs").is_dir() else "shipped"
        if where == "site" and (shipped / name / "rootfs").is_dir():
            where = "site, overrides shipped"
        sources = overlay.list_sources(overlay.find_overlay(name, project))
        templates = sum(1 for s in sources if s.kind == "template")
        files = sum(1 for s in sources if s.kind != "dir")
        print(f"{name:24} {files:3} files, {templates:2} templates  ({where})")
    return 0


def _overlay_info(args: argparse.Namespace) -> int:
    from toolchain.overlay import functions as template_ext
    from toolchain.overlay import render as overlay

    project = Path(args.file).resolve().parent
    root = overlay.find_overlay(args.overlay, project)
    env = overlay.make_env(project)
    print(f"overlay {args.overlay}: {root}")
    for src in overlay.list_sources(root):
        if src.kind != "template":
            continue
        name = overlay.template_name(root, src)
        try:
            used, fields = template_ext.fields_used(env, name)
            per_node = template_ext.node_dependent(env, name)
        except jinja2.TemplateSyntaxError as exc:
            raise WWError(f"{exc.filename}:{exc.lineno}: template syntax: {exc.message}") from None
        functions = sorted(u for u in used if u in env.globals)
        variables = sorted(u for u in used if u not in env.globals)
        print(f"  /{src.rel[:-3]} ({'per node' if per_node else 'same for every node'})")
        print(f"    variables: {', '.join(variables) or '-'}")
        if fields:
            print(f"    fields:    {', '.join(sorted(fields))}")
        if functions:
            print(f"    functions: {', '.join(functions)}")
    return 0


def _build(args: argparse.Namespace) -> int:
    from doit.cmd_base import ModuleTaskLoader
    from doit.doit_cmd import DoitMain

    from toolchain.build import tasks

    return int(DoitMain(ModuleTaskLoader(vars(tasks))).run(args.doit_args))


def _tftp(args: argparse.Namespace) -> int:
    from toolchain.ops.tftp import serve

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

    warewulf.register(sub)

    j = sub.add_parser("schema", help="print the JSON Schema of cluster.yaml")
    j.add_argument("--markdown", action="store_true", help="print the reference docs instead")
    j.set_defaults(func=_schema)

    r = sub.add_parser("render", help="print one file of a node's overlays, rendered and layered")
    r.add_argument("node")
    r.add_argument("path", help="the path on the node, e.g. /etc/hosts")
    r.add_argument("--file", default="cluster.yaml")
    r.add_argument("-l", "--long", action="store_true", help="first print its type, mode and owner")
    r.set_defaults(func=_render)

    o = sub.add_parser("overlay", help="inspect overlays")
    osub = o.add_subparsers(dest="overlay_command", required=True)
    ol = osub.add_parser("list", help="overlays and where they come from")
    ol.add_argument("--file", default="cluster.yaml")
    ol.set_defaults(func=_overlay_list)
    oi = osub.add_parser("info", help="the variables and node fields an overlay's templates use")
    oi.add_argument("overlay")
    oi.add_argument("--file", default="cluster.yaml")
    oi.set_defaults(func=_overlay_info)

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
