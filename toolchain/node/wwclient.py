#!/usr/bin/env python3
"""wwclient: keep a wwstatic node's runtime overlay current, safely.

The build publishes, per node, `nodes/<node>/runtime.json` (setuid: paths allowed setuid bits):
    {"format": 1, "node": "n01", "interval": 60, "setuid": ["usr/bin/ping"], "layers": [
     {"include": "groups/<group>.json"}, {"url": "nodes/n01/<digest>.img.gz", "sha256": "<hex>", "size": 1}]}
An `include` names a group's manifest, {"format": 1, "layers": [...]}, whose layers
take its place. wwclient polls them with conditional GETs (304s when unchanged),
streams new layers to its cache, checks size and sha256, reads them (gzip, or zstd
through the node's `zstd`; cpio newc parsed here), checks every entry, and only
then applies the result with temp + rename, reading each layer again. Files the
new version dropped are removed. Anything wrong: nothing is applied.
Copied to nodes by the `wwclient` overlay: standard library only.
"""

from __future__ import annotations

import argparse
import calendar
import contextlib
import dataclasses
import gzip
import hashlib
import http.client
import json
import os
import random
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import parsedate_tz
from typing import Any
from urllib.parse import quote, urlsplit

MANIFEST_FORMAT = 1
MAX_MANIFEST = 1 << 20
MAX_NAME = 4096
NAME_MAX = 255              # bytes in one path component (Linux)
PATH_MAX = 4096             # bytes in a whole path, NUL included
CHUNK = 1 << 16
MAX_SYMLINKS = 40
STATE_FORMAT = 1
TEMP_MARK = ".wwclient-"
SPECIAL_BITS = stat.S_ISUID | stat.S_ISGID

def manifest_path(node: str) -> str:
    """Where the build publishes a node's manifest, relative to the HTTP base."""
    return f"nodes/{node}/runtime.json"

def log(msg: str) -> None:
    # One line per event on stderr: journald (or the console) records it.
    print(f"wwclient: {msg}", file=sys.stderr, flush=True)

class Rejected(Exception):
    """The manifest or an archive is not acceptable: nothing is applied."""

class Unavailable(Exception):
    """The server did not answer usefully (down, error status, timeout)."""

# --- manifest -------------------------------------------------------------------
@dataclass(frozen=True)
class Layer:
    url: str
    sha256: str
    size: int

@dataclass(frozen=True)
class Include:
    url: str

@dataclass(frozen=True)
class Manifest:
    node: str
    interval: float
    layers: tuple[Layer | Include, ...]
    setuid: frozenset[str]

def _is_hex64(v: object) -> bool:
    return isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v)

def _check_url(url: object) -> str:
    # Layers are files of the same static tree: a relative path, nothing else.
    if not isinstance(url, str) or not url or url.startswith("/") or "\\" in url or len(url) > MAX_NAME:
        raise Rejected(f"manifest: layer url {str(url)[:80]!r} is not a relative path")
    if urlsplit(url).scheme or urlsplit(url).netloc or "?" in url or "#" in url:
        raise Rejected(f"manifest: layer url {url!r} must be a path under the base URL")
    if any(p in ("", ".", "..") for p in url.split("/")):
        raise Rejected(f"manifest: layer url {url!r} has an empty, `.` or `..` component")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise Rejected(f"manifest: layer url {url!r} has a control character or space")
    return url

def _check_text(doc: object) -> None:
    # JSON may spell lone surrogates (\ud800): text that cannot be UTF-8 is refused here,
    # not when it is quoted into a URL or saved in state.json after the apply.
    try:
        json.dumps(doc, ensure_ascii=False).encode()
    except UnicodeEncodeError as exc:
        raise Rejected(f"manifest: {exc.object[exc.start:exc.end]!r} is not valid Unicode") from None

def _load(data: bytes) -> dict[str, Any]:
    try:
        # json.loads(bytes) would guess UTF-16/32; the build writes UTF-8, nothing else.
        doc = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise Rejected(f"manifest is not JSON: {exc}") from None
    except RecursionError:
        # json.loads recurses once per bracket: a hostile manifest must not end wwclient.
        raise Rejected("manifest is nested too deeply") from None
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT or isinstance(doc["format"], bool):
        raise Rejected(f"manifest format is not {MANIFEST_FORMAT}")
    _check_text(doc)
    return doc

def _layers(doc: dict[str, Any], includes: bool) -> list[Layer | Include]:
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise Rejected("manifest has no layers list")
    out: list[Layer | Include] = []
    for item in layers:
        if not isinstance(item, dict):
            raise Rejected("manifest: a layer is not an object")
        if "include" in item:
            if not includes:
                raise Rejected("manifest: an included manifest may not include another")
            out.append(Include(_check_url(item["include"])))
            continue
        size = item.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise Rejected(f"manifest: layer size {size!r} is not a byte count")
        if not _is_hex64(item.get("sha256")):
            raise Rejected(f"manifest: layer sha256 {item.get('sha256')!r} is not 64 lower-case hex digits")
        out.append(Layer(_check_url(item.get("url")), item["sha256"], size))
    return out

