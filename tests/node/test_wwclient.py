"""wwclient against a real nginx on loopback: applies, polls cheaply, refuses hostile input.

wwclient runs as nodes run it: `python -I toolchain/node/wwclient.py ...` in a child
process, here with --root pointing at a scratch tree. Each hostile case first
applies a good overlay, then publishes a manifest whose first layer changes a
file and whose second layer is bad: the bad layer must be refused with a clear
line, the good change must not be applied either (no partial apply), and
nothing may appear outside the root.
"""

from __future__ import annotations

import ast
import contextlib
import gzip
import hashlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.lab import httpd
from tests.lab.httpd import file, folder, publish, symlink, write_layer, write_manifest
from tests.lab.wwnode import WWCLIENT, snapshot, wait_for
from toolchain.archive import Compression, Entry, is_secret, write_cpio
from toolchain.build import layout
from toolchain.fsutil import publish_mode, web_server_gid
from toolchain.node import wwclient
from toolchain.overlay import render


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpd.Nginx]:
    work = tmp_path_factory.mktemp("nginx")
    http = work / "http"
    (http / "shared").mkdir(parents=True)
    port = httpd.free_port()
    with httpd.running(work / "nginx", httpd.plain_server(port, http), port) as ng:
        yield ng


def http_root(ng: httpd.Nginx) -> Path:
    return ng.workdir.parent / "http"


