"""doit task creators: the build of output/ as a graph of small tasks.

`dodo.py` imports these. Blobs (images, shared and per-node overlay layers) are
named by a digest of their inputs (layout.py, plan.py), so a blob task is up to
date exactly when its target exists: no stored digests to compare, no file to
re-hash. The `publish` task writes the pointers that name the blobs (iPXE
scripts, wwclient manifests) only after every blob task succeeded, and `gc`
removes what no pointer names any more after a grace period. Everything from
cluster.yaml reaches tasks as text whose digest `config_changed` compares.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Callable, Iterator
from functools import cache, partial
from pathlib import Path
from typing import Any

import jinja2
from doit.exceptions import TaskFailed
from doit.tools import config_changed

from . import cache as model_cache
from . import debootstrap, demo, dhcp, doitdb, gc, generate, iso, layout, lock, overlay, split
from .archive import Compression, is_secret, write_cpio
from .errors import WWError, report
from .fingerprint import code_digest, digest, image_code
from .fsutil import copy_atomic, make_dirs, publish_mode, write_atomic, write_error, write_if_changed
from .image import DigestCache, Source, build, fingerprint
from .model import Cluster, Image
from .plan import Plan, cluster_key, make_plan, node_context
from .publish import pointer_key, publish, referenced

__all__ = [
    "DOIT_CONFIG",
    "task_demo",
    "task_dhcp",
    "task_gc",
    "task_httpboot",
    "task_image",
    "task_iso",
    "task_nginx",
    "task_node",
    "task_publish",
    "task_shared",
    "task_tftp",
]

DOIT_CONFIG = {
    "dep_file": "output/.doit.db",
    "backend": "sqlite3",
    "verbosity": 1,
    "action_string_formatting": "new",
}

# doit opens its dependency store in output/ before any task runs, and two
# builds at once would race on it and on the pointers: take the lock first.
make_dirs(Path("output"))
if Path("cluster.yaml").exists():
    lock.acquire(Path("output"), wait=os.environ.get("WWSTATIC_LOCK_WAIT", "1") != "0")
doitdb.install()

IPXE_DIR = Path("/usr/lib/ipxe")
# First-stage iPXE binaries for the TFTP tree, by the name DHCP hands out.
TFTP_FILES = {"undionly.kpxe": "legacy BIOS", "snponly.efi": "x86-64 UEFI"}

Task = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Project:
    root: Path
    cluster: Cluster
    node_keys: dict[str, str]

    @property
    def out(self) -> Path:
        return self.root / "output"

    @property
    def http(self) -> Path:
        return self.out / "http"

    @property
    def state(self) -> Path:
        return self.out / ".state"


@cache
def project() -> Project:
    """The project in the current directory; a bad cluster.yaml ends the run here."""
    root = Path.cwd()
    try:
        cluster, keys = model_cache.load(root / "cluster.yaml", root / "output" / ".state")
    except WWError as err:
        raise SystemExit(report(err)) from None
    return Project(root, cluster, keys)


def _action(fn: Callable[..., None], *args: Any) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """A doit python-action that turns a WWError into a clean task failure.

    So does a full, read-only or forbidden output/ (the file, and a hint);
    other OSErrors are bugs and keep their traceback.
    """
    def run(*a: Any) -> TaskFailed | None:
        try:
            fn(*a)
        except WWError as err:
            print(f"wwstatic: {err}", file=sys.stderr)
            doitdb.task_failed(str(err))
            return TaskFailed(str(err))
        except OSError as exc:
            if (clear := write_error(exc)) is None:
                raise
            print(f"wwstatic: {clear}", file=sys.stderr)
            doitdb.task_failed(str(clear))
            return TaskFailed(str(clear))
        return None
    run.__name__ = fn.__name__
    return (run, args)


def _has(path: Path, data: bytes) -> Callable[..., bool]:
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


def _text_task(name: str, path: Path, render: Callable[[], str], key: str, doc: str) -> Task:
    """A file rendered from the cluster; `key` is a digest of everything `render` reads,
    so that a build with no change does not render a 10,000-node file to compare it.

    The key is kept in a stamp beside the build state, removed before the file
    is written and written after it: a build killed in between leaves no stamp,
    so the next build writes the file again (doit's own store is saved only at
    the end of a run, so a killed run and an undone edit could fool it).
    """
    stamp = project().state / "text" / f"{path.name}.key"

    def write() -> None:
        stamp.unlink(missing_ok=True)
        write_if_changed(path, render())  # inputs changed, but maybe not this file
        write_atomic(stamp, key + "\n")
    write.__name__ = f"write {path.name}"
    return {
        "name": name,
        "doc": doc,
        "actions": [_action(write)],
        "targets": [path],
        "uptodate": [_has(stamp, f"{key}\n".encode()), lambda task, values: path.exists()],
        "clean": True,
    }


@cache
def _cluster_text_key() -> str:
    """What files generated from the whole cluster read: every node, the settings, the code."""
    p = project()
    return digest(code_digest("generate.py", "dhcp/*.py", "templates/*", "model.py", "spec.py"),
                   cluster_key(p.cluster), str(p.out), *p.node_keys.values())


# --- TFTP tree --------------------------------------------------------------

def task_tftp() -> Iterator[Task]:
    """TFTP tree: first-stage iPXE binaries from the system's ipxe package."""
    out = project().out / "tftp"
    for name, what in TFTP_FILES.items():
        src = IPXE_DIR / name
        if not src.exists():
            raise SystemExit(report(WWError(f"{src} is missing",
                                            hint="install Debian's ipxe package: apt-get install ipxe")))
        yield {
            "name": name,
            "doc": f"iPXE first stage for {what}",
            "actions": [_action(copy_atomic, src, out / name)],
            "file_dep": [src.resolve()],
            "targets": [out / name],
            "clean": True,
        }


