"""doit task creators: one task (or subtask) per file in output/.

`dodo.py` imports these. Each task writes its targets atomically, and each
declares what it depends on (file_dep for files, `config_changed` on a digest
for everything from cluster.yaml), so doit reruns exactly the tasks whose
inputs changed and a build with no change runs nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jinja2.meta
from doit.exceptions import TaskFailed
from doit.tools import config_changed

from . import debootstrap, demo, generate, overlay
from .archive import Compression, Entry, write_cpio
from .errors import WWError, report
from .fsutil import copy_atomic, write_atomic
from .image import DigestCache, Source, build, fingerprint
from .model import Cluster, Image, Node, load_cluster

__all__ = [
    "DOIT_CONFIG",
    "task_demo",
    "task_dhcp",
    "task_image",
    "task_ipxe",
    "task_nginx",
    "task_runtime",
    "task_system",
    "task_tftp",
]

DOIT_CONFIG = {
    "dep_file": "output/.doit.db",
    "backend": "sqlite3",
    "verbosity": 1,
    "action_string_formatting": "new",
}

# doit opens its dependency store before any task runs; it lives in output/.
Path("output").mkdir(exist_ok=True)

IPXE_DIR = Path("/usr/lib/ipxe")
# First-stage iPXE binaries for the TFTP tree, by the name DHCP hands out.
TFTP_FILES = {"undionly.kpxe": "legacy BIOS", "snponly.efi": "x86-64 UEFI"}

Task = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Project:
    root: Path
    cluster: Cluster

    @property
    def out(self) -> Path:
        return self.root / "output"

    @property
    def http(self) -> Path:
        return self.out / "http"


@cache
def project() -> Project:
    """The project in the current directory; a bad cluster.yaml ends the run here."""
    root = Path.cwd()
    try:
        cluster = load_cluster(root / "cluster.yaml")
    except WWError as err:
        raise SystemExit(report(err)) from None
    return Project(root, cluster)


def _digest(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()


def _action(fn: Callable[..., None], *args: Any) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """A doit python-action that turns a WWError into a clean task failure."""
    def run(*a: Any) -> TaskFailed | None:
        try:
            fn(*a)
        except WWError as err:
            print(f"wwstatic: {err}", file=sys.stderr)
            return TaskFailed(str(err))
        return None
    run.__name__ = fn.__name__
    return (run, args)


def _text_task(name: str, path: Path, text: str, doc: str) -> Task:
    return {
        "name": name,
        "doc": doc,
        "actions": [_action(write_atomic, path, text)],
        "targets": [path],
        "uptodate": [config_changed(_digest(text))],
        "clean": True,
    }


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


# --- images -----------------------------------------------------------------

def _demo_root(p: Project, image: str) -> Path:
    return p.out / "work" / "images" / image / "rootfs"


def _image_spec(img: Image) -> str:
    return json.dumps(dataclasses.asdict(img), sort_keys=True)


def _root_stamp(p: Project, img: Image) -> Path:
    return p.out / "work" / "images" / img.name / "rootfs.done"


def _build_root(p: Project, img: Image) -> None:
    if img.builder == "demo":
        demo.build_demo_root(img, _demo_root(p, img.name))
    else:
        assert img.debootstrap is not None
        debootstrap.build_root(img.debootstrap)
    write_atomic(_root_stamp(p, img), _image_spec(img) + "\n")


def task_demo() -> Iterator[Task]:
    """Image roots wwstatic builds: the demo (busybox and a Debian kernel), debootstrap."""
    p = project()
    for img in p.cluster.images.values():
        if img.builder not in ("demo", "debootstrap"):
            continue
        spec = _image_spec(img)
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
            "actions": [_action(_build_root, p, img)],
            "targets": [_root_stamp(p, img)],
            "uptodate": [config_changed(_digest(spec)), cached],
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


def _image_files(p: Project, img: Image) -> dict[str, Path]:
    files = {"kernel": p.http / generate.kernel_url(img.name),
             "image": p.http / generate.image_url(img.name, img.compression)}
    if img.kernel_from:
        files["modules"] = p.http / generate.modules_url(img.name, img.compression)
    return files


def _build_image(p: Project, img: Image) -> None:
    files = _image_files(p, img)
    kernel_src = _source(p, p.cluster.images[img.kernel_from]) if img.kernel_from else None
    build(_source(p, img), image=files["image"], kernel=files["kernel"], name=img.name,
          exclude=img.exclude, compression=Compression(img.compression), version=img.kernel_version,
          kernel_src=kernel_src, modules=files.get("modules"), work=p.out / "work" / "spool")


class _Fingerprint(config_changed):  # type: ignore[misc]
    """`config_changed` on a value computed when doit checks the task, not when it
    lists tasks: walking a big image root is for `doit` runs that may build it."""

    def __init__(self, compute: Callable[[], str]) -> None:
        super().__init__("")
        self.compute = compute

    def _calc_digest(self) -> str:
        return self.compute()


def task_image() -> Iterator[Task]:
    """Image kernels and initrd archives (cpio newc; gzip, zstd or none)."""
    p = project()
    cache = DigestCache(p.out / "work" / "digests.json")
    for img in p.cluster.images.values():
        used = [img] + ([p.cluster.images[img.kernel_from]] if img.kernel_from else [])
        task: Task = {
            "name": img.name,
            "doc": f"kernel and archive of image {img.name}",
            "actions": [_action(_build_image, p, img)],
            "targets": list(_image_files(p, img).values()),
            "file_dep": [_root_stamp(p, u) for u in used if u.builder in ("demo", "debootstrap")],
            "clean": True,
        }

        def state(used: list[Image] = used) -> str:
            parts = [_image_spec(u) for u in used]
            parts += [fingerprint(_source(p, u), cache) for u in used
                      if u.builder in ("root", "tarball", "oci")]
            return _digest(*parts)

        task["uptodate"] = [_Fingerprint(state)]
        yield task


# --- overlays ---------------------------------------------------------------

@cache
def _env() -> jinja2.Environment:
    return overlay.make_env(project().root)


@cache
def _uses_all_nodes(names: tuple[str, ...]) -> bool:
    """Whether any template of these overlays reads `nodes` (then any node's change matters)."""
    env = _env()
    return any(path.suffix == ".j2"
               and "nodes" in jinja2.meta.find_undeclared_variables(env.parse(path.read_text()))
               for path in _sources(names))


@cache
def _all_nodes_json() -> str:
    return json.dumps([json.loads(n.to_json()) for n in project().cluster.nodes])


def _context(p: Project, node: Node) -> dict[str, Any]:
    return {
        "node": node,
        "nodes": p.cluster.nodes,
        "head": p.cluster.head,
        "image": p.cluster.images[node.image],
        "cluster_file": Path(p.cluster.path).name,
    }


def _build_overlay(p: Project, node: Node, kind: str, names: tuple[str, ...]) -> None:
    entries: list[Entry] = overlay.layer(p.root, names, _context(p, node), _env(),
                                         f"node {node.name}")
    write_cpio(entries, p.http / generate.overlay_url(node.name, kind), Compression.GZIP)


@cache
def _sources(names: tuple[str, ...]) -> list[Path]:
    """Overlay source files, walked once per distinct overlay list, not once per node."""
    return overlay.source_files(project().root, names)


def _overlay_tasks(kind: str) -> Iterator[Task]:
    p = project()
    head = repr(p.cluster.head)
    for node in p.cluster.nodes:
        names = node.system_overlays if kind == "system" else node.runtime_overlays
        sources = _sources(names)
        deps = [node.to_json(), head, json.dumps([str(s) for s in sources])]
        if _uses_all_nodes(names):
            deps.append(_all_nodes_json())
        yield {
            "name": node.name,
            "doc": f"{kind} overlay of {node.name}: {', '.join(names) or '(none)'}",
            "actions": [_action(_build_overlay, p, node, kind, names)],
            "file_dep": sources,
            "targets": [p.http / generate.overlay_url(node.name, kind)],
            "uptodate": [config_changed(_digest(*deps))],
            "clean": True,
        }


def task_system() -> Iterator[Task]:
    """Per-node system overlays (unpacked at boot, before init)."""
    yield from _overlay_tasks("system")


def task_runtime() -> Iterator[Task]:
    """Per-node runtime overlays (unpacked at boot, refreshed by wwclient)."""
    yield from _overlay_tasks("runtime")


# --- boot configuration -----------------------------------------------------

def task_ipxe() -> Iterator[Task]:
    """Per-node iPXE scripts, and the script for unknown MACs."""
    p = project()
    for node in p.cluster.nodes:
        yield _text_task(node.name, p.http / generate.ipxe_path(node),
                         generate.node_ipxe(p.cluster, node), f"iPXE script of {node.name}")
    yield _text_task("@unknown", p.http / "ipxe" / "unknown.ipxe",
                     generate.unknown_ipxe(p.cluster), "iPXE script for unknown MACs")


def task_dhcp() -> Iterator[Task]:
    """ISC dhcpd configuration."""
    p = project()
    yield _text_task("dhcpd.conf", p.out / "etc" / "dhcpd.conf", generate.dhcpd_conf(p.cluster),
                     "ISC dhcpd configuration")


def task_nginx() -> Iterator[Task]:
    """nginx server configuration serving output/http."""
    p = project()
    yield _text_task("nginx.conf", p.out / "etc" / "nginx.conf",
                     generate.nginx_conf(p.cluster, p.http), "nginx server block")
