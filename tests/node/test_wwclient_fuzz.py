"""Hypothesis fuzz of wwclient's three inputs: manifests, HTTP responses, archives.

Every example asserts that no exception other than Rejected/Unavailable escaped,
that either all of the overlay or none of it was applied (the root is as before,
or it holds exactly what state.json says was installed), and that nothing was
written outside the root. A few hundred examples in all, in this process.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.lab.wwnode import GOOD, NODE, Raw, Site, Tree, cpio, record, snapshot
from toolchain.node import wwclient


def fuzz(n: int) -> settings:
    return settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck), database=None)
MANIFEST = "/" + wwclient.manifest_path(NODE)


@pytest.fixture(scope="module")
def site() -> Iterator[tuple[Site, Raw]]:
    s = Site()
    srv = Raw(s)
    try:
        yield s, srv
    finally:
        srv.close()


def check_poll(tree: Tree, base: str) -> bool:
    """Poll; True if applied. Asserts all or nothing, and nothing outside the root."""
    before, state = snapshot(tree.root), tree.state_bytes()
    around = sorted(p.name for p in tree.tmp.iterdir())
    try:
        tree.client(base, timeout=2).poll()
        applied = True
    except (wwclient.Rejected, wwclient.Unavailable):
        applied = False
    assert sorted(p.name for p in tree.tmp.iterdir()) == around or not state
    assert not any(tree.outside.iterdir()), "written outside the root"
    if not applied:
        assert snapshot(tree.root) == before, "partial apply"
        assert tree.state_bytes() == state
        return False
    installed = tree.installed()
    now = snapshot(tree.root)
    for path, entry in installed.items():
        mode, *_, body = now[path]  # every recorded entry is there, as recorded
        assert isinstance(mode, int)
        kind = {stat.S_IFDIR: "dir", stat.S_IFREG: "file", stat.S_IFLNK: "symlink"}[stat.S_IFMT(mode)]
        assert kind == entry["kind"] or (entry["kind"] == "dir" and kind == "symlink"), (path, entry)
        if isinstance(body, bytes) and kind == "file":
            assert hashlib.sha256(body).hexdigest() == entry["sha256"]
    return True


# --- the manifest parser ------------------------------------------------------------

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                               max_size=3), max_leaves=8)
LAYER = st.fixed_dictionaries({}, optional={
    "url": st.sampled_from(["shared/a.img.gz", "/etc/x", "a/../b", "a\ud800", "a b", "x" * 5000]) | JSON,
    "sha256": st.sampled_from(["0" * 64, "A" * 64, "0" * 63]) | JSON,
    "size": st.sampled_from([0, -1, 10**30, True, 1.5]) | JSON,
    "include": st.sampled_from(["groups/g.json", "../x"]) | JSON})
DOC = st.fixed_dictionaries({}, optional={
    "format": st.sampled_from([1, 1.0, True, "1", 2]), "node": st.sampled_from([NODE, "other", 1]),
    "interval": st.sampled_from([60, 0, 1e400, float("nan"), "60", 86401]) | JSON,
    "layers": st.lists(LAYER, max_size=3) | JSON, "setuid": st.lists(st.text(max_size=5), max_size=2) | JSON})


@fuzz(200)
@given(doc=DOC, ascii_only=st.booleans(), encoding=st.sampled_from(["utf-8", "utf-16", "latin-1"]),
       noise=st.binary(max_size=4))
def test_fuzz_manifest_parser(doc: dict[str, object], ascii_only: bool, encoding: str, noise: bytes) -> None:
    try:
        text = json.dumps(doc, ensure_ascii=ascii_only)
        data = text.encode(encoding, "surrogatepass") + noise
    except (ValueError, UnicodeEncodeError):
        return
    try:
        man = wwclient.parse_manifest(data, NODE)
    except wwclient.Rejected:
        return
    for layer in man.layers:
        assert not layer.url.startswith("/") and ".." not in layer.url.split("/")
        layer.url.encode("utf-8")  # no surrogate passes
    assert 1 <= man.interval <= 86400


# --- HTTP responses -------------------------------------------------------------------

STATUS = st.sampled_from(["HTTP/1.1 200 OK", "HTTP/1.0 200", "HTTP/1.1 304 Not Modified", "HTTP/1.1 404 X",
                          "HTTP/1.1 999 X", "HTTP/1.1 -1 X", "HTTP/1.1 99999999999999999999 X", "HTTP/2 200",
                          "garbage", "", "HTTP/1.1 200 OK\x00"])
HEADER_VALUE = st.sampled_from([
    "Mon, 01 Jan 2024 99999999999999999999:00:00 GMT", "Thu, 01 Jan 1970 00:00:00 GMT",
    "Mon, 01 Jan 2024 00:00:00 +9999", '"etag"', '"a\x01"', "\u00ff", "x" * 300, ""])
FRAMING = st.sampled_from(["length", "short-length", "long-length", "bad-length", "negative-length", "none",
                           "chunked", "bad-chunk", "huge-chunk", "negative-chunk", "unterminated-chunk"])


def frame(body: bytes, how: str) -> tuple[dict[str, str], bytes]:
    size = {"length": len(body), "short-length": max(0, len(body) - 3), "long-length": len(body) + 7}
    if how in size:
        return {"Content-Length": str(size[how])}, body
    if how in ("bad-length", "negative-length"):
        return {"Content-Length": "12x" if how == "bad-length" else "-5"}, body
    if how == "none":
        return {}, body
    first = {"chunked": b"%x" % len(body), "bad-chunk": b"zz", "huge-chunk": b"f" * 30,
             "negative-chunk": b"-5"}.get(how, b"%x" % len(body))
    tail = b"" if how == "unterminated-chunk" else b"\r\n0\r\n\r\n"
    return {"Transfer-Encoding": "chunked"}, first + b"\r\n" + body + tail


@fuzz(80)
@given(status=STATUS, headers=st.dictionaries(st.sampled_from(["Date", "ETag", "Last-Modified", "X-A"]),
                                              HEADER_VALUE, max_size=4),
       framing=FRAMING, layer_too=st.booleans())
def test_fuzz_http_responses(status: str, headers: dict[str, str], framing: str, layer_too: bool,
                             site: tuple[Site, Raw]) -> None:
    s, srv = site
    with tempfile.TemporaryDirectory() as tmp:
        tree = Tree(Path(tmp))
        s.files.clear()
        s.raw.clear()
        s.publish(tree.tmp, GOOD)
        target = next(p for p in s.files if p != MANIFEST) if layer_too else MANIFEST
        extra, body = frame(s.files[target], framing)
        lines = "".join(f"{k}: {v}\r\n" for k, v in {**headers, **extra}.items())
        s.raw[target] = f"{status}\r\n{lines}Connection: close\r\n\r\n".encode("latin-1") + body
        if check_poll(tree, srv.base):
            assert (tree.root / "etc/motd").read_text() == "v1\n"  # all of it


# --- archives ---------------------------------------------------------------------------

def newc(entries: list[tuple[bytes, int, bytes, int]]) -> bytes:
    """A raw cpio newc archive: (name, mode, data, nlink) each, whatever they are."""
    out = bytearray()
    for ino, (name, mode, data, nlink) in enumerate([*entries, (b"TRAILER!!!", 0, b"", 1)], 1):
        fields = [ino if nlink == 1 else 7, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0]
        out += b"070701" + b"".join(b"%08x" % f for f in fields) + name + b"\0"
        out += b"\0" * (-len(out) % 4) + data
        out += b"\0" * (-len(out) % 4)
    return bytes(out)


PARTS = ["etc", "lnk", "a", "b", "..", ".", "", "é" * 128, "x" * 256, "d/" * 3]
NAMES = (st.lists(st.sampled_from(PARTS), min_size=1, max_size=4).map(lambda ps: "/".join(ps).encode())
         | st.binary(min_size=1, max_size=6))
MODES = st.sampled_from([stat.S_IFREG | 0o644, stat.S_IFDIR | 0o755, stat.S_IFLNK | 0o777,
                         stat.S_IFIFO | 0o644, stat.S_IFREG | 0o4755, stat.S_IFCHR | 0o600, 0o644])
TARGETS = st.sampled_from([b"..", b"../..", b"/", b"a", b"../outside", b"/etc", b"lnk/x", b"", b"\xff"])
ENTRY = st.tuples(NAMES, MODES, st.binary(max_size=16) | TARGETS, st.sampled_from([1, 1, 2]))


@fuzz(100)
@given(entries=st.lists(ENTRY, max_size=6), squeeze=st.sampled_from(["gzip", "none", "cut", "flip"]),
       pos=st.integers(min_value=0))
def test_fuzz_archives(entries: list[tuple[bytes, int, bytes, int]], squeeze: str, pos: int,
                       site: tuple[Site, Raw]) -> None:
    s, srv = site
    with tempfile.TemporaryDirectory() as tmp:
        tree = Tree(Path(tmp))
        (tree.root / "etc").mkdir()
        (tree.root / "lnk").symlink_to("../outside")  # on the node already, leading out
        s.files.clear()
        s.raw.clear()
        good = cpio(tree.tmp, GOOD)
        data = newc(entries)
        if squeeze == "cut":
            data = data[:pos % (len(data) + 1)]
        elif squeeze == "flip":
            flipped = bytearray(data)
            flipped[pos % len(flipped)] ^= 0x5A
            data = bytes(flipped)
        if squeeze != "none":
            data = gzip.compress(data, mtime=0)
        s.files.update({"/shared/good.img.gz": good, "/shared/bad.img.gz": data})
        s.files[MANIFEST] = json.dumps({"format": 1, "node": NODE, "layers": [
            record("shared/good.img.gz", good), record("shared/bad.img.gz", data)]}).encode()
        if check_poll(tree, srv.base):
            assert (tree.root / "etc/motd").exists() or "etc/motd" not in tree.installed()
        installed = tree.installed() if tree.state_bytes() else {}
        assert "lnk" in installed or os.readlink(tree.root / "lnk") == "../outside"
