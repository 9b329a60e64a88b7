"""The actions of the build's tasks, and the up-to-date checks they share.

Each action turns a WWError, or a full, read-only or forbidden output/, into
a clean task failure with the message (the file, and a hint).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import cache, partial
from pathlib import Path
from typing import Any

from doit.exceptions import TaskFailed

from toolchain.archive import Compression, is_secret, write_cpio
from toolchain.build import current, gc, images, iso, layout, store
from toolchain.build.context import Context
from toolchain.build.plan import cluster_key, node_context
from toolchain.build.publish import publish
from toolchain.errors import WWError
from toolchain.fingerprint import code_digest, digest
from toolchain.fsutil import publish_mode, write_atomic, write_error, write_if_changed
from toolchain.image.builder import build
from toolchain.model.types import Image
from toolchain.overlay import hostkeys, split

Task = dict[str, Any]


def action(fn: Callable[..., None], *args: Any) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """A doit python-action that turns a WWError into a clean task failure.

    So does a full, read-only or forbidden output/ (the file, and a hint);
    other OSErrors are bugs and keep their traceback.
    """
    def run(*a: Any) -> TaskFailed | None:
        try:
            fn(*a)
        except WWError as err:
            print(f"wwstatic: {err}", file=sys.stderr)
            store.task_failed(str(err))
            return TaskFailed(str(err))
        except OSError as exc:
            if (clear := write_error(exc)) is None:
                raise
            print(f"wwstatic: {clear}", file=sys.stderr)
            store.task_failed(str(clear))
            return TaskFailed(str(clear))
        return None
    run.__name__ = fn.__name__
    return (run, args)

def has(path: Path, data: bytes) -> Callable[..., bool]:
    """An uptodate check: does `path` hold `data`?

    Asked of the file itself, not of doit's store: a build killed after the
    write but before doit saved its store, followed by an edit undone, would
    otherwise leave the killed build's text in place as up to date.
    """
    def check(task: object, values: dict[str, Any]) -> bool:
        try:
            return path.read_bytes() == data
        except OSError:
            return False
    return check

def text_task(name: str, path: Path, render: Callable[[], str], key: str, doc: str) -> Task:
    """A file rendered from the cluster; `key` is a digest of everything `render` reads,
    so that a build with no change does not render a 10,000-node file to compare it.

    The key is kept in a stamp beside the build state, removed before the file
    is written and written after it: a build killed in between leaves no stamp,
    so the next build writes the file again (doit's own store is saved only at
    the end of a run, so a killed run and an undone edit could fool it).
    """
    stamp = current.project().state / "text" / f"{path.name}.key"

    def write() -> None:
        stamp.unlink(missing_ok=True)
        write_if_changed(path, render())  # inputs changed, but maybe not this file
        write_atomic(stamp, key + "\n")
    write.__name__ = f"write {path.name}"
    return {
        "name": name,
        "doc": doc,
        "actions": [action(write)],
        "targets": [path],
        "uptodate": [has(stamp, f"{key}\n".encode()), lambda task, values: path.exists()],
        "clean": True,
    }

@cache
def cluster_text_key() -> str:
    """What files generated from the whole cluster read: every node, the settings, the code."""
    p = current.project()
    return digest(code_digest("build/generate.py", "build/dhcp", "build/templates"),
                   cluster_key(p.cluster), str(p.out), *p.node_keys.values())

def image_files(p: Context, img: Image) -> dict[str, Path]:
    blobs = current.plan().images[img.name]
    files = {"kernel": p.http / blobs.kernel.url, "image": p.http / blobs.image.url}
    if blobs.modules:
        files["modules"] = p.http / blobs.modules.url
    files.update({f"kernel {v}": p.http / b.url for v, b in blobs.kernels.items()})
    return files

def gc_marker(p: Context) -> Path:
    return p.state / "gc.pending"

def will_write(p: Context, *paths: Path | str) -> None:
    """Note blobs about to be written, for gc to look at them.

    A blob written by a build killed before its pointers, or named by an edit
    undone before the next build, is unnamed without `referenced()` changing:
    gc runs while this list exists, looks at the files it names, and removes it
    once it has recorded every unnamed one.
    """
    marker = gc_marker(p)
    marker.parent.mkdir(parents=True, exist_ok=True)
    try:
        with marker.open("a") as f:
            f.write("".join(f"{Path(path).relative_to(p.http).as_posix()}\n" for path in paths))
    except OSError as exc:
        # Say which blob could not be written: the list is ours, not the user's.
        raise (write_error(exc, paths[0] if paths else marker) or exc) from None

def build_image(p: Context, img: Image) -> None:
    files = image_files(p, img)
    will_write(p, *files.values())
    with images.located(p.cluster.images[img.kernel_from] if img.kernel_from else img):
        kernel_src = images.source_of(p, p.cluster.images[img.kernel_from]) if img.kernel_from else None
    with images.located(img):
        build(images.source_of(p, img), image=files["image"], kernel=files["kernel"], name=img.name,
              exclude=img.exclude, compression=Compression(img.compression), version=img.kernel_version,
              kernel_src=kernel_src, modules=files.get("modules"), work=p.out / "work" / "spool",
              kernels={v: p.http / b.url for v, b in current.plan().images[img.name].kernels.items()})

def build_shared(kind: str, names: tuple[str, ...], target: Path) -> None:
    will_write(current.project(), target)
    entries = list(current.plan().sets[(kind, names)].shared_part.entries)
    mode, gid = publish_mode(is_secret(entries))
    write_cpio(entries, target, Compression.GZIP, mode=mode, gid=gid)

def build_node(p: Context, name: str) -> None:
    np = current.plan().nodes[name]
    values = node_context(p.cluster, np.node)
    for kind, blob in np.own.items():
        target = p.http / blob.url
        if target.exists():
            continue   # named by its inputs: an existing blob has the right bytes
        will_write(p, target)
        oset = np.group.sets[kind]
        part = split.render(p.root, oset.names, oset.per_node, values, current.env(), f"node {name}")
        entries = split.own(part, oset.shared_part)
        # An archive holding a node's secrets is not world-readable on the server either.
        mode, gid = publish_mode(is_secret(entries))
        write_cpio(entries, target, Compression.GZIP, mode=mode, gid=gid)

def pointer_base(p: Context) -> str:
    """What every node's pointers depend on besides the node and its blobs."""
    return digest(code_digest("build/publish.py", "build/templates"),
                   repr(p.cluster.head), str(p.cluster.wwclient_interval), Path(p.cluster.path).name)