class Node:
    """One simulated node: its name, its root tree and wwclient's state directory."""

    def __init__(self, ng: httpd.Nginx, tmp: Path, name: str) -> None:
        self.ng, self.name = ng, name
        self.http = http_root(ng)
        self.root = tmp / "root"
        self.state = tmp / "state"
        self.outside = tmp / "outside"
        for d in (self.root, self.outside):
            d.mkdir()

    def argv(self, *extra: str, base: str = "") -> list[str]:
        return [sys.executable, "-I", str(WWCLIENT), "--base", base or self.ng.base, "--node", self.name,
                "--root", str(self.root), "--state", str(self.state), *extra]

    def run(self, *extra: str, base: str = "", path: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PATH": path} if path is not None else None
        return subprocess.run(self.argv(*extra, base=base), capture_output=True, text=True,
                              timeout=120, check=False, env=env)

    def once(self, base: str = "", path: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.run("--once", base=base, path=path)

    def publish(self, *layers: list[Entry], **kw: object) -> list[dict[str, object]]:
        return publish(self.http, self.name, *layers, **kw)  # type: ignore[arg-type]

    def hits(self) -> list[httpd.Hit]:
        return [h for h in self.ng.hits() if f"/nodes/{self.name}/" in h.path or "/shared/" in h.path]


@pytest.fixture
def node(server: httpd.Nginx, tmp_path: Path, request: pytest.FixtureRequest) -> Node:
    name = "".join(c if c.isalnum() else "-" for c in request.node.name)[:60]
    return Node(server, tmp_path, name)


BASE = [folder("etc"), file("etc/motd", "v1\n"), file("etc/keep", "keep\n")]


# --- applying ---------------------------------------------------------------------

def test_first_apply_then_an_unchanged_poll_is_one_304(node: Node) -> None:
    node.publish(
        [folder("etc"), folder("etc/ssh", 0o700), file("etc/motd", "from layer 1\n"),
         file("etc/ssh/key", "secret\n", 0o600, uid=0, gid=0), file("usr/bin/tool", "#!/bin/sh\n", 0o755),
         file("home/u/.profile", "x\n", 0o640, uid=1000, gid=1001)],
        [file("etc/motd", "from layer 2\n"), symlink("etc/localtime", "/usr/share/zoneinfo/UTC")])
    done = node.once()
    assert done.returncode == 0, done.stderr
    root = node.root
    assert (root / "etc/motd").read_text() == "from layer 2\n"  # the later layer wins
    assert stat.S_IMODE((root / "etc/ssh").stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "etc/ssh/key").stat().st_mode) == 0o600
    assert stat.S_IMODE((root / "usr/bin/tool").stat().st_mode) == 0o755
    prof = (root / "home/u/.profile").stat()
    assert (prof.st_uid, prof.st_gid, stat.S_IMODE(prof.st_mode)) == (1000, 1001, 0o640)
    assert os.readlink(root / "etc/localtime") == "/usr/share/zoneinfo/UTC"
    assert "added /etc/motd" in done.stderr
    assert not list(root.rglob(".*wwclient-*")), "temporary files left behind"
    before = snapshot(root)
    hits = len(node.hits())

    again = node.once()
    assert again.returncode == 0, again.stderr
    assert again.stderr == ""  # nothing changed, nothing to say
    new = node.hits()[hits:]
    assert [(h.status, h.path) for h in new] == [(304, f"/nodes/{node.name}/runtime.json")]
    assert new[0].sent < 300, new[0]  # headers only
    assert snapshot(root) == before


def test_added_changed_removed(node: Node) -> None:
    shared = [folder("etc"), file("etc/hosts", "10.0.0.1 head\n")]
    node.publish(shared, [file("etc/motd", "v1\n"), file("etc/old", "old\n"), folder("opt/tool")])
    assert node.once().returncode == 0
    (node.root / "etc/local").write_text("made on the node\n")
    hits = len(node.hits())

    node.publish(shared, [file("etc/motd", "v2\n"), file("etc/new", "new\n")])
    done = node.once()
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert "wwclient: added /etc/new" in lines
    assert "wwclient: changed /etc/motd" in lines
    assert "wwclient: removed /etc/old" in lines
    assert "wwclient: removed /opt/tool" in lines
    assert (node.root / "etc/motd").read_text() == "v2\n"
    assert not (node.root / "etc/old").exists()
    assert (node.root / "etc/local").exists(), "a file wwclient did not install was removed"
    assert (node.root / "etc/hosts").exists()
    # The unchanged first layer came from the cache: only the manifest and the new layer.
    fetched = [h.path for h in node.hits()[hits:]]
    assert len(fetched) == 2 and fetched[0].endswith("runtime.json"), fetched


def write_group(http: Path, name: str, layers: list[dict[str, object]], age: float = 10) -> str:
    """A group manifest, as the build writes groups/<group>.json; return its URL."""
    url = f"groups/{name}.json"
    path = http / url
    path.parent.mkdir(parents=True, exist_ok=True)
    # Backdated (see write_manifest), yet past the last version's mtime.
    past = time.time() - age
    with contextlib.suppress(FileNotFoundError):
        past = max(past, int(path.stat().st_mtime) + 1)
    path.write_text(json.dumps({"format": 1, "group": name, "layers": layers}))
    os.utime(path, (past, past))
    return url


def test_included_group_manifest(node: Node) -> None:
    # The build's layout: the node's manifest includes its group's (the shared part).
    http = node.http
    group = f"g-{node.name}"
    shared = write_layer(http, [folder("etc"), file("etc/hosts", "10.0.0.1 head\n")])
    include = write_group(http, group, [shared])
    own = write_layer(http, [folder("etc"), file("etc/motd", "mine\n")])
    write_manifest(http, node.name, [{"include": include}, own])
    done = node.once()
    assert done.returncode == 0, done.stderr
    assert (node.root / "etc/hosts").read_text() == "10.0.0.1 head\n"
    assert (node.root / "etc/motd").read_text() == "mine\n"
    hits = len(node.ng.hits())
    # Unchanged: one 304 per manifest, nothing else.
    again = node.once()
    assert again.returncode == 0 and again.stderr == "", again.stderr
    assert sorted((h.status, h.path) for h in node.ng.hits()[hits:]) == [
        (304, f"/{include}"), (304, f"/nodes/{node.name}/runtime.json")]
    # Only the group's manifest changes (a new hosts file): the node applies it.
    shared2 = write_layer(http, [folder("etc"), file("etc/hosts", "10.0.0.1 head\n10.0.0.2 n2\n")])
    write_group(http, group, [shared2])
    third = node.once()
    assert third.returncode == 0, third.stderr
    assert "changed /etc/hosts" in third.stderr
    assert (node.root / "etc/hosts").read_text().endswith("n2\n")
    assert (node.root / "etc/motd").read_text() == "mine\n"


def test_included_manifest_may_not_include(node: Node) -> None:
    inner = write_group(node.http, f"inner-{node.name}", [])
    outer = node.http / f"groups/outer-{node.name}.json"
    outer.write_text(json.dumps({"format": 1, "layers": [{"include": inner}]}))
    write_manifest(node.http, node.name, [{"include": f"groups/outer-{node.name}.json"}])
    done = node.once()
    assert done.returncode == 1
    assert "may not include another" in done.stderr
    assert list(node.root.iterdir()) == []


def test_manifest_rewritten_in_the_same_second_is_not_missed(node: Node) -> None:
    # nginx's ETag is mtime-seconds + size: two manifests of equal size written in
    # the same second share it. wwclient must not trust validators that fresh.
    node.publish([file("etc/motd", "AAAA\n")], age=0)
    manifest = node.http / wwclient.manifest_path(node.name)
    mtime = manifest.stat().st_mtime
    assert node.once().returncode == 0
    node.publish([file("etc/motd", "BBBB\n")], age=0)
    os.utime(manifest, (mtime, mtime))
    done = node.once()
    assert done.returncode == 0, done.stderr
    assert (node.root / "etc/motd").read_text() == "BBBB\n"


def test_declared_setuid_is_applied(node: Node) -> None:
    node.publish([file("usr/bin/ping", "elf", 0o4755)], setuid=["/usr/bin/ping"])
    done = node.once()
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE((node.root / "usr/bin/ping").stat().st_mode) == 0o4755


def test_symlinks_inside_the_root_are_followed(node: Node) -> None:
    # Merged /usr: /bin is a link to usr/bin; a file for bin/ lands in usr/bin/.
    (node.root / "usr/bin").mkdir(parents=True)
    (node.root / "bin").symlink_to("usr/bin")
    node.publish([folder("bin"), file("bin/tool", "t\n", 0o755)])
    done = node.once()
    assert done.returncode == 0, done.stderr
    assert (node.root / "usr/bin/tool").read_text() == "t\n"
    assert (node.root / "bin").is_symlink()


def test_sighup_refreshes_at_once(node: Node) -> None:
    node.publish(BASE)
    err = node.root.parent / "wwclient.log"
    with err.open("w") as out:
        proc = subprocess.Popen(node.argv("--interval", "3600"), stderr=out)
    try:
        wait_for(lambda: "applied" in err.read_text(), 30)
        node.publish([*BASE[:2], file("etc/motd", "after hup\n")])
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "changed /etc/motd" in err.read_text(), 30)
        assert (node.root / "etc/motd").read_text() == "after hup\n"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert "wwclient: stopping" in err.read_text()


