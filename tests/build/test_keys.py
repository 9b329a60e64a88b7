"""Blob names cover every input by construction (issue 15, "keys derived, never listed").

A blob task is up to date whenever its named file exists, so an input the name
misses serves stale bytes; each test here changes one input and looks at names.
"""

from __future__ import annotations

import dataclasses
import enum
import gzip
import ipaddress
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import inproc
from tests.support.project import pointed
from tests.support.rootimage import blobs, cluster, make_root, write_project
from toolchain import fingerprint
from toolchain.build.plan import make_plan
from toolchain.model.cache import node_keys
from toolchain.model.load import load_cluster
from toolchain.model.types import Cluster
from toolchain.overlay import render

# --- code digests ------------------------------------------------------------

KINDS = {"image": fingerprint.image_code, "overlay": fingerprint.overlay_code,
         "archive.py": fingerprint.archive_code}


def test_code_digests_cover_every_file_of_their_subpackage(tmp_path: Path) -> None:
    copy = tmp_path / "toolchain"
    shutil.copytree(fingerprint.PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    for root, code in KINDS.items():
        top = copy / root
        files = [p for p in top.rglob("*") if p.is_file()] if top.is_dir() else [top]
        # archive.py's imports too: what a subpackage imports builds its blobs as well.
        files += [copy / "fsutil.py", copy / "errors.py"]
        assert len(files) > 2
        for f in files:
            fingerprint.code_digest.cache_clear()
            before = code(copy)
            data = f.read_bytes()
            f.write_bytes(data + b"\n")
            fingerprint.code_digest.cache_clear()
            fingerprint._imports.cache_clear()
            assert code(copy) != before, f"{f.relative_to(copy)} is not in the {root} digest"
            f.write_bytes(data)
    fingerprint.code_digest.cache_clear()
    fingerprint._imports.cache_clear()


def test_code_digest_leaves_out_what_a_kind_does_not_import(tmp_path: Path) -> None:
    copy = tmp_path / "toolchain"
    shutil.copytree(fingerprint.PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = {root: code(copy) for root, code in KINDS.items()}
    with (copy / "cli.py").open("a") as f:
        f.write("\n")
    fingerprint.code_digest.cache_clear()
    assert {root: code(copy) for root, code in KINDS.items()} == before
    fingerprint.code_digest.cache_clear()


# --- cluster fields ------------------------------------------------------------

def changed(value: Any) -> Any:
    """Another value of the same shape, whatever the field's type."""
    if isinstance(value, enum.Enum):
        return next(m for m in type(value) if m is not value)
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, ipaddress.IPv4Address):
        return value + 1
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        first = dataclasses.fields(value)[0].name
        return dataclasses.replace(value, **{first: changed(getattr(value, first))})
    if isinstance(value, tuple):
        return (*value, changed(value[-1])) if value else ("x",)
    if isinstance(value, dict):
        return {k: changed(v) for k, v in value.items()} if value else {"x": "x"}
    raise AssertionError(f"no way to change {value!r}: teach changed() its type")


# Fields the loader keeps for messages, outside the cluster's value (compare=False).
FIELDS = [f.name for f in dataclasses.fields(Cluster) if f.compare]


def names(project: Path, c: Cluster) -> dict[str, set[str]]:
    """Blob names by what makes them: f<i>-node (node parts), f<i>-shared, images."""
    env = render.make_env(project)
    plan = make_plan(project, c, env, node_keys(c), {n: fingerprint.digest(repr(i))
                                                     for n, i in c.images.items()})
    out: dict[str, set[str]] = {"images": {b.url for i in plan.images.values() for b in (i.kernel, i.image)}}
    for (_, overlays), oset in plan.sets.items():
        if oset.shared_blob:
            out.setdefault(f"{overlays[0]}-shared", set()).add(oset.shared_blob.url)
    for node in c.nodes[:len(FIELDS) + 1]:
        for blob in plan.nodes[node.name].own.values():
            out.setdefault(f"{node.runtime_overlays[0]}-node", set()).add(blob.url)
    return out


def test_each_cluster_field_renames_exactly_the_blobs_whose_templates_read_it(tmp_path: Path) -> None:
    root = make_root(tmp_path / "root")
    data = cluster(root, nodes=0)
    project = write_project(tmp_path / "p", data)
    # One overlay pair per field, read by a per-node (runtime) and a shared (system)
    # template; overlay f<N> reads nothing of the cluster.
    nodes: dict[str, Any] = {}
    for i, name in enumerate([*FIELDS, None]):
        read = f"{{{{ cluster.{name} }}}}" if name else "nothing"
        for kind, text in (("node", f"{{{{ node.name }}}} {read}\n"), ("shared", f"{read}\n")):
            f = project / "overlays" / f"f{i}{kind[0]}" / "rootfs" / "etc" / "f.j2"
            f.parent.mkdir(parents=True)
            f.write_text(text)
        nodes[f"n{i:02d}"] = {"image": "img", "system_overlays": [f"f{i}s"],
                              "runtime_overlays": [f"f{i}n"],
                              "network": {"default": {"ip": f"10.99.0.{10 + i}",
                                                          "mac": f"52:54:00:99:01:{i:02x}"}}}
    data["nodes"] = nodes
    (project / "cluster.yaml").write_text(yaml.safe_dump(data))
    base = load_cluster(project / "cluster.yaml")
    before = names(project, base)
    assert all({f"f{i}n-node", f"f{i}s-shared"} <= set(before) for i in range(len(FIELDS) + 1))
    for i, name in enumerate(FIELDS):
        after = names(project, dataclasses.replace(base, **{name: changed(getattr(base, name))}))
        renamed = {k for k in before if before[k] != after.get(k)}
        expect = {f"f{i}n-node", f"f{i}s-shared"} | ({"images"} if name == "images" else set())
        assert renamed == expect, name


def test_authorized_keys_read_by_a_node_template_give_new_names_and_bytes(tmp_path: Path) -> None:
    root = make_root(tmp_path / "root")
    data = cluster(root, nodes=2, runtime=("keys",))
    project = write_project(tmp_path / "p", data)
    tpl = project / "overlays" / "keys" / "rootfs" / "root" / "keys.j2"
    tpl.parent.mkdir(parents=True)
    tpl.write_text("{{ node.name }}\n{% for k in cluster.ssh_authorized_keys %}{{ k }}\n{% endfor %}")
    mac = "52:54:00:99:00:0b"
    seen = []
    for key in ("ssh-ed25519 AAAAold", "ssh-ed25519 AAAAnew"):
        data["ssh"] = {"authorized_keys": [key]}
        (project / "cluster.yaml").write_text(yaml.safe_dump(data))
        code, out = inproc.build(project)
        assert code == 0, out
        files = pointed(project / "output", mac)
        own = [f for f in files if f.startswith("nodes/n01/runtime-")]
        assert len(own) == 1, files
        assert key.encode() in gzip.decompress((project / "output/http" / own[0]).read_bytes())
        seen.append(own[0])
    assert seen[0] != seen[1]


# --- a node's part and the shared part ---------------------------------------------

@pytest.mark.parametrize("per_node_first", [True, False])
def test_one_node_ip_rewrites_that_node_the_shared_hosts_and_nothing_else(
        tmp_path: Path, per_node_first: bool) -> None:
    root = make_root(tmp_path / "root")
    runtime = ("site", "hosts") if per_node_first else ("hosts", "site")
    data = cluster(root, nodes=3, runtime=runtime)
    project = write_project(tmp_path / "p", data)
    tpl = project / "overlays" / "site" / "rootfs" / "etc" / "me.j2"
    tpl.parent.mkdir(parents=True)
    tpl.write_text("{{ node.name }} {{ node.ip }}\n")
    code, out = inproc.build(project)
    assert code == 0, out
    before = blobs(project)
    data["nodes"]["n01"]["network"]["default"]["ip"] = "10.99.0.99"  # type: ignore[index]
    (project / "cluster.yaml").write_text(yaml.safe_dump(data))
    code, out = inproc.build(project)
    assert code == 0, out
    after = blobs(project)
    new = set(after) - set(before)
    assert {n.split("/")[0] + "/" + n.split("/")[1].split("-")[0] for n in new} == {
        "nodes/n01", "shared/runtime"}, new
    assert {n for n in new if n.startswith("nodes/")} == {
        n for n in new if n.startswith("nodes/n01/system-") or n.startswith("nodes/n01/runtime-")}
    assert all(after[n] == v for n, v in before.items() if n in after), "a blob was rewritten"