def parse_included(data: bytes) -> list[Layer]:
    """The layers of a manifest a node's manifest includes (a group's)."""
    return [layer for layer in _layers(_load(data), includes=False) if isinstance(layer, Layer)]

def parse_manifest(data: bytes, node: str) -> Manifest:
    doc = _load(data)
    if doc.get("node") != node:
        raise Rejected(f"manifest is for node {doc.get('node')!r}, not {node!r}")
    interval = doc.get("interval", 60)
    if isinstance(interval, bool) or not isinstance(interval, int | float) or not 1 <= interval <= 86400:
        raise Rejected(f"manifest interval {interval!r} is not 1..86400 seconds")
    out = _layers(doc, includes=True)
    setuid = doc.get("setuid", [])
    if not isinstance(setuid, list) or not all(isinstance(p, str) and len(p) <= PATH_MAX for p in setuid):
        raise Rejected("manifest: setuid must be a list of paths")
    return Manifest(node, float(interval), tuple(out), frozenset(p.strip("/") for p in setuid))

# --- HTTP -----------------------------------------------------------------------
def http_date(value: str) -> float | None:
    """Seconds since the epoch of an HTTP date, or None (fields range-checked: no overflow)."""
    t = parsedate_tz(value) if len(value) < 64 else None
    if t is None:
        return None
    year, month, day, hour, minute, sec = t[:6]
    if not (1970 <= year <= 9999 and 1 <= month <= 12 and 1 <= day <= 31 and 0 <= hour <= 23
            and 0 <= minute <= 59 and 0 <= sec <= 60 and abs(t[9] or 0) <= 86400):
        return None
    return float(calendar.timegm((year, month, day, hour, minute, sec)) - (t[9] or 0))

@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

@dataclass(frozen=True)
class Http:
    base: str                       # http[s]://host[:port][/prefix]
    timeout: float = 30.0           # per connect/read
    source: str | None = None       # local address to bind (tests, load runs)

    def get(self, rel: str, headers: dict[str, str] | None = None, limit: int = MAX_MANIFEST,
            sink: Callable[[bytes], None] | None = None) -> Response:
        """GET base/rel, the body kept (up to `limit` bytes) or streamed to `sink`; Unavailable on
        network trouble or a 5xx. A watchdog shuts the socket at the deadline: no trickle holds it."""
        url = urlsplit(self.base)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise Unavailable(f"base URL {self.base!r} is not http(s)://host")
        path = url.path.rstrip("/") + "/" + quote(rel)
        cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        src = (self.source, 0) if self.source else None
        conn = cls(url.hostname, url.port, timeout=self.timeout, source_address=src)
        expired = threading.Event()

        def cut() -> None:
            expired.set()
            with contextlib.suppress(OSError, AttributeError):
                conn.sock.shutdown(socket.SHUT_RDWR)

        deadline = 10 * self.timeout  # for the whole request
        (watchdog := threading.Timer(deadline, cut)).start()
        body = bytearray()
        try:
            conn.request("GET", path, headers={"User-Agent": "wwclient", **(headers or {})})
            resp = conn.getresponse()
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
            got = 0
            while not expired.is_set():
                chunk = resp.read1(CHUNK)  # one recv: the watchdog is seen between reads
                if not chunk:
                    break
                if (got := got + len(chunk)) > limit:
                    raise Rejected(f"GET {path}: more than {limit} bytes")
                if sink is not None and resp.status == 200:
                    sink(chunk)
                else:
                    body += chunk
        except (OSError, ValueError, http.client.HTTPException) as exc:
            if not expired.is_set():  # ValueError: http.client's answer to a bad chunk size
                raise Unavailable(f"GET {path}: {type(exc).__name__}: {exc}") from None
        finally:
            watchdog.cancel()
            conn.close()
        if expired.is_set():
            raise Unavailable(f"GET {path}: deadline of {deadline:g} s passed")
        if resp.status >= 500:
            raise Unavailable(f"GET {path}: HTTP {resp.status}")
        for key in ("etag", "last-modified"):  # saved in state.json and sent back: printable ASCII
            if len(v := hdrs.get(key, "")) > 200 or any(not 0x20 <= ord(c) < 0x7F for c in v):
                raise Rejected(f"GET {path}: {key} header {v[:60]!r} is not printable ASCII")
        return Response(resp.status, hdrs, bytes(body))