# --- hostile input ------------------------------------------------------------------

def raw_layer(http: Path, data: bytes, *, size: int | None = None,
              sha: str | None = None) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    url = f"shared/{digest}.raw.gz"
    (http / url).write_bytes(data)
    return {"url": url, "sha256": sha or digest, "size": len(data) if size is None else size}


def cpio_bytes(tmp: Path, entries: list[Entry], compression: Compression = Compression.GZIP) -> bytes:
    write_cpio(entries, tmp / "x.cpio", compression)
    return (tmp / "x.cpio").read_bytes()


Case = Callable[[Node], dict[str, object]]


def entries(*es: Entry) -> Case:
    return lambda n: write_layer(n.http, list(es))


def disk_link_escape(n: Node) -> dict[str, object]:
    (n.root / "link").symlink_to("../outside")  # a link already on the node, leading out
    return write_layer(n.http, [file("link/pwned", "x")])


def truncated(n: Node) -> dict[str, object]:
    return raw_layer(n.http, cpio_bytes(n.root.parent, [file("etc/big", os.urandom(5000))])[:-40])


def wrong_digest(n: Node) -> dict[str, object]:
    return raw_layer(n.http, cpio_bytes(n.root.parent, [file("etc/x", "x")]), sha="0" * 64)


def wrong_size(n: Node) -> dict[str, object]:
    data = cpio_bytes(n.root.parent, [file("etc/x", "x")])
    return raw_layer(n.http, data, size=len(data) - 1)


