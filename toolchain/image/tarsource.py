"""Image sources in tar form: a root-filesystem tarball and OCI images.

libarchive reads the tar headers straight into archive entries, so owners,
modes, device nodes and hard links come from the tar itself: nothing is
unpacked and no root is needed. File contents go once into a spool file (the
cpio must be written in sorted order, which a compressed tar cannot be read
in), and the entries point into it.

OCI layers are applied in order in memory. A `.wh.NAME` file in a layer
deletes NAME (and what is under it) from the layers below; `.wh..wh..opq` in a
directory hides everything the layers below put in it.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import libarchive
import libarchive.ffi as laffi

from toolchain.archive import Entry
from toolchain.errors import WWError
from toolchain.fsutil import temp_dir
from toolchain.image.tree import complete, matcher

_lib = laffi.libarchive
_lib.archive_read_data_block.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p),
                                         ctypes.POINTER(ctypes.c_size_t),
                                         ctypes.POINTER(ctypes.c_int64)]
_lib.archive_read_data_block.restype = ctypes.c_int
ARCHIVE_EOF, ARCHIVE_WARN = 1, -20

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")
REF_NAME = "org.opencontainers.image.ref.name"


class Spool:
    """An unlinked temporary file holding file contents read from tars."""

    def __init__(self, directory: Path | None = None) -> None:
        # Closed by close(); it outlives any one block of code.
        self.file = tempfile.TemporaryFile(dir=directory, prefix=".wwstatic-spool-")  # noqa: SIM115
        self.path = f"/proc/self/fd/{self.file.fileno()}"
        self.end = 0

    def take(self, ae: Any, size: int) -> int:
        """Copy the data of libarchive entry `ae` in; return where it starts."""
        fd = self.file.fileno()
        start = self.end
        # libarchive's own blocks, with their offsets: no copy into a Python
        # buffer of our choosing, and holes of sparse files are skipped.
        buf, length, offset = ctypes.c_void_p(), ctypes.c_size_t(), ctypes.c_int64()
        while size:
            r = _lib.archive_read_data_block(ae._archive_p, ctypes.byref(buf), ctypes.byref(length),
                                             ctypes.byref(offset))
            if r == ARCHIVE_EOF:
                break
            if r < ARCHIVE_WARN:
                raise libarchive.ArchiveError(laffi.error_string(ae._archive_p))
            if length.value:
                os.pwrite(fd, ctypes.string_at(buf, length.value), start + offset.value)
        self.end = start + size
        # Sparse entries end in a hole that was seeked over, not written.
        if os.fstat(fd).st_size < self.end:
            os.ftruncate(fd, self.end)
        return start

    def close(self) -> None:
        self.file.close()


class Layers:
    """The image's entries as layers are applied, with the layer each came from."""

    def __init__(self, exclude: tuple[str, ...]) -> None:
        self.entries: dict[str, Entry] = {}
        self.layer_of: dict[str, int] = {}
        self.children: dict[str, set[str]] = {}
        self.is_excluded = matcher(exclude)
        self.links = 0

    def remove(self, path: str, below: int) -> None:
        """Remove `path` and what is under it, where it came from a layer under `below`."""
        for child in list(self.children.get(path, ())):
            self.remove(f"{path}/{child}" if path else child, below)
        if path in self.entries and self.layer_of[path] < below and not self.children.get(path):
            del self.entries[path]
            del self.layer_of[path]
            self.children.pop(path, None)
            parent, _, name = path.rpartition("/")
            self.children.get(parent, set()).discard(name)

    def put(self, e: Entry, layer: int) -> None:
        old = self.entries.get(e.path)
        if old is not None and not (stat.S_ISDIR(old.mode) and stat.S_ISDIR(e.mode)):
            self.remove(e.path, layer + 1)  # a file replaces a directory tree, or a file
        self.entries[e.path] = e
        self.layer_of[e.path] = layer
        parent, _, name = e.path.rpartition("/")
        self.children.setdefault(parent, set()).add(name)

    def add(self, src: str, ae: Any, layer: int, spool: Spool, whiteouts: bool) -> None:
        path = _clean(src, ae.pathname)
        if not path:
            return  # the tar's own "./"
        parent, _, name = path.rpartition("/")
        if whiteouts and name.startswith(WHITEOUT):
            if name == OPAQUE:
                for child in list(self.children.get(parent, ())):
                    self.remove(f"{parent}/{child}" if parent else child, layer)
            else:
                self.remove(f"{parent}/{name[len(WHITEOUT):]}" if parent else name[len(WHITEOUT):],
                            layer)
            return
        if self.is_excluded(path):
            return
        if ae.islnk:
            target = _clean(src, ae.linkpath)
            old = self.entries.get(target)
            if old is None or not stat.S_ISREG(old.mode):
                raise WWError(f"{src}: hard link {path} points to {target}, which is not a file "
                              "before it in the tar", hint="is the tarball complete?")
            if old.link_key is None:
                self.links += 1
                old = dataclasses.replace(old, link_key=("tar", self.links))
                self.entries[target] = old
            self.put(dataclasses.replace(old, path=path), layer)
            return
        mode = ae.mode
        if not stat.S_IFMT(mode):
            mode |= stat.S_IFREG
        uid, gid = ae.uid, ae.gid
        if stat.S_ISREG(mode):
            size = ae.size or 0
            self.put(Entry(path, mode, uid, gid, source=spool.path, size=size,
                           offset=spool.take(ae, size)), layer)
        elif stat.S_ISLNK(mode):
            self.put(Entry(path, mode, uid, gid, target=_text(ae.linkpath)), layer)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            self.put(Entry(path, mode, uid, gid, rdev=os.makedev(ae.rdevmajor, ae.rdevminor)), layer)
        elif stat.S_ISDIR(mode) or stat.S_ISFIFO(mode):
            self.put(Entry(path, mode, uid, gid), layer)
        # sockets: runtime state, never part of an image