def task_httpboot() -> Iterator[Task]:
    """iPXE EFI binary for UEFI HTTP boot, served over HTTP (DHCP hands out its URL)."""
    p = project()
    # snponly.efi drives the NIC through the firmware's own network driver (SNP),
    # which the firmware that just booted over HTTP is sure to have.
    src = IPXE_DIR / "snponly.efi"
    target = p.http / generate.http_boot_path()
    yield {
        "name": target.name,
        "doc": "iPXE for x86-64 UEFI HTTP boot",
        "actions": [_action(copy_atomic, src, target)],
        "file_dep": [src.resolve()],
        "targets": [target],
        "clean": True,
    }


# --- images -----------------------------------------------------------------

def _demo_root(p: Project, image: str) -> Path:
    return p.out / "work" / "images" / image / "rootfs"


def _image_spec(img: Image) -> str:
    return json.dumps(dataclasses.asdict(img), sort_keys=True)


def _root_stamp(p: Project, img: Image) -> Path:
    return p.out / "work" / "images" / img.name / "rootfs.done"


def _build_root(p: Project, img: Image, key: str) -> None:
    # The root is replaced in place: a build killed half-way must not leave the
    # old stamp beside a half-new (or no) root, or the next build would trust it.
    _root_stamp(p, img).unlink(missing_ok=True)
    if img.builder == "demo":
        demo.build_demo_root(img, _demo_root(p, img.name))
    else:
        assert img.debootstrap is not None
        debootstrap.build_root(img.debootstrap)
    write_atomic(_root_stamp(p, img), key + "\n")


def task_demo() -> Iterator[Task]:
    """Image roots wwstatic builds: the demo (busybox and a Debian kernel), debootstrap."""
    p = project()
    for img in p.cluster.images.values():
        if img.builder not in ("demo", "debootstrap"):
            continue
        spec = _image_spec(img) + image_code()
        cached = True
        if img.debootstrap is not None:
            # The mirror comes from apt's configuration: a new one is a new root.
            try:
                spec += json.dumps(debootstrap.recipe(img.debootstrap), sort_keys=True)
            except WWError as err:
                raise SystemExit(report(err)) from None
            cached = debootstrap.is_built(img.debootstrap)
        yield {
            "name": img.name,
            "doc": f"build the root of {img.builder} image {img.name}",
            # The stamp names the recipe of the root beside it: a root rebuilt by a
            # killed build (doit's store unsaved) is not taken for another recipe's.
            "actions": [_action(_build_root, p, img, digest(spec))],
            "targets": [_root_stamp(p, img)],
            "uptodate": [_has(_root_stamp(p, img), f"{digest(spec)}\n".encode()), cached],
            "clean": True,
        }