# --- archives -------------------------------------------------------------------
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
KINDS = {stat.S_IFDIR: "dir", stat.S_IFREG: "file", stat.S_IFLNK: "symlink", stat.S_IFCHR: "character device",
         stat.S_IFBLK: "block device", stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket"}

@dataclass(frozen=True)
class Item:
    path: str        # relative, normalised, no leading slash
    kind: str        # "dir", "file", "symlink"
    mode: int        # permission bits (with setuid/setgid/sticky)
    uid: int
    gid: int
    size: int = 0
    sha256: str = ""                 # a file's content
    target: str = ""                 # a symlink's target
    ref: tuple[int, int] = (0, 0)    # (layer, entry) whose bytes a file has: read again to apply

    def record(self) -> dict[str, Any]:
        """What state.json keeps of an installed entry."""
        extra = {"file": {"sha256": self.sha256}, "symlink": {"target": self.target}}.get(self.kind, {})
        return {"kind": self.kind, "mode": self.mode, "uid": self.uid, "gid": self.gid, **extra}

def _gunzip(f: Any) -> Iterator[bytes]:
    # GzipFile reads concatenated members and skips NUL padding, a chunk at a time.
    try:
        with gzip.GzipFile(fileobj=f) as g:
            while chunk := g.read1(CHUNK):
                yield chunk
    except EOFError:
        raise Rejected("truncated gzip stream") from None
    except (OSError, zlib.error) as exc:
        raise Rejected(f"corrupt gzip data: {exc}") from None

def _unzstd(path: str) -> Iterator[bytes]:
    exe = shutil.which("zstd")
    if exe is None:
        raise Rejected("layer is zstd-compressed and this image has no `zstd` program (Python has no "
                       "zstd): add zstd to the image or publish runtime overlays gzip-compressed")
    # Leaving early closes the pipe: zstd ends on EPIPE and the context manager reaps it.
    with subprocess.Popen([exe, "-dcq", "--", path], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        while chunk := proc.stdout.read(CHUNK):
            yield chunk
        if proc.wait() != 0:
            err = proc.stderr.read(4096).decode(errors="replace").strip()
            raise Rejected(f"zstd could not read the layer: {err or proc.returncode}")

def unpacked(path: str, limit: int) -> Iterator[bytes]:
    """A layer file's cpio bytes, chunk by chunk: never more than `limit`, never all at once."""
    with open(path, "rb") as f:
        head = f.read(6)
        f.seek(0)
        if head[:4] == ZSTD_MAGIC:
            chunks = _unzstd(path)
        elif head in (b"070701", b"070702"):
            chunks = (c for c in iter(lambda: f.read(CHUNK), b""))  # an uncompressed cpio archive
        elif head[:2] == b"\x1f\x8b":
            chunks = _gunzip(f)
        else:
            raise Rejected("layer is neither gzip, zstd nor cpio")
        total = 0
        with contextlib.closing(chunks):  # type: ignore[type-var]  # generators all
            for chunk in chunks:
                total += len(chunk)
                if total > limit:
                    raise Rejected(f"layer unpacks to more than {limit} bytes")
                yield chunk

class Stream:
    """Exact reads over chunks, with the offset (cpio aligns to it)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks, self.buf, self.offset = chunks, b"", 0

    def take(self, n: int) -> bytes:
        parts: list[bytes] = []
        self.pipe(n, parts.append)
        return b"".join(parts)

    def pipe(self, n: int, sink: Callable[[bytes], None]) -> int:
        left = n
        while left:
            if not self.buf:
                self.buf = next(self.chunks, b"")
                if not self.buf:
                    break
            part, self.buf = self.buf[:left], self.buf[left:]
            sink(part)
            left -= len(part)
            self.offset += len(part)
        return n - left

def clean_path(name: str) -> str:
    """The normalised relative path of an archive entry ("" for the root itself)."""
    if "\0" in name:
        raise Rejected(f"entry {name!r}: NUL in the name")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise Rejected(f"entry {name!r}: control character in the name")
    if name.startswith("/"):
        raise Rejected(f"entry {name!r}: absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise Rejected(f"entry {name!r}: `..` in the path")
    if any(len(p.encode("utf-8", "surrogatepass")) > NAME_MAX for p in parts):
        raise Rejected(f"entry {name[:80]!r}...: a name is longer than {NAME_MAX} bytes")
    return "/".join(parts)

def _utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected(f"{what} is not UTF-8") from None

Sink = Callable[[bytes | None], None]

def scan_cpio(s: Stream, layer: int, want: Callable[[int], Sink | None] | None = None) -> list[Item]:
    """Read cpio newc (one archive or several concatenated), checking every bound. Without `want`
    file contents are hashed; with it, the bytes of entry i go to want(i), then None."""
    items: list[Item] = []
    links: dict[tuple[int, int, int], list[int]] = {}
    index = -1
    while True:
        pos = s.offset
        first = s.take(1)
        if not first:
            break
        if first == b"\0":  # padding between concatenated archives
            continue
        head = first + s.take(109)
        if len(head) < 110:
            raise Rejected(f"cpio: truncated header at offset {pos}")
        if head[:6] not in (b"070701", b"070702"):
            raise Rejected(f"cpio: bad magic {head[:6]!r} at offset {pos} (only newc is supported)")
        try:
            f = [int(head[6 + 8 * i: 14 + 8 * i], 16) for i in range(13)]
        except ValueError:
            raise Rejected(f"cpio: header at offset {pos} is not hex") from None
        ino, mode, uid, gid, nlink, _mtime, size, dmaj, dmin, _rmaj, _rmin, namesize, _chk = f
        if not 1 <= namesize <= MAX_NAME:
            raise Rejected(f"cpio: name size {namesize} at offset {pos}")
        raw = s.take(namesize)
        s.take(-s.offset % 4)
        if len(raw) < namesize:
            raise Rejected(f"cpio: entry at offset {pos} runs past the end of the archive")
        if raw[-1:] != b"\0" or b"\0" in raw[:-1]:
            raise Rejected(f"cpio: name at offset {pos} is not one NUL-terminated string")
        name = _utf8(raw[:-1], f"cpio: name at offset {pos}")
        index += 1
        kind = "trailer" if name == "TRAILER!!!" else KINDS.get(stat.S_IFMT(mode), f"type {mode:o}")
        if kind not in ("dir", "file", "symlink", "trailer"):
            raise Rejected(f"entry {name!r}: {kind} not allowed")
        path = "" if kind == "trailer" else clean_path(name)
        h, target = hashlib.sha256(), b""
        if kind == "symlink" and size >= PATH_MAX:
            raise Rejected(f"entry {name!r}: symlink target of {size} bytes")
        if kind == "symlink":
            target = s.take(size)
            got = len(target)
        else:
            sink = want(index) if want is not None and kind == "file" else None
            got = s.pipe(size, sink if sink is not None else h.update if want is None else lambda _: None)
            if sink is not None and got == size:
                sink(None)
        if got < size:
            raise Rejected(f"cpio: entry at offset {pos} runs past the end of the archive")
        s.take(-s.offset % 4)
        if kind == "trailer" or not path:
            continue  # the archive's root directory: `/` itself is never touched
        if kind == "symlink" and (not target or b"\0" in target):
            raise Rejected(f"entry {name!r}: empty symlink target or NUL in it")
        text = _utf8(target, f"entry {name!r}: symlink target")
        if kind == "file" and nlink > 1:
            links.setdefault((ino, dmaj, dmin), []).append(len(items))
        digest = h.hexdigest() if kind == "file" else ""
        items.append(Item(path, kind, mode & 0o7777, uid, gid, size, digest, text, (layer, index)))
    # newc hard links: one member carries the data (the first for libarchive, the
    # last for GNU cpio). Every member gets it; they are written as separate files.
    for members in links.values():
        carriers = {(items[i].sha256, items[i].ref) for i in members if items[i].size}
        if len({c[0] for c in carriers}) > 1:
            raise Rejected(f"cpio: hard links to {items[members[0]].path} carry different data")
        if carriers:
            digest, ref = carriers.pop()
            size = next(items[i].size for i in members if items[i].size)
            for i in members:
                items[i] = dataclasses.replace(items[i], size=size, sha256=digest, ref=ref)
    return items

def parse_cpio(buf: bytes) -> list[Item]:
    """scan_cpio() of an archive in memory (tests, small tools)."""
    return scan_cpio(Stream(iter([buf])), 0)

def merge(layers: list[list[Item]], setuid: frozenset[str]) -> dict[str, Item]:
    """The final file set (later entries win), checked as a whole."""
    final: dict[str, Item] = {}
    for items in layers:
        for it in items:
            final[it.path] = it
    for path, it in final.items():
        if it.mode & SPECIAL_BITS and it.kind == "file" and path not in setuid:
            raise Rejected(f"entry {path}: setuid/setgid bit ({it.mode:04o}) not declared in the manifest")
        parts = path.split("/")
        for i in range(1, len(parts)):
            parent = final.get("/".join(parts[:i]))
            if parent is not None and parent.kind != "dir":
                raise Rejected(f"entry {path}: goes through {parent.path}, which is a {parent.kind}")
    return final

# --- the target tree --------------------------------------------------------------
def _lstat_at(dfd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return None

def _open_dir(dfd: int, name: str) -> int:
    return os.open(name, os.O_DIRECTORY | os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dfd)

def walk(root_fd: int, rel: str, create: bool, gone: frozenset[str] = frozenset()) -> tuple[int, str] | None:
    """An fd of the directory `rel` names under the root and its real path there (None: missing).
    Symlinks are followed as if the root were `/` (merged /usr), never above it. Each step opens
    one component from the last one's fd with O_NOFOLLOW: a symlink swapped in meanwhile fails the
    walk. Paths in `gone` (links to be removed) count as missing."""
    todo = [p for p in rel.split("/") if p]
    stack = [os.dup(root_fd)]
    cur: list[str] = []
    hops = 0
    try:
        while todo:
            comp = todo.pop(0)
            if comp in ("", "."):
                continue
            if comp == "..":
                if not cur:
                    raise Rejected(f"{rel}: a symlink on the way leads outside the root")
                os.close(stack.pop())
                cur.pop()
                continue
            st = None if "/".join([*cur, comp]) in gone else _lstat_at(stack[-1], comp)
            if st is None:
                if not create:
                    depth = len(cur) + 1
                    for c in todo:  # what is left must stay inside root too
                        depth += -1 if c == ".." else 0 if c in ("", ".") else 1
                        if depth < 0:
                            raise Rejected(f"{rel}: a symlink on the way leads outside the root")
                    return None
                os.mkdir(comp, 0o755, dir_fd=stack[-1])
            elif stat.S_ISLNK(st.st_mode):
                hops += 1
                if hops > MAX_SYMLINKS:
                    raise Rejected(f"{rel}: too many symlinks")
                target = os.readlink(comp, dir_fd=stack[-1])
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                    cur = []
                todo = target.split("/") + todo
                continue
            elif not stat.S_ISDIR(st.st_mode):
                raise Rejected(f"{rel}: /{'/'.join([*cur, comp])} is not a directory")
            stack.append(_open_dir(stack[-1], comp))
            cur.append(comp)
        return stack.pop(), "/".join(cur)
    finally:
        for fd in stack:
            os.close(fd)

@contextlib.contextmanager
def at(root_fd: int, rel: str, create: bool = False, gone: frozenset[str] = frozenset()
       ) -> Iterator[tuple[int, str] | None]:
    """walk(), its fd closed afterwards."""
    found = walk(root_fd, rel, create, gone)
    try:
        yield found
    finally:
        if found is not None:
            os.close(found[0])

@contextlib.contextmanager
def parent_of(root_fd: int, path: str) -> Iterator[tuple[int, str, str]]:
    """(fd, real path, name) of an entry's parent, made if missing."""
    parent, _, name = path.rpartition("/")
    with at(root_fd, parent, create=True) as found:
        assert found is not None
        yield found[0], found[1], name

def _same(st: os.stat_result | None, it: Item, dfd: int, name: str, owners: bool) -> bool:
    if st is None:
        return False
    if owners and (st.st_uid, st.st_gid) != (it.uid, it.gid):
        return False
    if it.kind == "symlink":
        return stat.S_ISLNK(st.st_mode) and os.readlink(name, dir_fd=dfd) == it.target
    if it.kind == "dir":
        if stat.S_ISLNK(st.st_mode):
            return True  # a symlink to a directory inside root, not ours, kept (merged /usr)
        return stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == it.mode
    if not stat.S_ISREG(st.st_mode) or st.st_size != it.size or stat.S_IMODE(st.st_mode) != it.mode:
        return False
    with open(os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dfd), "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest() == it.sha256

@dataclass
class Plan:
    """What an apply will do, worked out (and checked) before anything is written."""
    items: dict[str, Item]
    remove: list[str] = field(default_factory=list)
    # Real paths of symlinks an earlier apply installed and the new tree drops: removed first, never followed.
    gone: frozenset[str] = frozenset()

def plan(root_fd: int, root: str, final: dict[str, Item], installed: dict[str, Any]) -> Plan:
    gone = set()
    for q, was in installed.items():
        if was.get("kind") == "symlink" and not (q in final and final[q].kind == "symlink"):
            parent, _, name = q.rpartition("/")
            with contextlib.suppress(Rejected), at(root_fd, parent) as found:
                if found is not None and stat.S_ISLNK(getattr(_lstat_at(found[0], name), "st_mode", 0)):
                    gone.add(f"{found[1]}/{name}".lstrip("/"))
    p = Plan(final, gone=frozenset(gone))
    for path, it in final.items():
        if len(os.path.join(root, path).encode()) >= PATH_MAX:
            raise Rejected(f"entry {path[:80]}...: the path is longer than {PATH_MAX - 1} bytes")
        parent, _, name = path.rpartition("/")
        with at(root_fd, parent, gone=p.gone) as found:
            if found is None:
                continue
            dfd, real = found
            st = None if f"{real}/{name}".lstrip("/") in p.gone else _lstat_at(dfd, name)
            if st is not None and stat.S_ISDIR(st.st_mode) and it.kind != "dir":
                sub = _open_dir(dfd, name)
                try:
                    if os.listdir(sub):
                        raise Rejected(f"entry {path}: would replace the non-empty directory /{path}")
                finally:
                    os.close(sub)
            if st is not None and it.kind == "dir" and stat.S_ISLNK(st.st_mode):
                with at(root_fd, path, gone=p.gone):  # a symlinked dir must stay inside root
                    pass
    # Deepest first, so directories are empty by the time their turn comes.
    p.remove = sorted((q for q in installed if q not in final), key=lambda q: (-q.count("/"), q))
    return p

def _temp_name(name: str) -> str:
    # Cut by bytes, not characters: a 252-byte UTF-8 name must still fit with the mark added.
    short = name.encode()[:150].decode("utf-8", "ignore")
    return f".{short}{TEMP_MARK}{os.getpid()}-{random.getrandbits(32):08x}"

class _Files:
    """The files one cpio entry's bytes go to: temp files, renamed once complete."""

    def __init__(self, owners: bool, touched: set[str]) -> None:
        self.open: list[tuple[int, Any, str, str, Item, os.stat_result | None]] = []
        self.owners, self.touched = owners, touched

    def add(self, root_fd: int, it: Item) -> None:
        with parent_of(root_fd, it.path) as (dfd, real, name):
            st, tmp = _lstat_at(dfd, name), _temp_name(name)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dfd)
            self.open.append((os.dup(dfd), os.fdopen(fd, "wb"), tmp, name, it, st))
        self.touched.add(real)

    def __call__(self, chunk: bytes | None) -> None:
        for dfd, f, tmp, name, it, st in self.open:
            if chunk is not None:
                f.write(chunk)
                continue
            f.flush()
            if self.owners:
                os.fchown(f.fileno(), it.uid, it.gid)  # before chmod: chown clears setuid bits
            os.fchmod(f.fileno(), it.mode)
            os.fsync(f.fileno())
            if st is not None and stat.S_ISDIR(st.st_mode):
                os.rmdir(name, dir_fd=dfd)  # empty: plan() refused non-empty ones
            os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
            log(f"{'added' if st is None else 'changed'} /{it.path}")
        if chunk is None:
            self.close(keep=True)

    def close(self, keep: bool = False) -> None:
        for dfd, f, tmp, *_ in self.open:
            with contextlib.suppress(OSError):
                f.close()
                if not keep:
                    os.unlink(tmp, dir_fd=dfd)
            os.close(dfd)
        self.open = []

def apply(root_fd: int, p: Plan, installed: dict[str, Any], record: dict[str, Any],
          layers: list[str], limit: int) -> int:
    """Write the plan, filling `record` (what is installed); return the change count. Only the
    system can fail here (plan() checked the rest). Files: each layer read again, streamed."""
    owners = os.geteuid() == 0
    changes = 0
    touched: set[str] = set()
    for real in sorted(p.gone):
        if _remove(root_fd, real, {"kind": "symlink"}):
            log(f"removed /{real}")
            changes += 1
    files: dict[tuple[int, int], list[Item]] = {}
    for path in sorted(p.items, key=lambda q: (q.count("/"), q)):
        it = p.items[path]
        record[path] = it.record()
        with parent_of(root_fd, path) as (dfd, real, name):
            st = _lstat_at(dfd, name)
            if _same(st, it, dfd, name, owners):
                continue
            changes += 1
            if it.kind == "file":
                files.setdefault(it.ref, []).append(it)
                continue
            _write(dfd, name, it, st, owners)
            log(f"{'added' if st is None else 'changed'} /{path}")
            touched.add(real)
    pending: list[_Files] = []
    for layer in sorted({ref[0] for ref in files}):
        def want(index: int, layer: int = layer) -> _Files | None:
            if not files.get((layer, index)):
                return None
            pending.append(w := _Files(owners, touched))
            for it in files[layer, index]:
                w.add(root_fd, it)
            return w

        try:
            scan_cpio(Stream(unpacked(layers[layer], limit)), layer, want)
        finally:
            for w in pending:
                w.close()
    for path in p.remove:
        if _remove(root_fd, path, installed[path]):
            log(f"removed /{path}")
            changes += 1
    for d in touched:
        with at(root_fd, d) as found:
            if found is not None:
                os.fsync(found[0])
    return changes

def _write(dfd: int, name: str, it: Item, st: os.stat_result | None, owners: bool) -> None:
    """Make a directory or a symlink (files: _Files)."""
    if it.kind == "dir" and st is not None and stat.S_ISLNK(st.st_mode):
        return  # a symlink to a directory inside root (checked, not ours): keep it (merged /usr)
    if st is not None and stat.S_ISDIR(st.st_mode) != (it.kind == "dir"):
        (os.rmdir if stat.S_ISDIR(st.st_mode) else os.unlink)(name, dir_fd=dfd)  # empty: plan() checked
        st = None
    if it.kind == "dir":
        if st is None:
            os.mkdir(name, 0o700, dir_fd=dfd)
        fd = _open_dir(dfd, name)
        try:
            if owners:
                os.fchown(fd, it.uid, it.gid)
            os.fchmod(fd, it.mode)
        finally:
            os.close(fd)
        return
    tmp = _temp_name(name)
    try:
        os.symlink(it.target, tmp, dir_fd=dfd)
        if owners:
            os.chown(tmp, it.uid, it.gid, dir_fd=dfd, follow_symlinks=False)
        os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dfd)
        raise

