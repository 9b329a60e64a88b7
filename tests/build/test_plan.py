"""Unit tests of toolchain.build.plan: which blobs a build serves and what they are called.

Hermetic and in-process: each test writes a small project (cluster.yaml and site
overlays) under tmp_path and calls make_plan() with made-up image keys; nothing
is built. Names are compared with each other (equal inputs, equal names; which
names move when one input changes), never with digest values, so the tests hold
whatever the keys are made of.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.support.model import load
from toolchain.build import plan as plan_mod
from toolchain.build.plan import Plan, make_plan
from toolchain.fingerprint import overlay_code
from toolchain.model.cache import node_keys
from toolchain.overlay.render import make_env

# Site overlays, each file's path in its rootfs and text.
OVERLAYS: dict[str, dict[str, str]] = {
    "static": {"etc/static": "the same everywhere\n"},
    # Reads all nodes but no one node: shared, and its bytes follow the node list.
    "hosts": {"etc/hosts.j2": "{% for n in nodes %}{{ n.ip }} {{ n.name }}\n{% endfor %}"},
    "name": {"etc/nodename.j2": "{{ node.name }}\n"},
    # Per node only: no directory, so no shared blob either.
    "bare": {"nodename.j2": "{{ node.name }}\n"},
    "peers": {"etc/peers.j2": "{{ node.name }}:{% for n in nodes %} {{ n.name }}{% endfor %}\n"},
    "fromimage": {"etc/issue.j2": "{{ include_image('/etc/issue') }}"},
    "motd": {"etc/motd.j2": "{{ node.name }} {{ include_head('head/motd') }}"},
    # The same bytes as `static` under another name.
    "static2": {"etc/static": "the same everywhere\n"},
}

HEAD = """\
head:
  ip: 10.0.0.1
  network: 10.0.0.0/24
images:
  img:
    root: /srv/img
  other:
    root: /srv/other
"""

IMAGE_KEYS = {"img": "1" * 64, "other": "2" * 64}


def node(name: str, ip: int, system: str = "", runtime: str = "", extra: str = "") -> str:
    """A node entry of cluster.yaml's `nodes:` map; `system`/`runtime` are YAML lists or ''."""
    lines = [f"  {name}:", "    image: img" if "image:" not in extra else ""]
    if system:
        lines.append(f"    system_overlays: {system}")
    if runtime:
        lines.append(f"    runtime_overlays: {runtime}")
    lines += [f"    {line}" for line in textwrap.dedent(extra).splitlines()]
    lines.append(f'    network:\n      default: {{ip: 10.0.0.{ip}, mac: "52:54:00:00:00:{ip:02x}"}}')
    return "\n".join(x for x in lines if x) + "\n"


def project(tmp_path: Path, overlays: Mapping[str, Mapping[str, str]] = OVERLAYS) -> Path:
    for name, files in overlays.items():
        for rel, text in files.items():
            path = tmp_path / "overlays" / name / "rootfs" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    (tmp_path / "head").mkdir(exist_ok=True)
    (tmp_path / "head" / "motd").write_text("welcome\n")
    return tmp_path


def plan_of(root: Path, nodes: str, head: str = HEAD,
            image_keys: Mapping[str, str] = IMAGE_KEYS) -> Plan:
    """The plan of the cluster HEAD + `nodes:` + `nodes` in the project `root`, loaded afresh."""
    cluster = load(root, head + "nodes:\n" + nodes if nodes else head)
    return make_plan(root, cluster, make_env(root), node_keys(cluster), image_keys)


def names(plan: Plan) -> dict[str, str]:
    """Every blob's URL by what it is for."""
    out: dict[str, str] = {}
    for image, blobs in plan.images.items():
        out[f"kernel {image}"] = blobs.kernel.url
        out[f"image {image}"] = blobs.image.url
        if blobs.modules:
            out[f"modules {image}"] = blobs.modules.url
    for (kind, overlays), oset in plan.sets.items():
        if oset.shared_blob:
            out[f"shared {kind} {','.join(overlays)}"] = oset.shared_blob.url
    for name, np in plan.nodes.items():
        for kind, blob in np.own.items():
            out[f"own {name} {kind}"] = blob.url
    return out


def moved(before: Plan, after: Plan) -> set[str]:
    """What has a different name in `after` (both plans must have the same blobs)."""
    a, b = names(before), names(after)
    assert a.keys() == b.keys()
    return {k for k in a if a[k] != b[k]}


# Three nodes: n1 and n2 alike, n3 without runtime overlays.
THREE = (node("n1", 11, "[static, hosts]", "[name]") + node("n2", 12, "[static, hosts]", "[name]")
         + node("n3", 13, "[static, hosts]"))


# --- shared and per node ------------------------------------------------------