def _msg(exc: libarchive.ArchiveError) -> str:
    msg = exc.msg
    return msg.decode(errors="replace") if isinstance(msg, bytes) else str(msg)


def _text(name: str | bytes) -> str:
    return os.fsdecode(name) if isinstance(name, bytes) else name


def _clean(src: str, name: str | bytes) -> str:
    parts = [p for p in _text(name).split("/") if p not in ("", ".")]
    if ".." in parts:
        raise WWError(f"{src}: entry {_text(name)!r} points outside the image",
                      hint="the tarball is damaged or hostile; do not use it")
    return "/".join(parts)


def _read_layer(layers: Layers, path: Path, src: str, layer: int, spool: Spool,
                whiteouts: bool) -> None:
    hint = "give a .tar, .tar.gz, .tar.xz or .tar.zst root file system (e.g. `docker export` output)"
    count = 0
    try:
        with libarchive.file_reader(str(path)) as arch:
            for ae in arch:
                layers.add(src, ae, layer, spool, whiteouts)
                count += 1
    except libarchive.ArchiveError as exc:
        raise WWError(f"{src} is not a readable tar archive: {_msg(exc)}", hint=hint) from None
    if not count and not whiteouts:
        raise WWError(f"{src} is empty", hint=hint)


def read_tarball(path: Path, spool: Spool, exclude: tuple[str, ...] = ()) -> list[Entry]:
    """The entries of a root-filesystem tarball, in archive order."""
    if not path.is_file():
        raise WWError(f"image tarball {path} does not exist" if not path.exists()
                      else f"image tarball {path} is not a file",
                      hint="check `tarball:` in cluster.yaml (relative paths start at its directory)")
    layers = Layers(exclude)
    _read_layer(layers, path, str(path), 0, spool, whiteouts=False)
    return complete(layers.entries)


# --- OCI --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Oci:
    """An OCI image layout on disk: the chosen manifest's layer files, lowest first."""

    layers: tuple[Path, ...]
    manifest_digest: str


def _blob(layout: Path, desc: dict[str, Any], src: str) -> Path:
    digest = str(desc.get("digest", ""))
    alg, _, hexpart = digest.partition(":")
    if not alg or not hexpart or "/" in digest or ".." in digest:
        raise WWError(f"{src}: bad digest {digest!r} in a descriptor")
    blob = layout / "blobs" / alg / hexpart
    if not blob.is_file():
        raise WWError(f"{src}: blob {digest} is missing", hint="the layout is incomplete; copy it again")
    return blob