def _source(p: Project, img: Image) -> Source:
    if img.builder == "demo":
        return Source("root", _demo_root(p, img.name), owner_root=True)
    if img.builder == "debootstrap":
        assert img.debootstrap is not None
        return Source("root", debootstrap.root_dir(img.debootstrap))
    if img.builder == "root":
        return Source("root", Path(img.root))
    return Source(img.builder, Path(img.path), img.oci_ref)


def _used(p: Project, img: Image) -> list[Image]:
    """The image and, when it boots another image's kernel, that image."""
    return [img] + ([p.cluster.images[img.kernel_from]] if img.kernel_from else [])


@cache
def _image_keys() -> dict[str, str]:
    """Each image's input digest: its settings, the code that builds it, and what its
    source is now (a root's metadata, a tarball's digest; wwstatic-built roots by recipe)."""
    p = project()
    digests = DigestCache(p.out / "work" / "digests.json")
    keys: dict[str, str] = {}
    for img in p.cluster.images.values():
        parts = [image_code()]
        for u in _used(p, img):
            parts.append(_image_spec(u))
            if u.debootstrap is not None:
                try:
                    parts.append(json.dumps(debootstrap.recipe(u.debootstrap), sort_keys=True))
                except WWError as err:
                    raise SystemExit(report(err)) from None
            elif u.builder != "demo":
                parts.append(fingerprint(_source(p, u), digests))
        keys[img.name] = digest(*parts)
    return keys


def _image_files(p: Project, img: Image) -> dict[str, Path]:
    blobs = _plan().images[img.name]
    files = {"kernel": p.http / blobs.kernel.url, "image": p.http / blobs.image.url}
    if blobs.modules:
        files["modules"] = p.http / blobs.modules.url
    return files


def _gc_marker(p: Project) -> Path:
    return p.state / "gc.pending"


def _will_write(p: Project, *paths: Path | str) -> None:
    """Note blobs about to be written, for gc to look at them.

    A blob written by a build killed before its pointers, or named by an edit
    undone before the next build, is unnamed without `referenced()` changing:
    gc runs while this list exists, looks at the files it names, and removes it
    once it has recorded every unnamed one.
    """
    marker = _gc_marker(p)
    marker.parent.mkdir(parents=True, exist_ok=True)
    try:
        with marker.open("a") as f:
            f.write("".join(f"{Path(path).relative_to(p.http).as_posix()}\n" for path in paths))
    except OSError as exc:
        # Say which blob could not be written: the list is ours, not the user's.
        raise (write_error(exc, paths[0] if paths else marker) or exc) from None


def _build_image(p: Project, img: Image) -> None:
    files = _image_files(p, img)
    _will_write(p, *files.values())
    kernel_src = _source(p, p.cluster.images[img.kernel_from]) if img.kernel_from else None
    build(_source(p, img), image=files["image"], kernel=files["kernel"], name=img.name,
          exclude=img.exclude, compression=Compression(img.compression), version=img.kernel_version,
          kernel_src=kernel_src, modules=files.get("modules"), work=p.out / "work" / "spool")


def task_image() -> Iterator[Task]:
    """Image kernels and initrd archives (cpio newc; gzip, zstd or none)."""
    p = project()
    for img in p.cluster.images.values():
        task: Task = {
            "name": img.name,
            "doc": f"kernel and archive of image {img.name}",
            "actions": [_action(_build_image, p, img)],
            "targets": list(_image_files(p, img).values()),
            "file_dep": [_root_stamp(p, u) for u in _used(p, img)
                         if u.builder in ("demo", "debootstrap")],
            # Named by their inputs (_image_keys): up to date when they exist.
            "uptodate": [True],
        }
        yield task


# --- overlays ---------------------------------------------------------------

@cache
def _env() -> jinja2.Environment:
    return overlay.make_env(project().root)