def test_static_and_all_nodes_files_are_shared_node_templates_are_per_node(tmp_path: Path) -> None:
    plan = plan_of(project(tmp_path), THREE)
    system = plan.sets[("system", ("static", "hosts"))]
    runtime = plan.sets[("runtime", ("name",))]
    assert [s.src.rel for s in system.shared if s.src.kind != "dir"] == ["etc/static", "etc/hosts.j2"]
    assert system.per_node == ()
    assert [s.src.rel for s in runtime.per_node] == ["etc/nodename.j2"]
    assert not runtime.per_node_reads_nodes and not runtime.uses_image
    # The hosts file is rendered once, for all nodes, when planned.
    hosts = {e.path: e.data for e in system.shared_part.entries}["etc/hosts"]
    assert hosts == b"10.0.0.11 n1\n10.0.0.12 n2\n10.0.0.13 n3\n"
    assert system.shared_blob is not None


def test_nodes_with_the_same_lists_share_group_and_sets_and_get_their_own_blobs(tmp_path: Path) -> None:
    plan = plan_of(project(tmp_path), THREE)
    n1, n2, n3 = (plan.nodes[n] for n in ("n1", "n2", "n3"))
    assert n1.group is n2.group and n1.group is not n3.group
    assert len(plan.groups) == 2 and plan.groups[n1.group.id] is n1.group
    # One overlay set per distinct (kind, list): n3 shares n1's system set.
    assert n3.group.sets["system"] is n1.group.sets["system"]
    assert set(plan.sets) == {("system", ("static", "hosts")), ("runtime", ("name",)), ("runtime", ())}
    assert n1.own.keys() == n2.own.keys() == {"runtime"}
    assert n1.own["runtime"].url != n2.own["runtime"].url
    assert n1.own["runtime"].url.startswith("nodes/n1/")


def test_a_node_without_runtime_overlays_has_no_runtime_layer(tmp_path: Path) -> None:
    plan = plan_of(project(tmp_path), THREE)
    n3 = plan.nodes["n3"]
    empty = n3.group.sets["runtime"]
    assert empty.names == () and empty.shared_blob is None and empty.per_node == ()
    assert n3.own == {}
    assert [name for name, _ in n3.initrds()] == ["image", "system"]


def test_initrds_load_image_modules_then_each_kind_shared_before_own(tmp_path: Path) -> None:
    head = HEAD + "  booted:\n    root: /srv/booted\n    kernel: {from: img}\n"
    nodes = node("n1", 11, "[static, name]", "[hosts, name]", "image: booted")
    plan = plan_of(project(tmp_path), nodes, head, {**IMAGE_KEYS, "booted": "3" * 64})
    np = plan.nodes["n1"]
    assert [name for name, _ in np.initrds()] == ["image", "modules", "system", "system-node",
                                                  "runtime", "runtime-node"]
    blobs = dict(np.initrds())
    assert blobs["image"] == plan.images["booted"].image
    assert blobs["modules"] == plan.images["booted"].modules is not None
    assert blobs["system-node"] == np.own["system"] and blobs["runtime-node"] == np.own["runtime"]
    # The group's list leaves the node's own layers to the node (None).
    assert [(n, b is None) for n, _, b in np.group.initrds()][-1] == ("runtime-node", True)
    assert np.kernel == plan.images["booted"].kernel


def test_an_image_without_kernel_from_has_no_modules_layer(tmp_path: Path) -> None:
    plan = plan_of(project(tmp_path), THREE)
    assert plan.images["img"].modules is None
    assert "modules" not in [name for name, _ in plan.nodes["n1"].initrds()]


def test_different_images_make_different_groups_but_share_overlay_sets(tmp_path: Path) -> None:
    nodes = node("n1", 11, "[static]", "[name]") + node("n2", 12, "[static]", "[name]", "image: other")
    plan = plan_of(project(tmp_path), nodes)
    g1, g2 = plan.nodes["n1"].group, plan.nodes["n2"].group
    assert g1.id != g2.id and g1.image == "img" and g2.image == "other"
    assert g1.sets == g2.sets
    assert g1.kernel != g2.kernel and g1.image_blob != g2.image_blob
    assert g1.script_url != g2.script_url and g1.manifest_url != g2.manifest_url


def test_an_empty_cluster_plans_images_only(tmp_path: Path) -> None:
    plan = plan_of(project(tmp_path), "")
    assert plan.nodes == {} and plan.groups == {} and plan.sets == {}
    assert set(plan.images) == {"img", "other"}


def test_same_bytes_under_other_overlay_names_give_the_same_shared_blob(tmp_path: Path) -> None:
    """A shared blob is named by its bytes, not by the list that made them."""
    nodes = node("n1", 11, "[static]") + node("n2", 12, "[static2]")
    plan = plan_of(project(tmp_path), nodes)
    a, b = plan.sets[("system", ("static",))], plan.sets[("system", ("static2",))]
    assert a is not b and a.shared_blob == b.shared_blob is not None


# --- names: equal inputs, equal names; a changed input, changed names ------------