def _remove(root_fd: int, path: str, was: dict[str, Any]) -> bool:
    parent, _, name = path.rpartition("/")
    try:
        with at(root_fd, parent) as found:
            st = None if found is None else _lstat_at(found[0], name)
            if found is None or st is None or stat.S_ISDIR(st.st_mode) != (was.get("kind") == "dir"):
                return False
            if not stat.S_ISDIR(st.st_mode):
                os.unlink(name, dir_fd=found[0])
                return True
            with contextlib.suppress(OSError):  # something else lives there now: leave it
                os.rmdir(name, dir_fd=found[0])
                return True
            return False
    except (Rejected, OSError) as exc:
        log(f"not removing /{path}: {exc}")
        return False

# --- state ------------------------------------------------------------------------
def _write_file(path: str, data: bytes) -> None:
    tmp = f"{path}{TEMP_MARK}{os.getpid()}"
    with open(tmp, "wb", opener=lambda p, flags: os.open(p, flags | os.O_NOFOLLOW, 0o600)) as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)  # atomic: the old state or the new, never half of one

@dataclass
class State:
    """What this node last applied, kept in the state directory across restarts."""
    dir: str
    files: dict[str, Any] = field(default_factory=dict)
    # url -> {"etag", "last_modified", "body"}: the node's manifest and those it includes,
    # so that a 304 for one and a 200 for another still give the whole list of layers.
    manifests: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def file(self) -> str:
        return os.path.join(self.dir, "state.json")

    def blob(self, sha256: str) -> str:
        return os.path.join(self.dir, "blobs", sha256)

    def load(self) -> None:
        try:
            with open(self.file, "rb") as f:
                doc = json.load(f)
            if doc.get("format") != STATE_FORMAT:
                return
            manifests = {str(k): {f: str(v[f]) for f in ("etag", "last_modified", "body")}
                         for k, v in doc["manifests"].items()}
            _check_text(manifests)  # a hand-edited file must not end wwclient
            files = {p: e for p, e in doc["files"].items()  # only clean relative paths are ever removed
                     if isinstance(e, dict) and clean_path(p) == p != ""}
        except FileNotFoundError:
            return
        except (ValueError, TypeError, KeyError, AttributeError, Rejected):
            log(f"{self.file} is corrupt: starting afresh")
            return
        self.manifests, self.files = manifests, files

    def save(self) -> None:
        doc = {"format": STATE_FORMAT, "manifests": self.manifests, "files": self.files}
        _write_file(self.file, json.dumps(doc, sort_keys=True, indent=1).encode())