def _json(path: Path, src: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise WWError(f"{src}: cannot read {path.name}: {exc}") from None
    if not isinstance(data, dict):
        raise WWError(f"{src}: {path.name} is not a JSON object")
    return data


def _choose(descs: list[dict[str, Any]], ref: str, src: str, arch: str) -> dict[str, Any]:
    if ref:
        named = [d for d in descs if d.get("annotations", {}).get(REF_NAME) == ref]
        if not named:
            refs = sorted(str(d.get("annotations", {}).get(REF_NAME)) for d in descs)
            raise WWError(f"{src} has no image named {ref!r}", hint="it has: " + ", ".join(refs))
        descs = named
    platform = [d for d in descs if d.get("platform", {}).get("architecture") == arch]
    if len(descs) > 1 and platform:
        descs = platform
    if len(descs) != 1:
        refs = sorted(str(d.get("annotations", {}).get(REF_NAME)) for d in descs)
        raise WWError(f"{src} holds {len(descs)} images", hint="choose one with `oci.ref`: "
                      + ", ".join(refs))
    return descs[0]


def oci_layout(layout: Path, ref: str = "", arch: str = "amd64", src: str = "") -> Oci:
    """Follow index.json (and any nested index) to one image manifest's layers."""
    src = src or str(layout)
    if not (layout / "index.json").is_file():
        raise WWError(f"{src} is not an OCI image layout: it has no index.json",
                      hint="give an OCI layout directory or an oci-archive tar "
                           "(e.g. `skopeo copy docker://IMAGE oci:DIR:TAG`)")
    index = _json(layout / "index.json", src)
    for _ in range(4):  # an index of indexes (multi-platform images) is followed
        desc = _choose(list(index.get("manifests", [])), ref, src, arch)
        doc = _json(_blob(layout, desc, src), src)
        if desc.get("mediaType") in INDEX_TYPES or doc.get("mediaType") in INDEX_TYPES:
            index, ref = doc, ""
            continue
        return Oci(tuple(_blob(layout, d, src) for d in doc.get("layers", [])), str(desc["digest"]))
    raise WWError(f"{src}: image indexes nested too deep")


@contextlib.contextmanager
def unpacked_layout(path: Path, work: Path | None) -> Iterator[Path]:
    """An oci-archive tar's layout as a directory (the blobs are copied once)."""
    with temp_dir(work, "wwstatic-oci") as tmp:
        dest = Path(tmp)
        try:
            with libarchive.file_reader(str(path)) as arch:
                for ae in arch:
                    name = _clean(str(path), ae.pathname)
                    if not ae.isreg or not name:
                        continue
                    out = dest / name
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with out.open("wb") as f:
                        for block in ae.get_blocks(1 << 20):
                            f.write(block)
        except libarchive.ArchiveError as exc:
            raise WWError(f"{path} is not a readable oci-archive tar: {_msg(exc)}") from None
        yield dest


def read_oci(path: Path, spool: Spool, ref: str = "", exclude: tuple[str, ...] = (),
             work: Path | None = None) -> list[Entry]:
    """The entries of an OCI image (layout directory or oci-archive tar), layers applied."""
    if not path.exists():
        raise WWError(f"OCI image {path} does not exist",
                      hint="check `oci.path` in cluster.yaml (relative paths start at its directory)")
    with contextlib.ExitStack() as stack:
        layout = path if path.is_dir() else stack.enter_context(unpacked_layout(path, work))
        oci = oci_layout(layout, ref, src=str(path))
        layers = Layers(exclude)
        for n, blob in enumerate(oci.layers):
            _read_layer(layers, blob, f"{path} layer {n + 1} ({blob.name[:12]})", n, spool,
                        whiteouts=True)
        return complete(layers.entries)


def oci_identity(path: Path, ref: str, stat_digest: Callable[[Path], str]) -> str:
    """What identifies an OCI image's content without reading its layers.

    A layout directory is content-addressed: its index.json names everything. An
    oci-archive is one file, fingerprinted like a tarball.
    """
    if path.is_dir():
        index = path / "index.json"
        try:
            return f"oci:{ref}:" + stat_digest(index)
        except OSError:
            return "missing"
    return f"oci-archive:{ref}:" + stat_digest(path)