def wrong_size_larger(n: Node) -> dict[str, object]:
    data = cpio_bytes(n.root.parent, [file("etc/x", "x")])
    return raw_layer(n.http, data, size=len(data) + 1)


def not_an_archive(n: Node) -> dict[str, object]:
    return raw_layer(n.http, gzip.compress(b"<html>hello</html>" * 10, mtime=0))


def zstd(n: Node) -> dict[str, object]:
    return raw_layer(n.http, cpio_bytes(n.root.parent, [file("etc/x", "x")], Compression.ZSTD))


HOSTILE: dict[str, tuple[Case, str]] = {
    "traversal": (entries(file("../outside/pwned", "x")), "`..` in the path"),
    "deep-traversal": (entries(folder("etc"), file("etc/../../outside/pwned", "x")), "`..` in the path"),
    "absolute": (entries(file("/tmp/wwclient-test-pwned", "x")), "absolute path"),
    "symlink-escape": (entries(symlink("evil", "/"), file("evil/tmp/wwclient-test-pwned", "x")),
                       "goes through evil, which is a symlink"),
    "symlink-escape-later-layer": (entries(symlink("etc", "../outside")),
                                   "goes through etc, which is a symlink"),
    "disk-symlink-escape": (disk_link_escape, "leads outside"),
    "device": (entries(Entry("dev/sda9", stat.S_IFBLK | 0o666, rdev=os.makedev(8, 9))),
               "block device not allowed"),
    "char-device": (entries(Entry("dev/mem2", stat.S_IFCHR | 0o666, rdev=os.makedev(1, 1))),
                    "character device not allowed"),
    "fifo": (entries(Entry("run/fifo", stat.S_IFIFO | 0o644)), "fifo not allowed"),
    "setuid": (entries(file("usr/bin/sh2", "elf", 0o4755)), "setuid/setgid bit (4755) not declared"),
    "setgid": (entries(file("usr/bin/sh3", "elf", 0o2755)), "setuid/setgid bit (2755) not declared"),
    "truncated-gzip": (truncated, "truncated gzip stream"),
    "wrong-digest": (wrong_digest, "the manifest says 0000"),
    "wrong-size": (wrong_size, "more than"),
    "wrong-size-larger": (wrong_size_larger, "bytes, the manifest says"),
    "not-an-archive": (not_an_archive, "cpio: bad magic"),
    "zstd-without-zstd": (zstd, "this image has no `zstd` program"),
    "replace-dir": (entries(file("etc", "x")), "goes through etc, which is a file"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_layer_is_refused_and_nothing_is_applied(case: str, node: Node) -> None:
    make, message = HOSTILE[case]
    node.publish(BASE)
    assert node.once().returncode == 0
    before = snapshot(node.root)
    state_before = (node.state / "state.json").read_bytes()

    good = write_layer(node.http, [*BASE[:2], file("etc/motd", "v2\n"), file("etc/added", "new\n")])
    bad = make(node)
    before = snapshot(node.root)  # the case may have put a link on the node
    write_manifest(node.http, node.name, [good, bad])
    done = node.once(path=str(node.outside.parent / "no-bin"))  # no zstd program here
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    assert any(line.startswith("wwclient: rejected: ") and message in line and "nothing applied" in line
               for line in lines), done.stderr
    assert len(lines) == 1, done.stderr  # one clear line, no traceback
    assert snapshot(node.root) == before, "partial apply"
    assert (node.state / "state.json").read_bytes() == state_before
    assert not any(node.outside.iterdir())
    assert not Path("/tmp/wwclient-test-pwned").exists()


def test_manifest_for_another_node_is_refused(node: Node) -> None:
    path = node.http / wwclient.manifest_path(node.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format": 1, "node": "someone-else", "interval": 60, "layers": []}))
    done = node.once()
    assert done.returncode == 1
    assert "manifest is for node 'someone-else'" in done.stderr


@pytest.mark.parametrize("url", ["/etc/shadow", "../../etc/shadow", "http://evil/x", "a/./b"])
def test_layer_urls_stay_in_the_tree(url: str, node: Node) -> None:
    write_manifest(node.http, node.name, [{"url": url, "sha256": "0" * 64, "size": 1}])
    done = node.once()
    assert done.returncode == 1
    assert "layer url" in done.stderr and "nothing applied" in done.stderr


# --- an unhelpful server --------------------------------------------------------------

def test_server_error(node: Node) -> None:
    done = node.once(base=node.ng.base + "/status500")
    assert done.returncode == 1
    assert "server unavailable" in done.stderr and "HTTP 500" in done.stderr


def test_server_that_never_answers_times_out(node: Node) -> None:
    # The kernel completes the handshake for a listening socket nobody accepts on.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        port = sock.getsockname()[1]
        start = time.monotonic()
        done = node.run("--once", "--timeout", "1", base=f"http://127.0.0.1:{port}")
        took = time.monotonic() - start
    assert done.returncode == 1
    assert "server unavailable" in done.stderr and "timed out" in done.stderr, done.stderr
    assert took < 30


def test_server_down_backs_off_exponentially(node: Node) -> None:
    port = httpd.free_port()  # nothing listens there
    err = node.root.parent / "wwclient.log"
    with err.open("w") as out:
        proc = subprocess.Popen(node.argv("--retry-min", "0.1", "--retry-max", "0.8",
                                          base=f"http://127.0.0.1:{port}"), stderr=out)
    try:
        wait_for(lambda: err.read_text().count("retrying in") >= 6, 60)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    delays = [float(line.rsplit("retrying in ", 1)[1].split()[0])
              for line in err.read_text().splitlines() if "retrying in" in line]
    assert "Connection refused" in err.read_text()
    # 0.1, 0.2, 0.4, 0.8, 0.8, ... each +-10 %
    assert delays[0] < 0.12 and 0.17 < delays[1] < 0.23 and 0.35 < delays[2] < 0.45
    assert all(0.7 <= d <= 0.89 for d in delays[3:6]), delays


# --- the cpio reader on its own -------------------------------------------------------

def test_cpio_hard_links_and_concatenation(tmp_path: Path) -> None:
    one = cpio_bytes(tmp_path, [Entry("a", stat.S_IFREG | 0o644, data=b"same", link_key=1),
                                Entry("b", stat.S_IFREG | 0o644, data=b"same", link_key=1)],
                     Compression.NONE)
    two = cpio_bytes(tmp_path, [file("c", "c")], Compression.NONE)
    items = {i.path: (i.size, i.sha256) for i in wwclient.parse_cpio(one + b"\0" * 8 + two)}
    digest = {d: (len(d), hashlib.sha256(d).hexdigest()) for d in (b"same", b"c")}
    assert items == {"a": digest[b"same"], "b": digest[b"same"], "c": digest[b"c"]}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0), flip=st.integers(min_value=0), bit=st.integers(0, 7))
def test_cpio_reader_refuses_damage_cleanly(cut: int, flip: int, bit: int, tmp_path: Path) -> None:
    data = bytearray(cpio_bytes(tmp_path, [folder("d"), file("d/f", "hello"), symlink("d/l", "f")],
                                Compression.NONE))
    data[flip % len(data)] ^= 1 << bit
    del data[cut % (len(data) + 1):]
    try:
        items = wwclient.parse_cpio(bytes(data))
    except wwclient.Rejected:
        return
    for it in items:  # what is accepted is still safe
        assert not it.path.startswith("/") and ".." not in it.path.split("/")
        assert it.kind in ("dir", "file", "symlink")


# --- packaging ------------------------------------------------------------------------

def test_wwclient_uses_the_standard_library_only() -> None:
    tree = ast.parse(WWCLIENT.read_text())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree)
              if isinstance(n, ast.ImportFrom) and n.module and n.level == 0}
    assert names <= set(sys.stdlib_module_names) | {"__future__"}, names
    assert not any(isinstance(n, ast.ImportFrom) and n.level for n in ast.walk(tree))


