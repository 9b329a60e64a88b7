"""Unit tests of toolchain.build.publish and the atomic writes it relies on.

Hermetic and in-process: a small project under tmp_path is planned (plan.py),
its runtime blobs are stand-in bytes written by the test, and publish() writes
the pointers into tmp_path/http. Failures are simulated with monkeypatch.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.support.model import load
from toolchain.build import generate, layout, publish
from toolchain.build.plan import Blob, NodePlan, Plan, make_plan
from toolchain.errors import WWError
from toolchain.fsutil import write_atomic, write_if_changed
from toolchain.model.cache import node_keys
from toolchain.model.types import Cluster
from toolchain.overlay.render import make_env

HEAD = """\
head:
  ip: 10.0.0.1
  network: 10.0.0.0/24
images:
  img:
    root: /srv/img
  other:
    root: /srv/other
profiles:
  default:
    image: img
    system_overlays: [static]
    runtime_overlays: [name]
    kernel: {args: [ARGS]}
nodes:
"""
NODES = """\
  n1: {profiles: [default], network: {default: {ip: 10.0.0.11, mac: "52:54:00:00:00:11"}}}
  n2: {profiles: [default], network: {default: {ip: 10.0.0.12, mac: "52:54:00:00:00:12"}}}
  n3: {profiles: [default], image: other, network: {default: {ip: 10.0.0.13, mac: "52:54:00:00:00:13"}}}
  d1: {profiles: [default], discoverable: true, network: {default: {ip: 10.0.0.21}}}
