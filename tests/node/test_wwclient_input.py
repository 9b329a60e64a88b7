"""wwclient on any input: all or nothing, checked before the first write, never down for good.

Most cases run wwclient in this process (Client.poll) against `Raw` (tests.lab.wwnode),
a loopback server answering with bytes the test chooses (bad dates, validators, trickles).
Refusals assert the same things: nothing written, state.json untouched, one `rejected:`
line, and nothing outside the root.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.httpd import file, folder, symlink
from tests.lab.wwnode import (
    GOOD,
    NODE,
    WWCLIENT,
    Site,
    Tree,
    cpio,
    raw,
    record,
    response,
    snapshot,
    wait_for,
)
from toolchain.archive import Compression
from toolchain.node import wwclient


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return Tree(tmp_path)


def assert_refused(tree: Tree, site: Site, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Apply GOOD, then what `site` serves now must be refused with nothing written."""
    with raw(site) as srv:
        before, state = snapshot(tree.root), tree.state_bytes()
        capsys.readouterr()
        assert wwclient.run(wwclient.Options(srv.base, NODE, str(tree.root), str(tree.state),
                                             timeout=5), once=True) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("wwclient: rejected: ") and message in lines[0], lines
    assert snapshot(tree.root) == before, "written although refused"
    assert tree.state_bytes() == state
    assert not any(tree.outside.iterdir())


def good_first(tree: Tree, site: Site) -> None:
    site.publish(tree.tmp, GOOD)
    with raw(site) as srv:
        assert tree.client(srv.base).poll().fetched
    assert (tree.root / "etc/motd").read_text() == "v1\n"


# --- 1. everything is checked before the first write -----------------------------------

