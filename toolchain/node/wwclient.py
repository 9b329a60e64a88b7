#!/usr/bin/env python3
"""wwclient: keep a wwstatic node's runtime overlay current, safely.

The build publishes, per node, `nodes/<node>/runtime.json`:
    {"format": 1, "node": "n01", "interval": 60,
     "layers": [{"include": "groups/<group>.json"},
                {"url": "nodes/n01/runtime-<digest>.img.gz", "sha256": "<hex>", "size": 123}],
     "setuid": ["usr/bin/ping"]}          # optional: paths allowed setuid/setgid bits
An `include` names a manifest shared by a group of nodes, {"format": 1, "layers":
[...]}, whose layers (files the same for the whole group, such as the cluster's
hosts file) take its place in the list. wwclient polls the node's manifest and
each included one with a conditional GET (an unchanged overlay costs a 304 each),
downloads the layers it has not cached, checks each against its size and
sha256, unpacks them (gzip + cpio newc, parsed here: the standard library has
no cpio reader and no zstd), checks every entry, and only then applies the
result file by file with temp + rename. Files an earlier version installed and
the new one dropped are removed. Anything wrong means nothing is applied.

This file is copied to nodes by the `wwclient` overlay: standard library only,
and it imports nothing from the wwstatic toolchain.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import os
import random
import select
import shlex
import signal
import stat
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlsplit

MANIFEST_FORMAT = 1
MAX_MANIFEST = 1 << 20
MAX_NAME = 4096
MAX_SYMLINKS = 40
STATE_FORMAT = 1
TEMP_MARK = ".wwclient-"
SAFE_BITS = 0o1777          # permission bits applied without a declaration (sticky is fine)
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
    if not isinstance(url, str) or not url or url.startswith("/") or "\\" in url:
        raise Rejected(f"manifest: layer url {url!r} is not a relative path")
    if urlsplit(url).scheme or urlsplit(url).netloc or "?" in url or "#" in url:
        raise Rejected(f"manifest: layer url {url!r} must be a path under the base URL")
    if any(p in ("", ".", "..") for p in url.split("/")):
        raise Rejected(f"manifest: layer url {url!r} has an empty, `.` or `..` component")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise Rejected(f"manifest: layer url {url!r} has a control character or space")
    return url


def _load(data: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Rejected(f"manifest is not JSON: {exc}") from None
    except RecursionError:
        # json.loads recurses once per bracket: a hostile manifest must not end wwclient.
        raise Rejected("manifest is nested too deeply") from None
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT:
        raise Rejected(f"manifest format is not {MANIFEST_FORMAT}")
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
    if not isinstance(setuid, list) or not all(isinstance(p, str) for p in setuid):
        raise Rejected("manifest: setuid must be a list of paths")
    return Manifest(node, float(interval), tuple(out), frozenset(p.strip("/") for p in setuid))


# --- HTTP -----------------------------------------------------------------------

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
        """GET base/rel; raise Unavailable on network trouble or a 5xx status.

        The body is kept (up to `limit` bytes) or streamed to `sink`. A whole
        request must finish within ten timeouts, so a server that trickles a
        byte now and then cannot hold the client forever.
        """
        url = urlsplit(self.base)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise Unavailable(f"base URL {self.base!r} is not http(s)://host")
        path = url.path.rstrip("/") + "/" + quote(rel)
        cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        src = (self.source, 0) if self.source else None
        conn = cls(url.hostname, url.port, timeout=self.timeout, source_address=src)
        deadline = time.monotonic() + 10 * self.timeout
        try:
            conn.request("GET", path, headers={"User-Agent": "wwclient", **(headers or {})})
            resp = conn.getresponse()
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
            body = bytearray()
            got = 0
            while True:
                if time.monotonic() > deadline:
                    raise Unavailable(f"GET {path}: took longer than {10 * self.timeout:g} s")
                chunk = resp.read(1 << 16)
                if not chunk:
                    break
                got += len(chunk)
                if got > limit:
                    raise Rejected(f"GET {path}: more than {limit} bytes")
                if sink is not None and resp.status == 200:
                    sink(chunk)
                else:
                    body += chunk
        except (OSError, http.client.HTTPException) as exc:
            raise Unavailable(f"GET {path}: {type(exc).__name__}: {exc}") from None
        finally:
            conn.close()
        if resp.status >= 500:
            raise Unavailable(f"GET {path}: HTTP {resp.status}")
        return Response(resp.status, hdrs, bytes(body))


# --- archives -------------------------------------------------------------------

@dataclass(frozen=True)
class Item:
    path: str        # relative, normalised, no leading slash
    kind: str        # "dir", "file", "symlink"
    mode: int        # permission bits (with setuid/setgid/sticky)
    uid: int
    gid: int
    data: bytes = b""  # file content or symlink target


def gunzip(blob: bytes, limit: int) -> bytes:
    """Decompress gzip (concatenated members allowed); refuse truncation and bombs."""
    if blob[:4] == b"\x28\xb5\x2f\xfd":
        raise Rejected("zstd layers are not supported (Python's standard library has no zstd): "
                       "publish runtime overlays gzip-compressed")
    if blob[:6] in (b"070701", b"070702"):
        return blob  # an uncompressed cpio archive
    if blob[:2] != b"\x1f\x8b":
        raise Rejected("layer is neither gzip nor cpio")
    out = bytearray()
    rest = blob
    while True:
        d = zlib.decompressobj(wbits=31)
        data = rest
        try:
            while not d.eof:
                chunk = d.decompress(data, limit + 1 - len(out))
                out += chunk
                if len(out) > limit:
                    raise Rejected(f"layer unpacks to more than {limit} bytes")
                data = d.unconsumed_tail
                if not data and not chunk:
                    break
        except zlib.error as exc:
            raise Rejected(f"corrupt gzip data: {exc}") from None
        if not d.eof:
            raise Rejected("truncated gzip stream")
        rest = d.unused_data
        if not rest.strip(b"\0"):
            return bytes(out)
        if rest[:2] != b"\x1f\x8b":
            raise Rejected("garbage after the gzip stream")


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
    return "/".join(parts)


def parse_cpio(buf: bytes) -> list[Item]:
    """Parse cpio newc (one archive or several concatenated), checking every bound."""
    items: list[Item] = []
    links: dict[tuple[int, int, int], list[int]] = {}
    pos = 0
    end = len(buf)
    while pos < end:
        if buf[pos] == 0:  # padding between concatenated archives
            pos += 1
            continue
        if end - pos < 110:
            raise Rejected(f"cpio: truncated header at offset {pos}")
        magic = buf[pos:pos + 6]
        if magic not in (b"070701", b"070702"):
            raise Rejected(f"cpio: bad magic {magic!r} at offset {pos} (only newc is supported)")
        try:
            f = [int(buf[pos + 6 + 8 * i: pos + 14 + 8 * i], 16) for i in range(13)]
        except ValueError:
            raise Rejected(f"cpio: header at offset {pos} is not hex") from None
        ino, mode, uid, gid, nlink, _mtime, size, dmaj, dmin, _rmaj, _rmin, namesize, _chk = f
        if not 1 <= namesize <= MAX_NAME:
            raise Rejected(f"cpio: name size {namesize} at offset {pos}")
        name_end = pos + 110 + namesize
        data_start = (name_end + 3) & ~3
        data_end = data_start + size
        if data_end > end:
            raise Rejected(f"cpio: entry at offset {pos} runs past the end of the archive")
        raw = buf[pos + 110:name_end]
        if raw[-1:] != b"\0" or b"\0" in raw[:-1]:
            raise Rejected(f"cpio: name at offset {pos} is not one NUL-terminated string")
        try:
            name = raw[:-1].decode("utf-8")
        except UnicodeDecodeError:
            raise Rejected(f"cpio: name at offset {pos} is not UTF-8") from None
        pos = (data_end + 3) & ~3
        if name == "TRAILER!!!":
            continue
        path = clean_path(name)
        data = buf[data_start:data_end]
        fmt = stat.S_IFMT(mode)
        perm = mode & 0o7777
        if fmt == stat.S_IFDIR:
            kind = "dir"
        elif fmt == stat.S_IFREG:
            kind = "file"
        elif fmt == stat.S_IFLNK:
            kind = "symlink"
            if not data or b"\0" in data:
                raise Rejected(f"entry {name!r}: empty symlink target or NUL in it")
        else:
            what = {stat.S_IFCHR: "character device", stat.S_IFBLK: "block device",
                    stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket"}.get(fmt, f"type {fmt:o}")
            raise Rejected(f"entry {name!r}: {what} not allowed")
        if not path:
            continue  # the archive's root directory: `/` itself is never touched
        if kind == "file" and nlink > 1:
            links.setdefault((ino, dmaj, dmin), []).append(len(items))
        items.append(Item(path, kind, perm, uid, gid, bytes(data)))
    # newc hard links: one member carries the data (the first for libarchive, the
    # last for GNU cpio). Every member gets it; they are written as separate files.
    for members in links.values():
        datas = {items[i].data for i in members if items[i].data}
        if len(datas) > 1:
            raise Rejected(f"cpio: hard links to {items[members[0]].path} carry different data")
        if datas:
            content = datas.pop()
            for i in members:
                it = items[i]
                items[i] = Item(it.path, it.kind, it.mode, it.uid, it.gid, content)
    return items


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

def resolve_dir(root: str, rel: str, create: bool) -> str | None:
    """The real directory `rel` names under `root`, following symlinks as if `root` were `/`.

    A symlink may lead anywhere inside `root` (merged /usr: /bin -> usr/bin) but
    never above it. Returns None when a component is missing and `create` is
    false (the rest will be made as plain directories).
    """
    todo = [p for p in rel.split("/") if p]
    cur: list[str] = []
    hops = 0
    while todo:
        comp = todo.pop(0)
        if comp in ("", "."):
            continue
        if comp == "..":
            if not cur:
                raise Rejected(f"{rel}: a symlink on the way leads outside {root}")
            cur.pop()
            continue
        path = os.path.join(root, *cur, comp)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            if not create:
                depth = len(cur) + 1
                for c in todo:  # what is left must stay inside root too
                    depth += -1 if c == ".." else 0 if c in ("", ".") else 1
                    if depth < 0:
                        raise Rejected(f"{rel}: a symlink on the way leads outside {root}") from None
                return None
            os.mkdir(path, 0o755)
            cur.append(comp)
            continue
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > MAX_SYMLINKS:
                raise Rejected(f"{rel}: too many symlinks")
            target = os.readlink(path)
            if target.startswith("/"):
                cur = []
            todo = target.split("/") + todo
        elif stat.S_ISDIR(st.st_mode):
            cur.append(comp)
        else:
            raise Rejected(f"{rel}: {os.path.join('/', *cur, comp)} is not a directory")
    return os.path.join(root, *cur)


@contextlib.contextmanager
def open_dir(root: str, real: str) -> Iterator[int]:
    """An fd of the directory `real` (under `root`), reached without following any symlink.

    `real` came from resolve_dir(); walking it again with O_NOFOLLOW means a
    symlink swapped in since then makes the write fail instead of escaping.
    """
    rel = os.path.relpath(real, root)
    fd = os.open(root, os.O_DIRECTORY | os.O_RDONLY)
    try:
        for comp in ([] if rel == "." else rel.split("/")):
            nfd = os.open(comp, os.O_DIRECTORY | os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nfd
        yield fd
    finally:
        os.close(fd)


def _lstat_at(dfd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _same(st: os.stat_result | None, it: Item, dfd: int, name: str, owners: bool) -> bool:
    if st is None:
        return False
    if owners and (st.st_uid, st.st_gid) != (it.uid, it.gid):
        return False
    if it.kind == "symlink":
        return stat.S_ISLNK(st.st_mode) and os.readlink(name, dir_fd=dfd) == it.data.decode()
    if it.kind == "dir":
        if stat.S_ISLNK(st.st_mode):
            return True  # a symlink to a directory inside root, kept (merged /usr)
        return stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == it.mode
    if not stat.S_ISREG(st.st_mode) or st.st_size != len(it.data) or stat.S_IMODE(st.st_mode) != it.mode:
        return False
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dfd)
    with os.fdopen(fd, "rb") as f:
        return f.read() == it.data


def _digest(it: Item) -> str:
    return hashlib.sha256(it.data).hexdigest()


@dataclass
class Plan:
    """What an apply will do, worked out (and checked) before anything is written."""
    items: dict[str, Item]
    remove: list[str] = field(default_factory=list)


def plan(root: str, final: dict[str, Item], installed: dict[str, Any]) -> Plan:
    p = Plan(final)
    for path, it in final.items():
        parent, _, name = path.rpartition("/")
        real = resolve_dir(root, parent, create=False)
        if real is None:
            continue
        target = os.path.join(real, name)
        with contextlib.suppress(FileNotFoundError):
            st = os.lstat(target)
            if stat.S_ISDIR(st.st_mode) and it.kind != "dir" and os.listdir(target):
                raise Rejected(f"entry {path}: would replace the non-empty directory /{path}")
            if it.kind == "dir" and stat.S_ISLNK(st.st_mode):
                resolve_dir(root, path, create=False)  # a symlinked dir must stay inside root
    # Deepest first, so directories are empty by the time their turn comes.
    p.remove = sorted((q for q in installed if q not in final), key=lambda q: (-q.count("/"), q))
    return p


def apply(root: str, p: Plan, installed: dict[str, Any], record: dict[str, Any]) -> int:
    """Write the plan, filling `record` (the new installed files); return the change count.

    Every check that can be made before writing was made by plan(); what can
    still fail here is the system (disk full, I/O error), and then `record` says
    what was installed so far so that nothing is forgotten.
    """
    owners = os.geteuid() == 0
    changes = 0
    touched: set[str] = set()
    for path in sorted(p.items, key=lambda q: (q.count("/"), q)):
        it = p.items[path]
        parent, _, name = path.rpartition("/")
        real = resolve_dir(root, parent, create=True)
        assert real is not None
        with open_dir(root, real) as dfd:
            st = _lstat_at(dfd, name)
            if not _same(st, it, dfd, name, owners):
                _write(dfd, name, it, st, owners)
                log(f"{'added' if st is None else 'changed'} /{path}")
                touched.add(real)
                changes += 1
        entry: dict[str, Any] = {"kind": it.kind, "mode": it.mode, "uid": it.uid, "gid": it.gid}
        if it.kind == "file":
            entry["sha256"] = _digest(it)
        elif it.kind == "symlink":
            entry["target"] = it.data.decode()
        record[path] = entry
    for path in p.remove:
        if _remove(root, path, installed[path]):
            log(f"removed /{path}")
            changes += 1
    for d in touched:
        with open_dir(root, d) as dfd:
            os.fsync(dfd)
    return changes


def _write(dfd: int, name: str, it: Item, st: os.stat_result | None, owners: bool) -> None:
    if it.kind == "dir":
        if st is not None and stat.S_ISLNK(st.st_mode):
            return  # a symlink to a directory inside root (checked): keep it (merged /usr)
        if st is not None and not stat.S_ISDIR(st.st_mode):
            os.unlink(name, dir_fd=dfd)
            st = None
        if st is None:
            os.mkdir(name, 0o700, dir_fd=dfd)
        fd = os.open(name, os.O_DIRECTORY | os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dfd)
        try:
            if owners:
                os.fchown(fd, it.uid, it.gid)
            os.fchmod(fd, it.mode)
        finally:
            os.close(fd)
        return
    if st is not None and stat.S_ISDIR(st.st_mode):
        os.rmdir(name, dir_fd=dfd)  # empty: plan() refused non-empty ones
    tmp = f".{name[:200]}{TEMP_MARK}{os.getpid()}-{random.getrandbits(32):08x}"
    try:
        if it.kind == "symlink":
            os.symlink(it.data.decode(), tmp, dir_fd=dfd)
            if owners:
                os.chown(tmp, it.uid, it.gid, dir_fd=dfd, follow_symlinks=False)
        else:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dfd)
            try:
                view = memoryview(it.data)
                while view:
                    view = view[os.write(fd, view):]
                if owners:
                    os.fchown(fd, it.uid, it.gid)  # before chmod: chown clears setuid bits
                os.fchmod(fd, it.mode)
                os.fsync(fd)
            finally:
                os.close(fd)
        os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dfd)
        raise


def _remove(root: str, path: str, was: dict[str, Any]) -> bool:
    parent, _, name = path.rpartition("/")
    try:
        real = resolve_dir(root, parent, create=False)
    except Rejected as exc:
        log(f"not removing /{path}: {exc}")
        return False
    if real is None:
        return False
    with open_dir(root, real) as dfd:
        st = _lstat_at(dfd, name)
        if st is None:
            return False
        if was.get("kind") == "dir":
            if not stat.S_ISDIR(st.st_mode):
                return False
            try:
                os.rmdir(name, dir_fd=dfd)
            except OSError:
                return False  # something else lives there now: leave it
            return True
        if stat.S_ISDIR(st.st_mode):
            return False
        os.unlink(name, dir_fd=dfd)
        return True


# --- state ------------------------------------------------------------------------

def _write_file(path: str, data: bytes, mode: int = 0o600) -> None:
    tmp = f"{path}{TEMP_MARK}{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


@dataclass
class State:
    """What this node last applied, kept in the state directory across restarts."""
    dir: str
    etag: str = ""
    last_modified: str = ""
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
        except FileNotFoundError:
            return
        except ValueError:
            log(f"{self.file} is corrupt: starting afresh")
            return
        if isinstance(doc, dict) and doc.get("format") == STATE_FORMAT:
            self.etag = str(doc.get("etag", ""))
            self.last_modified = str(doc.get("last_modified", ""))
            manifests = doc.get("manifests", {})
            self.manifests = {str(k): {f: str(v.get(f, "")) for f in ("etag", "last_modified", "body")}
                              for k, v in manifests.items() if isinstance(v, dict)} \
                if isinstance(manifests, dict) else {}
            self.files = {}
            for path, entry in dict(doc.get("files", {})).items():
                # Only clean relative paths are ever removed, whatever the file says.
                with contextlib.suppress(Rejected):
                    if isinstance(entry, dict) and path and clean_path(path) == path:
                        self.files[path] = entry

    def save(self) -> None:
        doc = {"format": STATE_FORMAT, "etag": self.etag, "last_modified": self.last_modified,
               "manifests": self.manifests, "files": self.files}
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
        """Fetch the manifests; if one changed, fetch, check and apply the overlay."""
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
        self.interval = manifest.interval
        blobs = [self._layer(layer) for layer in layers]
        unpacked = []
        for layer, blob in zip(layers, blobs, strict=True):
            try:
                unpacked.append(parse_cpio(gunzip(blob, self.opts.max_unpacked)))
            except Rejected as exc:
                raise Rejected(f"layer {layer.url}: {exc}") from None
        final = merge(unpacked, manifest.setuid)
        todo = plan(self.root, final, st.files)
        record: dict[str, Any] = {}
        try:
            changes = apply(self.root, todo, st.files, record)
        except OSError:
            st.files.update(record)  # remember what did get installed
            st.etag = st.last_modified = ""
            st.manifests = {}
            st.save()
            raise
        st.files = record
        st.manifests = {}
        for url, (data, hdrs) in fetched.items():
            etag, modified = self._validators(hdrs)
            st.manifests[url] = {"etag": etag, "last_modified": modified, "body": data.decode()}
        st.etag, st.last_modified = st.manifests[rel]["etag"], st.manifests[rel]["last_modified"]
        st.save()
        self._collect(layers)
        return Result(True, manifest.interval, changes)

    @staticmethod
    def _validators(headers: dict[str, str]) -> tuple[str, str]:
        # nginx's ETag is mtime (seconds) + size: a manifest rewritten within the
        # second it was fetched, at the same size, would keep its ETag. When the
        # file is that fresh, do not trust the validators; ask in full next time.
        try:
            fresh = (parsedate_to_datetime(headers["date"]) - parsedate_to_datetime(
                headers["last-modified"])).total_seconds() < 2
        except (KeyError, TypeError, ValueError):
            fresh = False
        if fresh:
            return "", ""
        return headers.get("etag", ""), headers.get("last-modified", "")

    def _layer(self, layer: Layer) -> bytes:
        path = self.state.blob(layer.sha256)
        with contextlib.suppress(FileNotFoundError), open(path, "rb") as f:
            data = f.read()
            if len(data) == layer.size and hashlib.sha256(data).hexdigest() == layer.sha256:
                return data
        h = hashlib.sha256()
        buf = bytearray()

        def sink(chunk: bytes) -> None:
            h.update(chunk)
            buf.extend(chunk)

        resp = self.http.get(layer.url, limit=layer.size, sink=sink)
        if resp.status != 200:
            raise Unavailable(f"GET {layer.url}: HTTP {resp.status}")
        if len(buf) != layer.size:
            raise Rejected(f"layer {layer.url}: {len(buf)} bytes, the manifest says {layer.size}")
        if h.hexdigest() != layer.sha256:
            raise Rejected(f"layer {layer.url}: sha256 {h.hexdigest()}, the manifest says {layer.sha256}")
        _write_file(path, bytes(buf))
        return bytes(buf)

    def _collect(self, layers: list[Layer]) -> None:
        keep = {layer.sha256 for layer in layers}
        blobs = os.path.join(self.state.dir, "blobs")
        for name in os.listdir(blobs):
            if name not in keep:
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(blobs, name))


# --- the loop ---------------------------------------------------------------------

class Waker:
    """Sleeps that SIGHUP cuts short and SIGTERM ends (after the current apply)."""

    def __init__(self) -> None:
        self.rfd, self.wfd = os.pipe()
        os.set_blocking(self.wfd, False)
        self.stop = False
        signal.signal(signal.SIGHUP, self._hup)
        signal.signal(signal.SIGTERM, self._term)
        signal.signal(signal.SIGINT, self._term)

    def _hup(self, *_: object) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(self.wfd, b"h")

    def _term(self, *_: object) -> None:
        self.stop = True
        self._hup()

    def sleep(self, seconds: float) -> bool:
        """Sleep; True if woken by a signal."""
        ready, _, _ = select.select([self.rfd], [], [], max(0.0, seconds))
        if ready:
            os.read(self.rfd, 512)
        return bool(ready)


def jitter(seconds: float) -> float:
    # +-15 %: thousands of nodes booted together drift apart instead of polling in step.
    return seconds * random.uniform(0.85, 1.15)


def backoff(opts: Options, failures: int) -> float:
    step: float = opts.retry_min * 2.0 ** max(0, failures - 1)
    return min(opts.retry_max, step) * random.uniform(0.9, 1.1)


def run(opts: Options, once: bool) -> int:
    client = Client(opts)
    waker = None if once else Waker()
    failures = 0
    while True:
        try:
            res = client.poll()
            failures = 0
            if res.fetched:
                log(f"runtime overlay of {opts.node} applied: {res.changes} change(s)")
            delay = jitter(opts.interval or res.interval)
        except (Rejected, Unavailable, OSError) as exc:
            failures += 1
            delay = backoff(opts, failures)
            what = ("rejected, nothing applied" if isinstance(exc, Rejected)
                    else "server unavailable" if isinstance(exc, Unavailable) else "error")
            log(f"{what}: {exc}" + ("" if once else f"; retrying in {delay:.3g} s"))
            if once:
                return 1
        if once:
            return 0
        assert waker is not None
        if waker.stop or (waker.sleep(delay) and waker.stop):
            log("stopping")
            return 0


def read_config(path: str) -> dict[str, str]:
    """KEY=value lines of /warewulf/config (shell syntax, quoted by the build)."""
    out: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                words = shlex.split(line, comments=True)
                if len(words) == 1 and "=" in words[0]:
                    key, _, value = words[0].partition("=")
                    out[key] = value
    except (OSError, ValueError):
        pass
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
