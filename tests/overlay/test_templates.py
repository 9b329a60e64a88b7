"""Overlay templates: functions, manifests, strict errors, and what a template depends on."""

from __future__ import annotations

import stat
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.support.overlays import fixture_project
from tests.support.project import make_project, run_doit
from toolchain.cli import main
from toolchain.errors import WWError
from toolchain.model.load import load_cluster
from toolchain.overlay import functions as template_ext
from toolchain.overlay import render as overlay
from toolchain.overlay import split
from toolchain.overlay.manifest import load_manifest


def site(project: Path, name: str, files: dict[str, str], manifest: str = "") -> None:
    """Write a site overlay `name` into `project`."""
    for rel, text in files.items():
        path = project / "overlays" / name / "rootfs" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    if manifest:
        (project / "overlays" / name / "manifest.yaml").write_text(textwrap.dedent(manifest))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return fixture_project(tmp_path / "p")


def layered(project: Path, name: str, node: str = "n02") -> overlay.Layered:
    cluster = load_cluster(project / "cluster.yaml")
    n = cluster.node(node)
    return overlay.layer_all(project, (name,), template_ext.make_context(cluster, n),
                             overlay.make_env(project), f"node {node}")


def by_path(lay: overlay.Layered) -> dict[str, tuple[int, str]]:
    return {e.path: (e.mode, e.target or (e.data or b"").decode()) for e in lay.entries}


# --- template functions -----------------------------------------------------------

def test_file_blocks_write_one_file_each(project: Path) -> None:
    site(project, "t", {"etc/net/devs.j2": """\
        {% for dev in node.network.values() %}
        {% file "dev-" ~ dev.name %}
        {{ dev.ip }}
        {% endfile %}
        {% endfor %}
        {% file "/top/level" %}x{% endfile %}
        """})
    got = by_path(layered(project, "t"))
    assert got["etc/net/dev-default"][1] == "10.5.0.12\n"
    assert got["etc/net/dev-ib"][1] == "10.6.0.12\n"
    assert got["top/level"][1] == "x"
    assert "etc/net/devs" not in got, "a template with blocks writes only its blocks"
    assert stat.S_ISDIR(got["top"][0]), "parents of block files are in the archive"


def test_symlink_skip_and_both(project: Path) -> None:
    site(project, "t", {
        "etc/link.j2": '{{ symlink("/usr/share/zoneinfo/" ~ node.tags.localtime) }}',
        "etc/gone.j2": "text\n{{ skip() }}",
        "etc/some.j2": '{% for n in ("a", "b") %}{% file n %}{{ skip() if n == "a" }}{{ n }}{% endfile %}'
                       '{% endfor %}',
    })
    got = by_path(layered(project, "t"))
    assert stat.S_ISLNK(got["etc/link"][0]) and got["etc/link"][1] == "/usr/share/zoneinfo/Europe/Paris"
    assert "etc/gone" not in got
    assert "etc/a" not in got and got["etc/b"][1] == "b"


def test_include_head_and_image(project: Path) -> None:
    site(project, "t", {"x.j2": '{{ include_head("head/group") | unique_field(":", 0) }}'
                                '{{ include_image("/etc/group").splitlines()[0] }}'})
    data = by_path(layered(project, "t"))["x"][1]
    assert data.startswith("root:x:0:\n")
    assert data.endswith("hpc:x:2000:alice,bob\nnogroup:x:65534:\nroot:x:0:")


def test_include_image_follows_links_inside_the_image(project: Path) -> None:
    (project / "image" / "etc" / "os-release").symlink_to("../usr/lib/os-release")
    (project / "image" / "usr" / "lib").mkdir(parents=True)
    (project / "image" / "usr" / "lib" / "os-release").write_text("ID=fixture\n")
    site(project, "t", {"x.j2": '{{ include_image("etc/os-release") }}'})
    assert by_path(layered(project, "t"))["x"][1] == "ID=fixture\n"


def test_unique_filters(project: Path) -> None:
    site(project, "t", {"x.j2": """\
        {% for n in nodes | unique_by("primary.gateway") %}{{ n.name }} {% endfor %}
        {% for n in nodes | unique_by("image") %}{{ n.name }} {% endfor %}
        {{ "a:1\\nb:2\\na:3\\n" | unique_field(":", 0) }}"""})
    assert by_path(layered(project, "t"))["x"][1] == "n01 n02 n01 a:1\nb:2\n"


SAMPLES = ["/dev/disk/by-partlabel/scratch", "foo-bar baz", ".hidden/x", "/", "a//b/./c/", "ünï",
           "x\\y:z_w.v", "-"]


@pytest.mark.parametrize("value", SAMPLES)
def test_systemd_escape_matches_systemd(value: str) -> None:
    for path in (False, True):
        argv = ["systemd-escape", *(["--path"] if path else []), "--", value]
        want = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.rstrip("\n")
        assert template_ext.systemd_escape(value, path=path) == want, (value, path)