# --- one poll -------------------------------------------------------------------
@dataclass
class Options:
    base: str
    node: str
    root: str = "/"
    state: str = "/var/lib/wwclient"
    interval: float | None = None     # overrides the manifest's
    timeout: float = 30.0
    retry_min: float = 2.0
    retry_max: float = 300.0
    max_unpacked: int = 1 << 30
    source: str | None = None

@dataclass(frozen=True)
class Result:
    fetched: bool       # False: 304, nothing to do
    interval: float
    changes: int = 0

class Client:
    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.root = os.path.realpath(opts.root)
        self.http = Http(opts.base, opts.timeout, opts.source)
        os.makedirs(os.path.join(opts.state, "blobs"), mode=0o700, exist_ok=True)
        self.state = State(opts.state)
        self.state.load()
        self.interval = 60.0

    def _fetch(self, rel: str) -> tuple[bytes, bool, dict[str, str]]:
        """A manifest's body, whether it changed since the last apply, and the response headers."""
        known = self.state.manifests.get(rel, {})
        body = known.get("body", "").encode()
        # One validator is enough (If-None-Match wins when both are sent): fewer bytes per poll.
        headers = ({} if not body else {"If-None-Match": known["etag"]} if known.get("etag")
                   else {"If-Modified-Since": known["last_modified"]} if known.get("last_modified")
                   else {})
        resp = self.http.get(rel, headers)
        if resp.status == 304 and body:
            return body, False, resp.headers
        if resp.status != 200:
            raise Unavailable(f"GET {rel}: HTTP {resp.status}")
        return resp.body, True, resp.headers

    def poll(self) -> Result:
        """Fetch the manifests; if one changed, fetch, check and apply the overlay, checked in full
        first. During the apply state.json has no validators (the next poll fetches in full: an
        interrupted apply is retried) and lists every path it may install (none left untracked)."""
        st = self.state
        rel = manifest_path(self.opts.node)
        body, changed, headers = self._fetch(rel)
        manifest = parse_manifest(body, self.opts.node)
        fetched = {rel: (body, headers)}
        layers: list[Layer] = []
        for part in manifest.layers:
            if isinstance(part, Include):
                inc_body, inc_changed, inc_headers = self._fetch(part.url)
                changed |= inc_changed
                fetched[part.url] = (inc_body, inc_headers)
                try:
                    layers += parse_included(inc_body)
                except Rejected as exc:
                    raise Rejected(f"{part.url}: {exc}") from None
            else:
                layers.append(part)
        if not changed:
            return Result(False, self.interval)
        saved = {url: dict(zip(("etag", "last_modified"), self._validators(hdrs), strict=True),
                           body=data.decode()) for url, (data, hdrs) in fetched.items()}
        blobs = [self._layer(layer) for layer in layers]
        contents = []
        for i, (layer, blob) in enumerate(zip(layers, blobs, strict=True)):
            try:
                contents.append(scan_cpio(Stream(unpacked(blob, self.opts.max_unpacked)), i))
            except Rejected as exc:
                raise Rejected(f"layer {layer.url}: {exc}") from None
        final = merge(contents, manifest.setuid)
        root_fd = os.open(self.root, os.O_DIRECTORY | os.O_RDONLY)
        try:
            todo = plan(root_fd, self.root, final, st.files)
            installed, st.manifests = st.files, {}
            st.files = {**installed, **{p: it.record() for p, it in final.items()}}
            st.save()
            record: dict[str, Any] = {}
            changes = apply(root_fd, todo, installed, record, blobs, self.opts.max_unpacked)
        finally:
            os.close(root_fd)
        self.interval = manifest.interval
        st.files, st.manifests = record, saved
        st.save()
        self._collect(layers)
        return Result(True, manifest.interval, changes)

    @staticmethod
    def _validators(headers: dict[str, str]) -> tuple[str, str]:
        # nginx's ETag is mtime (seconds) + size: a manifest rewritten within the
        # second it was fetched, at the same size, would keep its ETag. When the
        # file is that fresh (or its dates do not parse), ask in full next time.
        if "date" in headers and "last-modified" in headers:
            date, modified = http_date(headers["date"]), http_date(headers["last-modified"])
            if date is None or modified is None or date - modified < 2:
                return "", ""
        return headers.get("etag", ""), headers.get("last-modified", "")

    def _layer(self, layer: Layer) -> str:
        """The path of the layer's file in the cache, downloaded (streamed) if missing."""
        path = self.state.blob(layer.sha256)
        with contextlib.suppress(FileNotFoundError), open(path, "rb") as cache:
            if os.fstat(cache.fileno()).st_size == layer.size and hashlib.file_digest(
                    cache, "sha256").hexdigest() == layer.sha256:
                return path
        h = hashlib.sha256()
        tmp = f"{path}{TEMP_MARK}{os.getpid()}"
        try:
            with open(tmp, "wb") as f:
                def sink(chunk: bytes) -> None:
                    h.update(chunk)
                    f.write(chunk)

                resp = self.http.get(layer.url, limit=layer.size, sink=sink)
                if resp.status != 200:
                    raise Unavailable(f"GET {layer.url}: HTTP {resp.status}")
                if f.tell() != layer.size:
                    raise Rejected(f"layer {layer.url}: {f.tell()} bytes, the manifest says {layer.size}")
                if h.hexdigest() != layer.sha256:
                    raise Rejected(f"layer {layer.url}: sha256 {h.hexdigest()}, "
                                   f"the manifest says {layer.sha256}")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return path

    def _collect(self, layers: list[Layer]) -> None:
        keep = {layer.sha256 for layer in layers}
        blobs = os.path.join(self.state.dir, "blobs")
        for name in set(os.listdir(blobs)) - keep:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(blobs, name))