def test_lone_surrogate_in_a_layer_url_is_rejected(tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    site = Site()
    good_first(tree, site)
    doc = {"format": 1, "node": NODE, "layers": [{"url": "shared/x\ud800", "sha256": "0" * 64, "size": 1}]}
    site.files["/" + wwclient.manifest_path(NODE)] = json.dumps(doc).encode()  # \ud800 escaped
    assert_refused(tree, site, "not valid Unicode", capsys)


def test_utf16_manifest_is_rejected(tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    site = Site()
    good_first(tree, site)
    site.publish(tree.tmp, [folder("etc"), file("etc/motd", "hostile\n")])
    path = "/" + wwclient.manifest_path(NODE)
    site.files[path] = site.files[path].decode().encode("utf-16")
    assert_refused(tree, site, "manifest is not JSON", capsys)


@pytest.mark.parametrize("name", ["n" * 256, "é" * 128])
def test_a_name_over_name_max_bytes_is_rejected(name: str, tree: Tree,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    site = Site()
    good_first(tree, site)
    # The first file is fine and sorts first: it must not be written either.
    site.publish(tree.tmp, [folder("etc"), file("etc/motd", "v2\n"), file(f"etc/{name}", "x")])
    assert_refused(tree, site, "longer than 255 bytes", capsys)


def test_a_path_over_path_max_creates_no_directory(tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    site = Site()
    good_first(tree, site)
    deep = "/".join(["d"] * 2040)  # fits a cpio name (4096), not PATH_MAX once under the root
    site.publish(tree.tmp, [folder("etc"), file("etc/motd", "v2\n"), file(f"{deep}/f", "x")])
    assert_refused(tree, site, "longer than 4095 bytes", capsys)


def test_a_252_byte_utf8_name_installs(tree: Tree) -> None:
    name = "€" * 84  # 252 bytes, 84 characters
    assert len(name.encode()) == 252
    site = Site()
    site.publish(tree.tmp, [folder("etc"), file(f"etc/{name}", "long\n")])
    with raw(site) as srv:
        assert tree.client(srv.base).poll().changes == 2
    assert (tree.root / "etc" / name).read_text() == "long\n"


@pytest.mark.parametrize("date", ["Mon, 01 Jan 2024 99999999999999999999:00:00 GMT",
                                  "Mon, 99 Foo 99999999999999999999 00:00:00 GMT", "\x00", ""])
def test_a_date_that_does_not_parse_means_ask_in_full(date: str, tree: Tree) -> None:
    site = Site()
    site.publish(tree.tmp, GOOD)
    path = "/" + wwclient.manifest_path(NODE)
    site.raw[path] = response(site.files[path], Date=date, ETag='"e1"',
                              Last_Modified="Mon, 01 Jan 2024 00:00:00 GMT")
    with raw(site) as srv:
        assert tree.client(srv.base).poll().fetched
    saved = json.loads(tree.state_bytes())["manifests"][path[1:]]
    assert saved["etag"] == "" and saved["last_modified"] == ""  # not trusted: the next poll gets a 200
    assert (tree.root / "etc/motd").read_text() == "v1\n"


@pytest.mark.parametrize("etag", ['"a\x01b"', '"' + "x" * 300 + '"'])
def test_a_validator_that_cannot_be_sent_back_is_rejected(etag: str, tree: Tree,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    site = Site()
    good_first(tree, site)
    site.publish(tree.tmp, [folder("etc"), file("etc/motd", "v2\n")])
    path = "/" + wwclient.manifest_path(NODE)
    site.raw[path] = response(site.files[path], ETag=etag)
    assert_refused(tree, site, "etag header", capsys)


def test_http_date() -> None:
    assert wwclient.http_date("Thu, 01 Jan 1970 00:01:00 GMT") == 60.0
    assert wwclient.http_date("Thu, 01 Jan 1970 02:00:00 +0100") == 3600.0
    assert wwclient.http_date("Thu, 01 Jan 1970 25:00:00 GMT") is None


# --- 2. state stays true -------------------------------------------------------------

def test_an_interrupted_apply_is_retried(tree: Tree, monkeypatch: pytest.MonkeyPatch) -> None:
    site = Site()
    good_first(tree, site)
    site.publish(tree.tmp, [folder("etc"), file("etc/motd", "v2\n"), file("etc/new", "n\n")])
    real = wwclient._Files.__call__

    def crash(self: wwclient._Files, chunk: bytes | None) -> None:
        if chunk is None and any(it.path == "etc/new" for *_, it, _ in self.open):
            raise KeyboardInterrupt  # as if the node lost power mid-apply
        real(self, chunk)

    monkeypatch.setattr(wwclient._Files, "__call__", crash)
    with raw(site) as srv, pytest.raises(KeyboardInterrupt):
        tree.client(srv.base).poll()
    doc = json.loads(tree.state_bytes())
    assert doc["manifests"] == {}  # the next poll asks in full
    assert "etc/new" in doc["files"]  # and whatever the apply may have put there is tracked
    assert not (tree.root / "etc/new").exists()
    monkeypatch.setattr(wwclient._Files, "__call__", real)
    with raw(site) as srv:
        res = tree.client(srv.base).poll()
    assert res.fetched and (tree.root / "etc/new").read_text() == "n\n"
    assert not list(tree.root.rglob(".*wwclient-*")), "temporary files left behind"


# --- 3. an earlier poll's symlink never redirects a later write --------------------------

@pytest.mark.parametrize("as_dir", [False, True])
def test_symlink_then_a_file_through_it_over_two_polls(as_dir: bool, tree: Tree) -> None:
    site = Site()
    site.publish(tree.tmp, [folder("etc"), file("etc/motd", "v1\n"), symlink("var/lib/app", "../../etc")])
    with raw(site) as srv:
        tree.client(srv.base).poll()
        assert (tree.root / "var/lib/app").is_symlink()
        second = [folder("etc"), file("etc/motd", "v1\n"), file("var/lib/app/secret", "s\n")]
        site.publish(tree.tmp, [*([folder("var/lib/app")] if as_dir else []), *second])
        tree.client(srv.base).poll()
        app = tree.root / "var/lib/app"
        assert not app.is_symlink() and app.is_dir()
        assert (app / "secret").read_text() == "s\n"
        assert not (tree.root / "etc/secret").exists(), "written through the old symlink"
        site.publish(tree.tmp, [folder("etc"), file("etc/motd", "v1\n")])
        tree.client(srv.base).poll()
    assert not (tree.root / "var/lib/app/secret").exists(), "the file was left untracked"


def test_walk_refuses_a_symlink_swapped_in(tree: Tree) -> None:
    (tree.root / "a").mkdir()
    fd = os.open(tree.root, os.O_DIRECTORY)
    try:
        found = wwclient.walk(fd, "a", create=False)
        assert found is not None and found[1] == "a"
        os.close(found[0])
        (tree.root / "a").rmdir()
        (tree.root / "a").symlink_to("../outside")
        with pytest.raises(wwclient.Rejected, match=r"outside|not a directory"):
            wwclient.walk(fd, "a/x", create=True)
        assert not any(tree.outside.iterdir())
    finally:
        os.close(fd)


# --- 4. deadline and memory -----------------------------------------------------------

def trickle(head: bytes, total: int) -> Iterator[bytes]:
    yield head
    for _ in range(total):
        time.sleep(0.05)
        yield b"x"


@pytest.mark.parametrize("where", ["body", "header"])
def test_a_trickle_ends_at_the_deadline(where: str, tree: Tree) -> None:
    total = 20000  # 1000 s at this pace
    head = (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total if where == "body"
            else b"HTTP/1.1 200 OK\r\nX-Long: ")
    with raw(lambda _: trickle(head, total)) as srv:
        http = wwclient.Http(srv.base, timeout=0.2)  # each byte comes well within the timeout
        with pytest.raises(wwclient.Unavailable, match="deadline of 2 s passed"):
            http.get("nodes/n01/runtime.json")
        wait_for(lambda: srv.sent > 0, 10)
    assert srv.sent < total // 10, srv.sent  # it stopped, not the server


def test_layers_stream_instead_of_sitting_in_memory(tree: Tree) -> None:
    size = 48 << 20
    site = Site()
    site.publish(tree.tmp, [folder("opt"), file("opt/big", b"\0" * size)])
    with raw(site) as srv:
        client = tree.client(srv.base)
        tracemalloc.start()
        try:
            client.poll()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert (tree.root / "opt/big").stat().st_size == size
    assert peak < size // 8, f"peak {peak} bytes for a {size}-byte layer"


# --- 5. zstd -------------------------------------------------------------------------

def test_zstd_layer_uses_the_node_zstd(tree: Tree) -> None:
    if not any((Path(d) / "zstd").exists() for d in os.environ.get("PATH", "").split(":")):
        pytest.fail("the zstd program is a test dependency (apt: zstd)")
    data = cpio(tree.tmp, [folder("etc"), file("etc/z", "zstd\n")], Compression.ZSTD)
    site = Site()
    site.files["/shared/z.img.zst"] = data
    site.files["/" + wwclient.manifest_path(NODE)] = json.dumps(
        {"format": 1, "node": NODE, "layers": [record("shared/z.img.zst", data)]}).encode()
    with raw(site) as srv:
        assert tree.client(srv.base).poll().changes == 2
    assert (tree.root / "etc/z").read_text() == "zstd\n"


# --- 6. the daemon never exits on bad input -------------------------------------------------

def test_daemon_backs_off_on_bad_input_and_recovers(tree: Tree) -> None:
    site = Site()
    site.files["/" + wwclient.manifest_path(NODE)] = b'{"format": 1, "node": "n01", "layers": 7}'
    log = tree.tmp / "wwclient.log"
    with raw(site) as srv, log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-I", str(WWCLIENT), "--base", srv.base, "--node", NODE,
                                 "--root", str(tree.root), "--state", str(tree.state),
                                 "--retry-min", "0.05", "--retry-max", "0.2"], stderr=err)
        try:
            wait_for(lambda: log.read_text().count("same error again") >= 3, 60)
            assert proc.poll() is None, "the daemon exited"
            site.publish(tree.tmp, GOOD)
            wait_for(lambda: f"overlay of {NODE} applied" in log.read_text(), 60)
        finally:
            proc.terminate()
            assert proc.wait(timeout=30) == 0
    text = log.read_text()
    assert text.count("manifest has no layers list") == 1, text  # why, once
    assert (tree.root / "etc/motd").read_text() == "v1\n"
    assert stat.S_ISDIR((tree.root / "etc").stat().st_mode)
