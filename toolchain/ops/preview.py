"""`wwstatic render` and `wwstatic overlay list|info`: what the overlays give a node, before a build."""

from __future__ import annotations

import argparse
import stat
import sys

import jinja2

from toolchain.errors import WWError
from toolchain.model.load import known_overlays, load_cluster
from toolchain.overlay import functions as template_ext
from toolchain.overlay import render as overlay
from toolchain.project import overlay_dirs
from toolchain.verbs import Verb


def _render(args: argparse.Namespace) -> int:
    cluster = load_cluster(args.file)
    try:
        node = cluster.node(args.node)
    except KeyError:
        raise WWError(f"node {args.node} is not in {args.file}",
                      hint="`wwstatic nodes` lists the nodes") from None
    names = node.system_overlays + node.runtime_overlays
    found = overlay.preview(args.project, names, args.path, template_ext.make_context(cluster, node),
                            overlay.make_env(args.project), f"node {node.name}")
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


def _render_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("node")
    p.add_argument("path", help="the path on the node, e.g. /etc/hosts")
    p.add_argument("-l", "--long", action="store_true", help="first print its type, mode and owner")


def _overlay_list(args: argparse.Namespace) -> int:
    site, shipped = overlay_dirs(args.project)
    for name in sorted(known_overlays(args.project)):
        where = "site" if (site / name / "rootfs").is_dir() else "shipped"
        if where == "site" and (shipped / name / "rootfs").is_dir():
            where = "site, overrides shipped"
        sources = overlay.list_sources(overlay.find_overlay(name, args.project))
        templates = sum(1 for s in sources if s.kind == "template")
        files = sum(1 for s in sources if s.kind != "dir")
        print(f"{name:24} {files:3} files, {templates:2} templates  ({where})")
    return 0


def _overlay_info(args: argparse.Namespace) -> int:
    root = overlay.find_overlay(args.overlay, args.project)
    env = overlay.make_env(args.project)
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


def _overlay_info_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("overlay")


VERBS = [
    Verb("render", "print one file of a node's overlays, rendered and layered", _render_arguments, _render),
    Verb("overlay", "inspect overlays", subverbs=(
        Verb("list", "overlays and where they come from", run=_overlay_list),
        Verb("info", "the variables and node fields an overlay's templates use",
             _overlay_info_arguments, _overlay_info),
    )),
]