@cache
def _plan() -> Plan:
    p = project()
    try:
        return make_plan(p.root, p.cluster, _env(), p.node_keys, _image_keys())
    except WWError as err:
        raise SystemExit(report(err)) from None


@cache
def _referenced() -> set[str]:
    """Every served file the current pointers name (for gc), computed once per run."""
    return referenced(_plan())


def _build_shared(kind: str, names: tuple[str, ...], target: Path) -> None:
    _will_write(project(), target)
    entries = list(_plan().sets[(kind, names)].shared_part.entries)
    mode, gid = publish_mode(is_secret(entries))
    write_cpio(entries, target, Compression.GZIP, mode=mode, gid=gid)


def task_shared() -> Iterator[Task]:
    """Overlay files that are the same for every node of an overlay list, rendered once."""
    p = project()
    plan = _plan()
    for (kind, names), oset in sorted(plan.sets.items()):
        if oset.shared_blob is None:
            continue
        target = p.http / oset.shared_blob.url
        yield {
            "name": f"{kind}:{','.join(names)}",
            "doc": f"shared part of {kind} overlays {', '.join(names)}",
            "actions": [_action(_build_shared, kind, names, target)],
            "targets": [target],
            "uptodate": [True],
        }


def _build_node(p: Project, name: str) -> None:
    np = _plan().nodes[name]
    context = node_context(p.cluster, np.node)
    for kind, blob in np.own.items():
        target = p.http / blob.url
        if target.exists():
            continue   # named by its inputs: an existing blob has the right bytes
        _will_write(p, target)
        oset = np.group.sets[kind]
        part = split.render(p.root, oset.names, oset.per_node, context, _env(), f"node {name}")
        entries = split.own(part, oset.shared_part)
        # An archive holding a node's secrets is not world-readable on the server either.
        mode, gid = publish_mode(is_secret(entries))
        write_cpio(entries, target, Compression.GZIP, mode=mode, gid=gid)


def task_node() -> Iterator[Task]:
    """Each node's own part of its system and runtime overlays."""
    p = project()
    http = str(p.http)
    for name, np in _plan().nodes.items():
        if not np.own:
            continue
        yield {
            "name": name,
            "doc": f"own overlay files of {name}",
            "actions": [_action(_build_node, p, name)],
            # Strings, not Paths: 10,000 tasks, and pathlib joins are slow.
            "targets": [f"{http}/{b.url}" for b in np.own.values()],
            "uptodate": [True],
        }


# --- boot configuration -----------------------------------------------------

def _pointer_base(p: Project) -> str:
    """What every node's pointers depend on besides the node and its blobs."""
    return digest(code_digest("publish.py", "generate.py", "plan.py", "layout.py", "templates/ipxe/*",
                               "templates/*.ipxe.j2"),
                   repr(p.cluster.head), str(p.cluster.wwclient_interval), Path(p.cluster.path).name)


def _publish(p: Project, key: str) -> None:
    stamp = p.state / "published"
    stamp.unlink(missing_ok=True)
    gc.unpend(p.state / "gc.json", _referenced())
    publish(p.cluster, _plan(), p.http, p.state / "pointers.json", p.node_keys, _pointer_base(p))
    write_atomic(stamp, key + "\n")


def task_publish() -> Task:
    """iPXE scripts and wwclient manifests, written after every blob they name."""
    p = project()
    plan = _plan()
    base = _pointer_base(p)
    key = digest(base, *(f"{g.id}\0{g.kernel.url}\0{g.image_blob.url}\0"
                          + " ".join(b.url for _, _, b in g.initrds() if b) for g in plan.groups.values()),
                  *(pointer_key(np, p.node_keys[n], base) for n, np in plan.nodes.items()))
    return {
        "doc": "iPXE scripts and wwclient manifests, written after every blob they name",
        "actions": [_action(_publish, p, key)],
        "task_dep": ["image", "shared", "node"],
        # Asked of a stamp written after the last pointer, not of doit's store: a
        # build killed after publishing but before doit saved its store, then an
        # edit undone, would leave pointers to the undone edit's blobs, which
        # gc (following the plan) would remove after the grace period.
        "uptodate": [_has(p.state / "published", f"{key}\n".encode())],
    }


