"""`wwstatic lint`'s template pass: every overlay template rendered as the build would.

A template that reads nothing per node is rendered once per overlay list (the
shared part, as the build renders it); the others once per node. Each source
is rendered on its own, so one broken template does not hide the next.
Lint writes nothing: host keys not generated yet and images not built yet read
as empty text here (the build makes them).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from toolchain.build.plan import KINDS, node_context, shared_context
from toolchain.errors import WWError, WWErrors
from toolchain.image.files import image_root
from toolchain.model.types import Cluster, Node
from toolchain.overlay import functions, hostkeys, split
from toolchain.overlay import render as overlay


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    column: int
    message: str
    hint: str
    node: str | None

    @classmethod
    def of(cls, err: WWError, node: str | None = None) -> Problem:
        if isinstance(err, overlay.TemplateError):
            return cls(err.file, err.line, 0, err.what, err.hint, node)
        loc = err.loc
        return cls(loc.file if loc else "", loc.line if loc else 0, loc.col if loc else 0,
                   err.message, err.hint, node)


def lint_env(project: Path) -> jinja2.Environment:
    env = overlay.make_env(project)

    @jinja2.pass_context
    def image_file(context: jinja2.runtime.Context, path: str) -> str:
        if not image_root(project, context["image"]).is_dir():
            return ""   # not built yet: the build reads it once it is
        return functions.include_image(context, path)

    def host_key(suffix: str) -> Any:
        @jinja2.pass_context
        def read(context: jinja2.runtime.Context, kind: str) -> str:
            key = hostkeys.key_path(project, context["node"].name, kind)
            path = key.with_name(key.name + suffix)
            return path.read_text() if path.is_file() else ""
        return read

    env.globals.update(include_image=image_file, ssh_host_key=host_key(""),
                       ssh_host_pubkey=host_key(".pub"))
    return env


def template_problems(project: Path, cluster: Cluster) -> list[Problem]:
    """Every overlay template error of the cluster, the same one for many nodes once."""
    env = lint_env(project)
    found: dict[tuple[str, int, str], Problem] = {}
    more: dict[tuple[str, int, str], int] = {}

    def add(err: WWError, node: str | None) -> None:
        for one in err.errors if isinstance(err, WWErrors) else [err]:
            p = Problem.of(one, node)
            key = (p.file, p.line, p.message.replace(f"node {node}", ""))
            if key in found:
                more[key] = more.get(key, 0) + 1
            found.setdefault(key, p)

    shared = shared_context(cluster)
    for kind in KINDS:
        lists: dict[tuple[str, ...], list[Node]] = {}
        for n in cluster.nodes:
            lists.setdefault(getattr(n, f"{kind}_overlays"), []).append(n)
        for names, members in lists.items():
            try:
                srcs = split.sources(project, names, env)
            except WWError as err:
                add(err, None)
                continue
            for s in srcs:
                if s.src.kind != "template":
                    continue
                for node in members if s.per_node else [None]:
                    context = node_context(cluster, node) if node else shared
                    who = (f"node {node.name}" if node
                           else f"the shared part of {kind} overlays {', '.join(names)}")
                    try:
                        split.render(project, names, [s], context, env, who)
                    except WWError as err:
                        add(err, node.name if node else None)
    return [dataclasses.replace(p, message=f"{p.message} (and {more[k]} more nodes)") if k in more else p
            for k, p in found.items()]