def publish_pointers(p: Context, key: str) -> None:
    stamp = p.state / "published"
    if not stamp.exists() and (p.state / "gc.json").exists():
        gc.rescan(p.state / "gc.json")   # the last publish was cut short: find what it left
    stamp.unlink(missing_ok=True)
    gc.unpend(p.state / "gc.json", current.named())
    publish(p.cluster, current.plan(), p.http, p.state / "pointers.json", p.node_keys, pointer_base(p))
    write_atomic(stamp, key + "\n")

def grace() -> float:
    return float(os.environ.get("WWSTATIC_GC_GRACE", gc.DEFAULT_GRACE))

def collect(p: Context) -> None:
    named = current.named()
    marker = gc_marker(p)
    try:
        written = marker.read_text().split()
    except FileNotFoundError:
        written = []
    # Temporaries a killed build (or image build) left in output/ and beside the host
    # keys; those in the served tree are unnamed files like any other, for collect().
    left, due = gc.remove_temporaries(p.out, (p.out, p.root / hostkeys.STATE), grace(), skip=(p.http,))
    result = gc.collect(p.http, named, p.state / "gc.json", grace(),
                        partial(gc.served_files, p.http, (*layout.POINTER_DIRS, *layout.BLOB_DIRS)), written,
                        temporaries_due=due)
    marker.unlink(missing_ok=True)
    if result.removed:
        print(f"gc: removed {len(result.removed)} files no pointer names", file=sys.stderr)
    if left:
        print(f"gc: removed {len(left)} temporary files of killed builds", file=sys.stderr)

def iso_deps(kind: str) -> list[Path]:
    # The ISO builder itself, and the loaders it copies from system packages; a
    # missing loader is reported by the action (other tasks still build).
    loaders = [f.resolve() for f in iso.loaders(kind) if f.exists()]
    return [Path(iso.__file__), *loaders]