# --- the loop ---------------------------------------------------------------------
WAKE = {signal.SIGHUP, signal.SIGTERM, signal.SIGINT}  # blocked in the daemon: they wait for rest()

def rest(seconds: float) -> bool:
    """Sleep; SIGHUP cuts it short (a refresh), True when SIGTERM or SIGINT came (stop)."""
    info = signal.sigtimedwait(WAKE, max(0.0, seconds))
    return info is not None and info.si_signo != signal.SIGHUP

def jitter(seconds: float) -> float:
    # +-15 %: thousands of nodes booted together drift apart instead of polling in step.
    return seconds * random.uniform(0.85, 1.15)

def backoff(opts: Options, failures: int) -> float:
    step: float = opts.retry_min * 2.0 ** max(0, failures - 1)
    return min(opts.retry_max, step) * random.uniform(0.9, 1.1)

def run(opts: Options, once: bool) -> int:
    client = Client(opts)
    if not once:  # a signal during an apply waits for it to finish
        signal.pthread_sigmask(signal.SIG_BLOCK, WAKE)
    failures, said = 0, ""
    while True:
        try:
            res = client.poll()
            failures, said = 0, ""
            if res.fetched:
                log(f"runtime overlay of {opts.node} applied: {res.changes} change(s)")
            delay = jitter(opts.interval or res.interval)
        except Exception as exc:  # a daemon backs off, it never ends on bad input
            failures += 1
            delay = backoff(opts, failures)
            why = (f"rejected: {exc} (nothing applied)" if isinstance(exc, Rejected) else
                   f"server unavailable: {exc}" if isinstance(exc, Unavailable) else
                   f"error: {exc}" if isinstance(exc, OSError) else f"error: {type(exc).__name__}: {exc}")
            retry = "" if once else f"; retrying in {delay:.3g} s"
            # The reason once per distinct error; repeats only say when the next try is.
            log(why + retry if why != said else f"same error again{retry}")
            said = why
        if once:
            return min(failures, 1)
        if rest(delay):
            log("stopping")
            return 0