"""
IMAGE_KEYS = {"img": "1" * 64, "other": "2" * 64}


@dataclasses.dataclass
class Build:
    cluster: Cluster
    plan: Plan
    keys: dict[str, str]


def build(root: Path, args: str = "quiet", nodes: str = NODES) -> Build:
    """The plan of the test cluster, with kernel arguments `args` for every node."""
    sources = {"static/rootfs/etc/static": "same\n", "name/rootfs/etc/nodename.j2": "{{ node.name }}\n"}
    for rel, text in sources.items():
        path = root / "overlays" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    cluster = load(root, HEAD.replace("ARGS", args) + nodes)
    keys = node_keys(cluster)
    return Build(cluster, make_plan(root, cluster, make_env(root), keys, IMAGE_KEYS), keys)


def put_blobs(http: Path, plan: Plan) -> None:
    """Stand-in bytes for the blobs the manifests describe (publish reads their sums)."""
    for np in plan.nodes.values():
        for blob in [*np.own.values(), *(s.shared_blob for s in np.group.sets.values() if s.shared_blob)]:
            path = http / blob.url
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(f"bytes of {blob.url}\n".encode())


def run(b: Build, http: Path, base: str = "base") -> int:
    put_blobs(http, b.plan)
    return publish.publish(b.cluster, b.plan, http, http.parent / "pointers.json", b.keys, base)


def pointers(b: Build) -> set[str]:
    """The pointer files a plan has."""
    out = {layout.UNKNOWN_IPXE}
    for g in b.plan.groups.values():
        out |= {g.script_url, g.manifest_url}
    for np in b.plan.nodes.values():
        out.add(layout.manifest_url(np.node.name))
        if np.node.bootable:
            out.add(layout.ipxe_path(np.node))
    return out


def tree(http: Path) -> dict[str, bytes]:
    """Every file but the stand-in blobs: the pointers, and anything a failed write left."""
    return {p.relative_to(http).as_posix(): p.read_bytes() for p in http.rglob("*")
            if p.is_file() and not p.name.endswith(".img.gz")}


def stats(http: Path, rels: set[str]) -> dict[str, tuple[int, int]]:
    return {r: ((s := (http / r).stat()).st_ino, s.st_mtime_ns) for r in rels}


# --- write_if_changed ------------------------------------------------------------


def test_write_if_changed_leaves_an_equal_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "p.ipxe"
    assert write_if_changed(path, "one\n") is True        # its directories made
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))     # an mtime a rewrite would not keep
    before = path.stat()
    assert write_if_changed(path, b"one\n") is False
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert write_if_changed(path, "two\n") is True
    assert path.read_text() == "two\n" and path.stat().st_ino != before.st_ino  # replaced, not edited
    assert [p.name for p in path.parent.iterdir()] == ["p.ipxe"]


def test_write_if_changed_never_leaves_a_part_of_a_file(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "p.json"
    path.write_text("old\n")

    def fail(*_: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(WWError, match="no space"):
        write_if_changed(path, "new and longer\n")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["p.json"]   # no temporary file left


# --- pointer_key ----------------------------------------------------------------


def test_pointer_key_follows_node_key_base_key_group_and_own_blobs(tmp_path: Path) -> None:
    b = build(tmp_path)
    np = b.plan.nodes["n1"]
    key = publish.pointer_key(np, b.keys["n1"], "base")
    assert publish.pointer_key(build(tmp_path).plan.nodes["n1"], b.keys["n1"], "base") == key
    other_group = b.plan.nodes["n3"].group
    assert other_group.id != np.group.id
    variants = [
        publish.pointer_key(np, b.keys["n2"], "base"),
        publish.pointer_key(np, b.keys["n1"], "base2"),
        publish.pointer_key(dataclasses.replace(np, group=other_group), b.keys["n1"], "base"),
        publish.pointer_key(dataclasses.replace(np, own={"runtime": Blob("nodes/n1/x.img.gz", "k")}),
                            b.keys["n1"], "base"),
    ]
    assert key not in variants and len(set(variants)) == len(variants)


# --- publish -------------------------------------------------------------------


def test_publish_writes_every_pointer_of_the_plan(tmp_path: Path) -> None:
    b = build(tmp_path)
    http = tmp_path / "http"
    want = pointers(b)
    assert run(b, http) == len(want)
    written = set(tree(http))
    assert written == want
    # A discoverable node without a MAC has a manifest and no script.
    assert "nodes/d1/runtime.json" in written and not any("None" in r or "--" in r for r in written)
    assert json.loads((tmp_path / "pointers.json").read_text()).keys() == b.plan.nodes.keys()


def test_node_pointers_name_their_group_and_own_blobs_with_their_sums(tmp_path: Path) -> None:
    b = build(tmp_path)
    http = tmp_path / "http"
    run(b, http)
    np = b.plan.nodes["n1"]
    script = (http / layout.ipxe_path(np.node)).read_text()
    assert f"/{np.group.script_url}" in script and np.own["runtime"].url in script
    manifest = json.loads((http / "nodes/n1/runtime.json").read_text())
    own = np.own["runtime"]
    data = (http / own.url).read_bytes()
    assert manifest["node"] == "n1" and manifest["layers"] == [
        {"include": np.group.manifest_url},
        {"url": own.url, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}]
    group = json.loads((http / np.group.manifest_url).read_text())
    shared = np.group.sets["runtime"].shared_blob
    assert shared is not None and [layer["url"] for layer in group["layers"]] == [shared.url]
    assert group["layers"][0]["sha256"] == hashlib.sha256((http / shared.url).read_bytes()).hexdigest()


def test_a_second_publish_of_the_same_plan_touches_nothing(tmp_path: Path) -> None:
    b = build(tmp_path)
    http = tmp_path / "http"
    run(b, http)
    before = stats(http, pointers(b))
    assert run(build(tmp_path), http) == 0
    assert stats(http, pointers(b)) == before


def spy_node_scripts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The nodes whose iPXE script publish() makes from now on."""
    made: list[str] = []
    real = generate.node_ipxe

    def node_ipxe(cluster: Cluster, np: NodePlan) -> str:
        made.append(np.node.name)
        return real(cluster, np)
    monkeypatch.setattr(generate, "node_ipxe", node_ipxe)
    return made