def _grace() -> float:
    return float(os.environ.get("WWSTATIC_GC_GRACE", gc.DEFAULT_GRACE))


def _collect(p: Project) -> None:
    named = _referenced()
    marker = _gc_marker(p)
    try:
        written = marker.read_text().split()
    except FileNotFoundError:
        written = []
    result = gc.collect(p.http, named, p.state / "gc.json", _grace(),
                        partial(gc.served_files, p.http, (*layout.POINTER_DIRS, *layout.BLOB_DIRS)), written)
    marker.unlink(missing_ok=True)
    if result.removed:
        print(f"gc: removed {len(result.removed)} files no pointer names", file=sys.stderr)


def task_gc() -> Task:
    """Remove served files no pointer names any more, after a grace period."""
    p = project()
    named = _referenced()

    def uptodate(task: object, values: dict[str, Any]) -> bool:
        return not _gc_marker(p).exists() and gc.up_to_date(p.state / "gc.json", named, _grace())

    return {
        "doc": "remove files no pointer names, once unnamed for the grace period",
        "actions": [_action(_collect, p)],
        "task_dep": ["publish"],
        "uptodate": [uptodate],
    }


def task_dhcp() -> Iterator[Task]:
    """DHCP server configurations: ISC dhcpd, dnsmasq and Kea (cluster.yaml's dhcp.backend runs)."""
    p = project()
    for backend, name in dhcp.FILES.items():
        chosen = " (dhcp.backend)" if backend is p.cluster.dhcp.backend else ""
        yield _text_task(name, p.out / "etc" / name,
                         partial(dhcp.config_text, backend, p.cluster, p.out / "tftp"),
                         digest(_cluster_text_key(), backend),
                         f"{backend} DHCP server configuration{chosen}")


def task_nginx() -> Iterator[Task]:
    """nginx server configuration serving output/http."""
    p = project()
    yield _text_task("nginx.conf", p.out / "etc" / "nginx.conf",
                     partial(generate.nginx_conf, p.cluster, p.http),
                     digest(_cluster_text_key(), "nginx"), "nginx server block")


# --- boot ISOs ----------------------------------------------------------------

def _iso_deps(kind: str) -> list[Path]:
    # The ISO builder itself, and the loaders it copies from system packages; a
    # missing loader is reported by the action (other tasks still build).
    loaders = [f.resolve() for f in iso.loaders(kind) if f.exists()]
    return [Path(iso.__file__), *loaders]


def task_iso() -> Iterator[Task]:
    """Boot ISOs: the cluster's network ISO, and a standalone ISO per node that asks for one."""
    p = project()
    out = p.out / "iso"
    # After `dhcp`, netX is the interface that got the lease: the one whose script to run.
    script = layout.ipxe_path_pattern("${netX/mac:hexhyp}")
    yield {
        "name": "network",
        "doc": "network boot ISO: iPXE, then the node's script from the head",
        "actions": [_action(iso.network_iso, p.cluster.head.http, script, out / "network.iso")],
        "file_dep": _iso_deps("network"),
        "targets": [out / "network.iso"],
        "uptodate": [config_changed(digest(p.cluster.head.http, script))],
        "clean": True,
    }
    # Opt-in per node (standalone_iso): each ISO carries a whole copy of the image,
    # which for a real image and thousands of nodes is terabytes nobody asked for.
    for node in p.cluster.nodes:
        if not node.standalone_iso:
            continue
        np = _plan().nodes[node.name]
        kernel = p.http / np.kernel.url
        initrds = [(f"{name.replace('-', '_')}.img.gz", p.http / blob.url) for name, blob in np.initrds()]
        target = out / f"{node.name}.iso"
        yield {
            "name": node.name,
            "doc": f"standalone boot ISO of {node.name}: kernel, image and overlays",
            "actions": [_action(iso.standalone_iso, node, kernel, initrds, target)],
            "file_dep": [kernel, *(path for _, path in initrds), *_iso_deps("standalone")],
            "targets": [target],
            "uptodate": [config_changed(p.node_keys[node.name])],
            "clean": True,
        }