def test_manifest_path_agrees_with_the_build() -> None:
    assert wwclient.manifest_path("n07") == layout.manifest_url("n07")


def test_overlay_ships_this_wwclient(tmp_path: Path) -> None:
    es = {e.path: e for e in render.layer(tmp_path, ("wwclient",), {}, render.make_env(tmp_path), "test")}
    assert es["usr/lib/wwclient/wwclient.py"].data == WWCLIENT.read_bytes()
    assert stat.S_IMODE(es["usr/sbin/wwclient"].mode) == 0o755
    unit = "etc/systemd/system/multi-user.target.wants/wwclient.service"
    assert stat.S_ISLNK(es[unit].mode) and es[unit].target == "../wwclient.service"
    unit_text = (es["etc/systemd/system/wwclient.service"].data or b"").decode()
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit_text
    assert "50" in next(p for p in es if p.startswith("warewulf/init.d/"))
    # The launcher in an image without python3 says so and exits cleanly.
    (tmp_path / "wrapper").write_bytes(es["usr/sbin/wwclient"].data or b"")
    empty = tmp_path / "bin"
    empty.mkdir()
    done = subprocess.run(["/bin/sh", str(tmp_path / "wrapper")], env={"PATH": str(empty)},
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0
    assert "python3 is not in this image" in done.stderr


def test_init_script_leaves_systemd_to_its_unit(tmp_path: Path) -> None:
    es = {e.path: e for e in render.layer(tmp_path, ("wwclient",), {}, render.make_env(tmp_path), "test")}
    script = (es["warewulf/init.d/50-wwclient"].data or b"").decode()
    # Run it against a fake root: /warewulf/config sourced, a logging stand-in for wwclient.
    fake = tmp_path / "fake"
    (fake / "warewulf").mkdir(parents=True)
    (fake / "sbin").mkdir()
    (fake / "lib/systemd").mkdir(parents=True)
    (fake / "lib/systemd/systemd").write_text("")
    (fake / "sbin/init").symlink_to(fake / "lib/systemd/systemd")
    stand_in = fake / "wwclient"
    stand_in.write_text(f"#!/bin/sh\necho started > {fake}/started\n")
    stand_in.chmod(0o755)
    runnable = script.replace("/warewulf/config", f"{fake}/warewulf/config").replace(
        "/usr/sbin/wwclient", str(stand_in))
    (fake / "warewulf/config").write_text(f"WWINIT={fake}/sbin/init\n")
    subprocess.run(["/bin/sh", "-c", runnable], check=True, timeout=30)
    time.sleep(1)
    assert not (fake / "started").exists(), "started although systemd is the init"
    (fake / "warewulf/config").write_text("WWINIT=/sbin/busybox-init\n")
    subprocess.run(["/bin/sh", "-c", runnable], check=True, timeout=30)
    wait_for((fake / "started").exists, 30)


# --- secrets in output/ -----------------------------------------------------------------

def test_secret_archive_is_not_world_readable(tmp_path: Path) -> None:
    plain = [file("etc/motd", "hi")]
    secret = [*plain, file("etc/ssh/ssh_host_ed25519_key", "k", 0o600)]
    assert not is_secret(plain) and is_secret(secret)
    mode, gid = publish_mode(is_secret(secret))
    write_cpio(secret, tmp_path / "s.img.gz", mode=mode, gid=gid)
    st_ = (tmp_path / "s.img.gz").stat()
    assert not st_.st_mode & stat.S_IROTH
    if web_server_gid() is not None:
        assert (stat.S_IMODE(st_.st_mode), st_.st_gid) == (0o640, web_server_gid())
    assert publish_mode(False) == (0o644, None)


def test_state_file_records_what_was_installed(node: Node) -> None:
    node.publish([file("etc/a", "a"), symlink("etc/l", "a")])
    assert node.once().returncode == 0
    doc = json.loads((node.state / "state.json").read_text())
    assert doc["files"]["etc/a"]["sha256"] == hashlib.sha256(b"a").hexdigest()
    assert doc["files"]["etc/l"] == {"kind": "symlink", "target": "a", "mode": 0o777, "uid": 0, "gid": 0}
    assert doc["manifests"][wwclient.manifest_path(node.name)]["etag"]