def read_config(path: str) -> dict[str, str]:
    """KEY=value lines of /warewulf/config (shell syntax, quoted by the build)."""
    out: dict[str, str] = {}
    with contextlib.suppress(OSError, ValueError), open(path, encoding="utf-8") as f:
        for line in f:
            words = shlex.split(line, comments=True)
            if len(words) == 1 and "=" in words[0]:
                key, _, value = words[0].partition("=")
                out[key] = value
    return out

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="wwclient", description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--config", default="/warewulf/config", help="node settings (WWHTTP, WWHOSTNAME)")
    ap.add_argument("--base", help="HTTP base URL of the static tree (default: WWHTTP)")
    ap.add_argument("--node", help="this node's name (default: WWHOSTNAME)")
    ap.add_argument("--root", default="/", help="tree to apply into")
    ap.add_argument("--state", default="/var/lib/wwclient", help="cache and record of applied files")
    ap.add_argument("--once", action="store_true", help="poll once and exit (1 on failure)")
    ap.add_argument("--interval", type=float, help="seconds between polls (default: the manifest's)")
    ap.add_argument("--timeout", type=float, default=30.0, help="network timeout in seconds")
    ap.add_argument("--retry-min", type=float, default=2.0, help="first retry delay after a failure")
    ap.add_argument("--retry-max", type=float, default=300.0, help="longest retry delay")
    args = ap.parse_args(argv)
    conf = read_config(args.config)
    base = args.base or conf.get("WWHTTP", "")
    node = args.node or conf.get("WWHOSTNAME", "")
    if not base or not node:
        log(f"need --base and --node (or WWHTTP and WWHOSTNAME in {args.config})")
        return 2
    if not os.path.isdir(args.root):
        log(f"--root {args.root} is not a directory")
        return 2
    opts = Options(base, node, args.root, args.state, args.interval, args.timeout,
                   args.retry_min, args.retry_max)
    try:
        return run(opts, args.once)
    except OSError as exc:
        log(f"error: {exc}")
        return 1

if __name__ == "__main__":
    sys.exit(main())