def test_equal_inputs_give_equal_names(tmp_path: Path) -> None:
    root = project(tmp_path)
    first, second = plan_of(root, THREE), plan_of(root, THREE)
    assert names(first) == names(second)
    assert first.groups.keys() == second.groups.keys()
    assert len(set(names(first).values())) == len(names(first))  # and no two blobs alike


def test_a_node_setting_renames_that_nodes_blobs_only(tmp_path: Path) -> None:
    root = project(tmp_path)
    before = plan_of(root, THREE)
    after = plan_of(root, THREE.replace("  n2:\n", "  n2:\n    tags: {rack: r7}\n"))
    assert moved(before, after) == {"own n2 runtime"}
    assert after.nodes["n2"].group.id == before.nodes["n2"].group.id


def test_a_node_setting_renames_the_blobs_of_nodes_whose_templates_read_all_nodes(tmp_path: Path) -> None:
    root = project(tmp_path)
    nodes = (node("n1", 11, runtime="[name]") + node("n2", 12, runtime="[name]")
             + node("n3", 13, runtime="[peers]"))
    before = plan_of(root, nodes)
    assert before.sets[("runtime", ("peers",))].per_node_reads_nodes
    after = plan_of(root, nodes.replace("  n2:\n", "  n2:\n    tags: {rack: r7}\n"))
    assert moved(before, after) == {"own n2 runtime", "own n3 runtime"}


def test_a_change_to_the_shared_hosts_file_renames_the_shared_blob_not_the_groups(tmp_path: Path) -> None:
    root = project(tmp_path)
    before = plan_of(root, THREE)
    after = plan_of(root, THREE.replace("10.0.0.13", "10.0.0.99"))
    assert "shared system static,hosts" in moved(before, after)
    assert after.groups.keys() == before.groups.keys()


def test_an_image_key_renames_its_blobs_and_the_node_blobs_that_read_the_image(tmp_path: Path) -> None:
    root = project(tmp_path)
    nodes = node("n1", 11, runtime="[name]") + node("n2", 12, runtime="[fromimage]")
    before = plan_of(root, nodes)
    assert before.sets[("runtime", ("fromimage",))].uses_image
    after = plan_of(root, nodes, image_keys={**IMAGE_KEYS, "img": "9" * 64})
    assert moved(before, after) == {"kernel img", "image img", "own n2 runtime"}


def test_the_overlay_code_is_part_of_every_overlay_blob_name(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    root = project(tmp_path)
    nodes = THREE + node("n4", 14, runtime="[bare]")
    before = plan_of(root, nodes)
    assert ("runtime", ("bare",)) in before.sets and "shared runtime bare" not in names(before)
    code = overlay_code()
    monkeypatch.setattr(plan_mod, "overlay_code", lambda: code + "1")
    after = plan_of(root, nodes)
    assert moved(before, after) == {k for k in names(before) if k.startswith(("shared ", "own "))}


@pytest.mark.parametrize(("rel", "expect"), [
    ("static/rootfs/etc/static", {"shared system static,hosts"}),
    ("name/rootfs/etc/nodename.j2", {"own n1 runtime", "own n2 runtime"}),
])
def test_an_overlay_source_renames_the_blobs_made_from_it(tmp_path: Path, rel: str, expect: set[str]) -> None:
    root = project(tmp_path)
    before = plan_of(root, THREE)
    path = root / "overlays" / rel
    path.write_text(path.read_text() + "edited\n")
    assert moved(before, plan_of(root, THREE)) == expect


def test_a_head_file_a_node_template_includes_renames_the_node_blobs(tmp_path: Path) -> None:
    root = project(tmp_path)
    nodes = node("n1", 11, runtime="[motd]") + node("n2", 12, runtime="[name]")
    before = plan_of(root, nodes)
    (root / "head" / "motd").write_text("changed\n")
    assert moved(before, plan_of(root, nodes)) == {"own n1 runtime"}


def test_a_cluster_wide_setting_renames_the_node_blobs_that_read_it(tmp_path: Path) -> None:
    root = project(tmp_path, {**OVERLAYS, "headip": {"etc/head.j2": "{{ node.name }} {{ head.ip }}\n"}})
    nodes = node("n1", 11, runtime="[headip]") + node("n2", 12, runtime="[name]")
    before = plan_of(root, nodes)
    after = plan_of(root, nodes, HEAD.replace("10.0.0.1\n", "10.0.0.2\n"))
    assert moved(before, after) == {"own n1 runtime"}


def test_group_ids_follow_image_and_overlay_lists_only(tmp_path: Path) -> None:
    root = project(tmp_path)
    before = plan_of(root, THREE)
    edited = plan_of(root, THREE.replace("  n1:\n", "  n1:\n    tags: {rack: r7}\n"))
    assert edited.groups.keys() == before.groups.keys()
    relisted = plan_of(root, THREE.replace('[name]', '[name, static]'))
    assert relisted.nodes["n1"].group.id not in before.groups
    assert relisted.nodes["n3"].group.id == before.nodes["n3"].group.id