def test_only_nodes_whose_inputs_changed_get_their_pointers_made(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    http = tmp_path / "http"
    run(build(tmp_path), http)
    edited = build(tmp_path, nodes=NODES.replace("n2: {profiles: [default],", "n2: {profiles: [default], "
                                                  "kernel: {args: [debug]},"))
    before = stats(http, pointers(edited))
    made = spy_node_scripts(monkeypatch)
    assert run(edited, http) == 2   # its script, and its manifest naming its new runtime blob
    assert made == ["n2"]
    assert "debug" in (http / "ipxe/52-54-00-00-00-12.ipxe").read_text()
    after = stats(http, pointers(edited))
    assert {r for r in after if after[r] != before[r]} == {"ipxe/52-54-00-00-00-12.ipxe",
                                                           "nodes/n2/runtime.json"}


def test_group_pointers_are_written_before_node_pointers_and_the_state_last(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b = build(tmp_path)
    http = tmp_path / "http"
    order: list[str] = []

    def write(path: Path, data: str) -> bool:
        order.append(path.relative_to(http).as_posix())
        return write_if_changed(path, data)

    def atomic(path: Path, data: str) -> None:
        order.append("STATE")
        write_atomic(path, data)
    monkeypatch.setattr(publish, "write_if_changed", write)
    monkeypatch.setattr(publish, "write_atomic", atomic)
    run(b, http)
    kinds = ["group" if r.startswith("groups/") else "state" if r == "STATE" else "node" for r in order]
    first_node = kinds.index("node")
    assert "group" in kinds and "group" not in kinds[first_node:]
    assert kinds[-1] == "state" and kinds.count("state") == 1


def test_a_publish_that_fails_at_any_write_leaves_each_pointer_old_or_new(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    http, clean = tmp_path / "http", tmp_path / "clean" / "http"
    old_build, new_build = build(tmp_path), build(tmp_path, "debug")
    run(new_build, clean)
    new = tree(clean)
    real = os.replace
    count = {"calls": 0, "fail_at": 0}

    def replace(src: Any, dst: Any) -> None:
        count["calls"] += 1
        if count["calls"] == count["fail_at"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(src, dst)
    while True:
        count["fail_at"] += 1
        fail_at = count["fail_at"]
        run(old_build, http)
        old = tree(http)
        count["calls"] = 0
        monkeypatch.setattr(os, "replace", replace)
        try:
            run(new_build, http)
            break                            # no write left to fail
        except WWError:
            pass
        finally:
            monkeypatch.setattr(os, "replace", real)
        now = tree(http)
        assert not [r for r in now if r.rpartition("/")[2].startswith(".")]   # no temporary file
        for rel, data in now.items():
            assert data in (old.get(rel), new.get(rel)), f"{rel} after failing write {fail_at}"
        # The pointers' state is gone, so the next publish finishes the job.
        assert not (tmp_path / "pointers.json").exists()
        run(new_build, http)
        assert tree(http) == new
    assert fail_at > 5    # node scripts, manifests and the state were each made to fail


def test_a_publish_killed_after_some_nodes_then_undone_rewrites_those_nodes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The state of the build before must not be trusted once a node's pointers changed."""
    http = tmp_path / "http"
    first = build(tmp_path)
    run(first, http)
    old = tree(http)
    real = generate.node_ipxe

    def die_after_n1(cluster: Cluster, np: NodePlan) -> str:
        if np.node.name != "n1":
            raise KeyboardInterrupt
        return str(real(cluster, np))
    monkeypatch.setattr(generate, "node_ipxe", die_after_n1)
    with pytest.raises(KeyboardInterrupt):
        run(build(tmp_path, "debug"), http)
    assert tree(http)["ipxe/52-54-00-00-00-11.ipxe"] != old["ipxe/52-54-00-00-00-11.ipxe"]
    monkeypatch.setattr(generate, "node_ipxe", real)
    run(build(tmp_path), http)    # the edit undone
    assert tree(http) == old


def test_referenced_names_every_pointer_and_blob_of_the_plan(tmp_path: Path) -> None:
    b = build(tmp_path)
    refs = publish.referenced(b.plan)
    assert pointers(b) <= refs
    blobs = {b.url for np in b.plan.nodes.values() for _, b in np.initrds()}
    blobs |= {np.kernel.url for np in b.plan.nodes.values()}
    assert blobs <= refs
    assert refs - pointers(b) - blobs == set()
    assert not any(r.startswith("ipxe/") and "d1" in r for r in refs)