def test_node_dependent(project: Path) -> None:
    site(project, "t", {
        "shared.j2": "{% for n in nodes %}{{ n.name }}{% endfor %}{{ include_head('head/group') }}",
        "mine.j2": "{{ node.name }}",
        "incl.j2": '{% include "t/rootfs/mine.j2" %}',
        "incl-shared.j2": '{% include "t/rootfs/shared.j2" %}',
        "dynamic.j2": "{% include name %}",
        "img.j2": '{{ include_image("etc/passwd") }}',
        "keys.j2": '{{ ssh_host_pubkey("ed25519") }}',
    })
    env = overlay.make_env(project)
    want = {"shared": False, "mine": True, "incl": True, "incl-shared": False, "dynamic": True,
            "img": True, "keys": True}
    got = {k: template_ext.node_dependent(env, f"t/rootfs/{k}.j2") for k in want}
    assert got == want
    assert template_ext.node_dependent(env, "hosts/rootfs/etc/hosts.j2") is False
    assert template_ext.node_dependent(env, "hostname/rootfs/etc/hostname.j2") is True


# --- strict errors ------------------------------------------------------------------

@pytest.mark.parametrize(("text", "line", "what"), [
    ("ok\n{{ node.nosuchfield }}\n", 2, "template error for node n02: "
     "'toolchain.model.types.Node object' has no attribute 'nosuchfield'"),
    ("ok\n\n{% if %}\n", 3, "template syntax"),
    ("{{ include_head('nope') }}", 1, "does not exist on the build host"),
    ("{{ include_image('etc/nope') }}", 1, "image fix has no file /etc/nope"),
    ("{{ 1 // 0 }}", 1, "ZeroDivisionError"),
    ("{{ fail('no ' ~ node.name) }}", 1, "the template stopped the build: no n02"),
    ("text\n{% file 'a' %}x{% endfile %}", 0, "outside {% file %} blocks"),  # no one line
    ("{% file 'a' %}{% file 'b' %}{% endfile %}{% endfile %}", 1, "cannot be nested"),
    ("{% file '../../etc' %}{% endfile %}", 1, "leaves the overlay"),
])
def test_template_errors_name_file_line_and_node(project: Path, text: str, line: int, what: str) -> None:
    site(project, "t", {"etc/bad.j2": text})
    with pytest.raises(WWError) as err:
        layered(project, "t")
    message = str(err.value)
    assert f"overlays/t/rootfs/etc/bad.j2{f':{line}' if line else ''}" in message, message
    assert what in message, message
    assert "n02" in message


def test_error_in_included_template_names_its_line(project: Path) -> None:
    site(project, "t", {"etc/main.j2": '{% include "t/rootfs/part.j2" %}',
                        "part.j2": "a\nb\n{{ node.bad }}\n"})
    with pytest.raises(WWError, match=r"overlays/t/rootfs/part\.j2:3: template error for node n02"):
        layered(project, "t")


def test_image_not_available(project: Path) -> None:
    text = (project / "cluster.yaml").read_text().replace(str(project / "image"), "/nonexistent/root")
    (project / "cluster.yaml").write_text(text)
    site(project, "t", {"x.j2": '{{ include_image("etc/passwd") }}'})
    with pytest.raises(WWError, match="image fix is not available at /nonexistent/root"):
        layered(project, "t")


