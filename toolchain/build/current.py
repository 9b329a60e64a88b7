"""The current build's state, computed once per doit run: the project, the plan, the image keys.

doit asks the task creators and the actions for these many times; each is
worked out on first use. A mistake in cluster.yaml or a template ends the run
at that point with the error, before any task runs.
"""

from __future__ import annotations

from functools import cache

import jinja2

from toolchain.build import images
from toolchain.build.context import Context
from toolchain.build.plan import Plan, make_plan
from toolchain.build.publish import referenced
from toolchain.errors import WWError, report
from toolchain.model import cache as model_cache
from toolchain.overlay import render
from toolchain.project import Project


@cache
def project() -> Context:
    """The project in the current directory; a bad cluster.yaml ends the run here."""
    paths = Project.current()
    try:
        cluster, keys = model_cache.load(paths.cluster_file, paths.state)
    except WWError as err:
        raise SystemExit(report(err)) from None
    return Context(paths, cluster, keys)

@cache
def env() -> jinja2.Environment:
    return render.make_env(project().root)

@cache
def plan() -> Plan:
    p = project()
    try:
        return make_plan(p.root, p.cluster, env(), p.node_keys, image_keys())
    except WWError as err:
        raise SystemExit(report(err)) from None

@cache
def image_keys() -> dict[str, str]:
    """Each image's input digest (images.image_keys), once per run."""
    try:
        return images.image_keys(project())
    except WWError as err:
        raise SystemExit(report(err)) from None

@cache
def named() -> set[str]:
    """Every served file the current pointers name (for gc), computed once per run."""
    return referenced(plan())
