"""Incremental builds equal clean ones (issue 15): random edits, then both compared.

Each example starts from one built project on a root-directory image, applies a
short sequence of edits (cluster.yaml fields of every kind, shipped overlays
copied into the project and changed, a site overlay and its manifest, nodes
added and removed, a file added to the image) and builds after each, in this
process (tests/support/inproc.py), so that 200 examples take minutes, not hours.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import inproc
from tests.support.project import pointed
from tests.support.rootimage import blobs, cluster, make_root, write_project
from toolchain.project import SHIPPED_OVERLAYS

Edit = tuple[Any, ...]
TASKS = ("publish",)   # every blob and pointer; the text files have their own tests
WORDS = st.sampled_from(["alpha", "beta", "gamma", ""])

EDITS = st.one_of(
    st.tuples(st.just("head.fqdn"), WORDS),
    st.tuples(st.just("dhcp.lease_time"), st.integers(60, 9000)),
    st.tuples(st.just("nfs.exports"), st.sampled_from(["/srv", "/home", "/opt"])),
    st.tuples(st.just("ssh.authorized_keys"), WORDS),
    st.tuples(st.just("wwclient.interval"), st.integers(5, 600)),
    st.tuples(st.just("node.ip"), st.integers(0, 5), st.integers(100, 250)),
    st.tuples(st.just("node.comment"), st.integers(0, 5), WORDS),
    st.tuples(st.just("node.tags"), st.integers(0, 5), WORDS),
    st.tuples(st.just("profile.kernel.args"), st.sampled_from(["quiet", "debug", "x=1"])),
    st.tuples(st.just("profile.runtime_overlays"), st.sampled_from(["site", "motd"])),
    st.tuples(st.just("shipped"), st.sampled_from(["hosts", "hostname", "issue"]), WORDS),
    st.tuples(st.just("site.template"), WORDS),
    st.tuples(st.just("site.static"), WORDS),
    st.tuples(st.just("site.manifest"), st.sampled_from(["0600", "0640", "0644"])),
    st.tuples(st.just("nodes.add")),
    st.tuples(st.just("nodes.remove"), st.integers(0, 5)),
    st.tuples(st.just("image.file"), st.sampled_from(["a", "b", "c"]), WORDS),
)


def apply(edit: Edit, project: Path, root: Path) -> str | None:
    """Apply `edit`; the node whose own settings it changed, if it changed one node's only."""
    data = yaml.safe_load((project / "cluster.yaml").read_text())
    nodes, profile = data["nodes"], data["profiles"]["default"]
    site = project / "overlays" / "site"
    what, *args = edit
    one = None
    if what == "head.fqdn":
        # "" takes the setting out: an empty host name is refused by its grammar.
        if args[0]:
            data["head"]["fqdn"] = args[0]
        else:
            data["head"].pop("fqdn", None)
    elif what == "dhcp.lease_time":
        data.setdefault("dhcp", {})["lease_time"] = args[0]
    elif what == "nfs.exports":
        data.setdefault("nfs", {}).setdefault("exports", []).append({"path": args[0]})
    elif what == "ssh.authorized_keys":
        data.setdefault("ssh", {})["authorized_keys"] = [f"ssh-ed25519 AAAA{args[0]}"]
    elif what == "wwclient.interval":
        data["wwclient"] = {"interval": args[0]}
    elif what.startswith("node."):
        one = sorted(nodes)[args[0] % len(nodes)]
        dev = nodes[one]["network"]["default"]
        if what == "node.ip":
            used = {n["network"]["default"]["ip"] for n in nodes.values()}
            if f"10.99.0.{args[1]}" in used:
                return None
            dev["ip"] = f"10.99.0.{args[1]}"
        elif what == "node.comment":
            nodes[one]["comment"] = args[1]
        else:
            nodes[one]["tags"] = {"t": args[1]}
    elif what == "profile.kernel.args":
        profile.setdefault("kernel", {}).setdefault("args", []).append(args[0])
    elif what == "profile.runtime_overlays":
        names = profile["runtime_overlays"]
        profile["runtime_overlays"] = [n for n in names if n != args[0]] if args[0] in names \
            else [*names, args[0]]
    elif what == "shipped":
        dest = project / "overlays" / args[0]
        if not dest.exists():
            shutil.copytree(SHIPPED_OVERLAYS / args[0], dest)
        template = next(dest.rglob("*.j2"))
        template.write_text(template.read_text() + f"{args[1]}\n")
    elif what == "site.template":
        (site / "rootfs/etc/me.j2").write_text(f"{{{{ node.name }}}} {{{{ node.ip }}}} {args[0]}\n")
    elif what == "site.static":
        (site / "rootfs/etc/static.txt").write_text(f"{args[0]}\n")
    elif what == "site.manifest":
        (site / "manifest.yaml").write_text(f'etc/static.txt: {{mode: "{args[0]}"}}\n')
    elif what == "nodes.add":
        free = next(i for i in range(1, 60) if f"n{i:02d}" not in nodes)
        nodes[f"n{free:02d}"] = {"profiles": ["default"], "network": {"default": {
            "ip": f"10.99.0.{10 + free}", "mac": f"52:54:00:99:00:{10 + free:02x}"}}}
    elif what == "nodes.remove":
        if len(nodes) > 1:
            del nodes[sorted(nodes)[args[0] % len(nodes)]]
    elif what == "image.file":
        (root / "etc" / args[0]).write_text(f"{args[1]}\n")
    (project / "cluster.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return one


def served(project: Path) -> dict[str, bytes]:
    """Every file the pointers name, by path under output/http, and the pointers themselves."""
    data = yaml.safe_load((project / "cluster.yaml").read_text())
    http = project / "output" / "http"
    out: dict[str, bytes] = {}
    for name, node in data["nodes"].items():
        files = pointed(project / "output", node["network"]["default"]["mac"])
        group = files[0].removesuffix(".ipxe") + ".json"
        for f in [*files, group, f"nodes/{name}/runtime.json",
                  f"ipxe/{node['network']['default']['mac'].replace(':', '-')}.ipxe"]:
            out[f] = (http / f).read_bytes()
    return out


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("differential")
    root = make_root(base / "root")
    work = write_project(base / "work", cluster(root, nodes=3, runtime=("hosts", "site")))
    site = work / "overlays" / "site"
    (site / "rootfs/etc").mkdir(parents=True)
    (site / "rootfs/etc/me.j2").write_text("{{ node.name }} {{ node.ip }}\n")
    (site / "rootfs/etc/static.txt").write_text("static\n")
    (work / "overlays/motd/rootfs/etc").mkdir(parents=True)
    (work / "overlays/motd/rootfs/etc/motd").write_text("welcome\n")
    code, out = inproc.build(work, *TASKS)
    assert code == 0, out
    shutil.copytree(work, base / "start", symlinks=True)
    return {"base": base, "root": root, "work": work, "etc_mtime": (root / "etc").stat().st_mtime_ns}


def reset(lab: dict[str, Any]) -> None:
    """The work project and the image root as the fixture built them.

    The project is copied back with its mtimes. The root is put back in place: its
    fingerprint (image/tree.py) has inodes, which a copy would change.
    """
    shutil.rmtree(lab["work"])
    shutil.copytree(lab["base"] / "start", lab["work"], symlinks=True)
    etc = lab["root"] / "etc"
    for f in etc.iterdir():
        if f.name != "motd":
            f.unlink()
    os.utime(etc, ns=(lab["etc_mtime"], lab["etc_mtime"]))


@settings(max_examples=200, deadline=None, derandomize=True, database=None, print_blob=False,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(edits=st.lists(EDITS, min_size=1, max_size=2))
def test_incremental_build_equals_clean_build(lab: dict[str, Any], edits: list[Edit]) -> None:
    reset(lab)
    work, clean = lab["work"], lab["base"] / "clean"
    for step, edit in enumerate(edits):
        where = f"after edits {edits[:step + 1]}"
        one = apply(edit, work, lab["root"])
        before = blobs(work)
        code, out = inproc.build(work, *TASKS)
        assert code == 0, f"{where}: {out}"
        after = blobs(work)
        shutil.rmtree(clean, ignore_errors=True)
        shutil.copytree(work, clean, symlinks=True, ignore=shutil.ignore_patterns("output"))
        code, out = inproc.build(clean, *TASKS)
        assert code == 0, f"{where}: the clean build failed: {out}"
        ours, theirs = served(work), served(clean)
        assert ours.keys() == theirs.keys(), f"{where}: the pointers name other files"
        wrong = sorted(f for f in ours if ours[f] != theirs[f])
        assert not wrong, f"{where}: differ from a clean build: {wrong}"
        # A blob's name stays with its bytes: nothing already there was written again ...
        rewritten = sorted(n for n, v in before.items() if n in after and after[n] != v)
        assert not rewritten, f"{where}: rewritten: {rewritten}"
        # ... and only what the edit's inputs reach got new names.
        new = set(after) - set(before)
        assert new <= set(theirs), f"{where}: written but not served: {sorted(new - set(theirs))}"
        if edit[0] != "image.file":
            assert not {n for n in new if n.startswith("images/")}, f"{where}: image rebuilt: {new}"
        if one is not None:
            others = {n for n in new if n.startswith("nodes/") and not n.startswith(f"nodes/{one}/")}
            assert not others, f"{where}: other nodes' blobs rebuilt: {sorted(others)}"