def test_bad_template_stops_build_and_writes_nothing(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    (project / "overlays" / "motd" / "rootfs" / "etc" / "motd.j2").write_text("{{ node.oops }}\n")
    result = run_doit(project)
    assert result.returncode != 0
    assert "motd.j2:1" in result.stderr and "node n01" in result.stderr, result.stderr
    # No node got a runtime part, and no pointer was written: nothing a node can
    # fetch changed (blobs written before the error are named by nothing).
    http = project / "output" / "http"
    assert not list(http.glob("nodes/*/runtime-*")), "nothing may be written"
    assert not list(http.glob("ipxe/*")) and not list(http.glob("nodes/*/runtime.json"))


# --- manifests ------------------------------------------------------------------------

def test_manifest_modes_owners_and_secrets(project: Path) -> None:
    (project / "run.sh").write_text("")
    site(project, "t", {"etc/app/conf": "a", "etc/app/token.j2": "{{ node.name }}", "bin/tool": "",
                        "var/spool/app/x": "", "etc/app/run": ""}, manifest="""\
        # later lines win
        etc/app/*: {owner: 1001, group: nogroup}
        etc/app/token: {secret: true}
        etc/app/run: {mode: 0750, owner: root}
        var/spool/app: {mode: "2770", group: 12}
        """)
    tool = project / "overlays" / "t" / "rootfs" / "bin" / "tool"
    tool.chmod(0o755)
    lay = layered(project, "t")
    meta = {e.path: (stat.S_IMODE(e.mode), e.uid, e.gid) for e in lay.entries}
    assert meta["etc/app/conf"] == (0o644, 1001, 65534)
    assert meta["etc/app/token"] == (0o600, 1001, 65534)
    assert meta["etc/app/run"] == (0o750, 0, 65534)
    assert meta["bin/tool"] == (0o755, 0, 0), "the executable bit comes from git"
    assert meta["var/spool/app"] == (0o2770, 0, 12)
    assert meta["etc"] == (0o755, 0, 0)
    assert lay.secrets == frozenset({"etc/app/token"}) and lay.secret


@pytest.mark.parametrize(("text", "line", "what"), [
    ("a: {mode: 0999}\n", 1, "not an octal permission"),
    ("a: {mode: 0644}\nb: {owner: alice}\n", 2, "owner `alice` is not a number"),
    ("a:\n  colour: red\n", 2, "unknown setting `colour`"),
    ("a: {secret: maybe}\n", 1, "secret must be true or false"),
    ("- a\n", 1, "must map paths to settings"),
    ("a: 0600\n", 1, "must be a mapping"),
    ("a: {mode: \n", 1, "YAML syntax"),
])
def test_manifest_errors_are_located(tmp_path: Path, text: str, line: int, what: str) -> None:
    (tmp_path / "manifest.yaml").write_text(text)
    with pytest.raises(WWError) as err:
        load_manifest(tmp_path)
    assert err.value.loc is not None and err.value.loc.line >= line
    assert str(err.value.loc).startswith(str(tmp_path / "manifest.yaml"))
    assert what in err.value.message, err.value.message
    assert err.value.hint


# --- preview commands -----------------------------------------------------------------

def with_overlays(project: Path) -> None:
    text = (project / "cluster.yaml").read_text().replace(
        "    image: fix\n", "    image: fix\n    system_overlays: [wwinit, hostname, resolv]\n"
                           "    runtime_overlays: [hosts, localtime]\n", 1)
    (project / "cluster.yaml").write_text(text)


def test_render_command(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with_overlays(project)
    site(project, "hostname", {"etc/hostname.j2": "site-{{ node.name }}\n"})
    here = str(project)
    assert main(["render", "n02", "/etc/hostname", "-C", here]) == 0
    assert capsys.readouterr().out == "site-n02\n"
    assert main(["render", "n02", "etc/localtime", "-l", "-C", here]) == 0
    assert capsys.readouterr().out == ("# /etc/localtime: symlink 0777 0:0\n"
                                       "-> /usr/share/zoneinfo/Europe/Paris\n")
    assert main(["render", "n01", "/etc/nothing", "-C", here]) == 1
    assert "no overlay of node n01 writes /etc/nothing" in capsys.readouterr().err
    assert main(["render", "n09", "/etc/hosts", "-C", here]) == 1
    assert "node n09 is not in" in capsys.readouterr().err


def test_overlay_list_and_info(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site(project, "hostname", {"etc/hostname.j2": "{{ node.name }}\n"})
    here = str(project)
    assert main(["overlay", "list", "-C", here]) == 0
    out = capsys.readouterr().out
    assert "hostname" in out and "site, overrides shipped" in out and "syncuser" in out
    assert main(["overlay", "info", "wwinit", "-C", here]) == 0
    out = capsys.readouterr().out
    assert "/warewulf/ipmi (per node)" in out and "node.ipmi.password" in out
    assert main(["overlay", "info", "hosts", "-C", here]) == 0
    out = capsys.readouterr().out
    assert "/etc/hosts (same for every node)" in out and "variables: cluster_file, head, nodes" in out
    assert main(["overlay", "info", "nope", "-C", here]) == 1


@pytest.mark.parametrize(("text", "own"), [
    ("{% for n in nodes %}{{ n.name }}\n{% endfor %}", False),
    ("{% for n in nodes %}{{ n.ipmi.password }}\n{% endfor %}", True),
    ('{{ nodes | map(attribute="ipmi.password") | join(",") }}', True),
    ('{{ nodes[0]["ipmi"]["password"] }}', True),
    ('{{ nodes | map(attribute="ipmi.user") | join(",") }}', False),
])
def test_a_template_reading_a_secret_field_is_the_nodes_own(tmp_path: Path, text: str, own: bool) -> None:
    """However a template reaches a field the spec marks secret, its file is kept out of the
    part every address can fetch."""
    root = tmp_path / "overlays/t/rootfs/etc"
    root.mkdir(parents=True)
    (root / "list.j2").write_text(text)
    (src,) = split.sources(tmp_path, ("t",), overlay.make_env(tmp_path))[1:]   # after etc/
    assert src.src.rel == "etc/list.j2" and src.per_node is own


@pytest.mark.parametrize(("line", "private"), [
    ('etc/f: {secret: true, mode: "0644"}', True),   # secret, whatever its mode
    ('etc/f: {mode: "0640"}', True),                 # others cannot read it on the node
    ('etc/f: {mode: "0600", secret: false}', False),  # said to be no secret (public keys)
    ('etc/f: {mode: "0644"}', False),
])
def test_which_files_stay_out_of_the_shared_part(tmp_path: Path, line: str, private: bool) -> None:
    (tmp_path / "manifest.yaml").write_text(line + "\n")
    meta = load_manifest(tmp_path).meta("etc/f", stat.S_IFREG)
    assert meta.private(stat.S_IFREG) is private
