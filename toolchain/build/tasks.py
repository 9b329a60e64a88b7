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

from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

from doit.tools import config_changed

from toolchain.build import current, dhcp, gc, generate, images, iso, layout, steps, store
from toolchain.build.publish import pointer_key
from toolchain.errors import WWError, report
from toolchain.fingerprint import digest
from toolchain.fsutil import copy_atomic

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

# The store takes the build lock when doit opens it (store.py says how doit finds it).
DOIT_CONFIG = {
    "dep_file": "output/.doit.db",
    "backend": store.BACKEND,
    "verbosity": 1,
    "action_string_formatting": "new",
}

IPXE_DIR = Path("/usr/lib/ipxe")
# First-stage iPXE binaries for the TFTP tree, by the name DHCP hands out.
TFTP_FILES = {"undionly.kpxe": "legacy BIOS", "snponly.efi": "x86-64 UEFI"}

Task = dict[str, Any]


def task_tftp() -> Iterator[Task]:
    """TFTP tree: first-stage iPXE binaries from the system's ipxe package."""
    out = current.project().out / "tftp"
    for name, what in TFTP_FILES.items():
        src = IPXE_DIR / name
        if not src.exists():
            raise SystemExit(report(WWError(f"{src} is missing",
                                            hint="install Debian's ipxe package: apt-get install ipxe")))
        yield {
            "name": name,
            "doc": f"iPXE first stage for {what}",
            "actions": [steps.action(copy_atomic, src, out / name)],
            "file_dep": [src.resolve()],
            "targets": [out / name],
            "clean": True,
        }

def task_httpboot() -> Iterator[Task]:
    """iPXE EFI binary for UEFI HTTP boot, served over HTTP (DHCP hands out its URL)."""
    p = current.project()
    # snponly.efi drives the NIC through the firmware's own network driver (SNP),
    # which the firmware that just booted over HTTP is sure to have.
    src = IPXE_DIR / "snponly.efi"
    target = p.http / generate.http_boot_path()
    yield {
        "name": target.name,
        "doc": "iPXE for x86-64 UEFI HTTP boot",
        "actions": [steps.action(copy_atomic, src, target)],
        "file_dep": [src.resolve()],
        "targets": [target],
        "clean": True,
    }

def task_demo() -> Iterator[Task]:
    """Image roots wwstatic builds: the demo (busybox and a Debian kernel), debootstrap."""
    p = current.project()
    for img in p.cluster.images.values():
        builder = images.prepared(img)
        if builder is None:
            continue
        try:
            key = images.root_key(img)
            cached = builder.is_built(img)
        except WWError as err:
            raise SystemExit(report(err)) from None
        yield {
            "name": img.name,
            "doc": f"build the root of {img.builder} image {img.name}",
            # The stamp names the recipe of the root beside it: a root rebuilt by a
            # killed build (doit's store unsaved) is not taken for another recipe's.
            "actions": [steps.action(images.build_root, p, img, key)],
            "targets": [images.root_stamp(p, img)],
            "uptodate": [steps.has(images.root_stamp(p, img), f"{key}\n".encode()), cached],
            "clean": True,
        }

def task_image() -> Iterator[Task]:
    """Image kernels and initrd archives (cpio newc; gzip, zstd or none)."""
    p = current.project()
    for img in p.cluster.images.values():
        task: Task = {
            "name": img.name,
            "doc": f"kernel and archive of image {img.name}",
            "actions": [steps.action(steps.build_image, p, img)],
            "targets": list(steps.image_files(p, img).values()),
            "file_dep": images.root_stamps(p, img),
            # Named by their inputs (context.image_keys): up to date when they exist.
            "uptodate": [True],
        }
        yield task

def task_shared() -> Iterator[Task]:
    """Overlay files that are the same for every node of an overlay list, rendered once."""
    p = current.project()
    plan = current.plan()
    for (kind, names), oset in sorted(plan.sets.items()):
        if oset.shared_blob is None:
            continue
        target = p.http / oset.shared_blob.url
        yield {
            "name": f"{kind}:{','.join(names)}",
            "doc": f"shared part of {kind} overlays {', '.join(names)}",
            "actions": [steps.action(steps.build_shared, kind, names, target)],
            "targets": [target],
            "uptodate": [True],
        }

def task_node() -> Iterator[Task]:
    """Each node's own part of its system and runtime overlays."""
    p = current.project()
    http = str(p.http)
    for name, np in current.plan().nodes.items():
        if not np.own:
            continue
        yield {
            "name": name,
            "doc": f"own overlay files of {name}",
            "actions": [steps.action(steps.build_node, p, name)],
            # Strings, not Paths: 10,000 tasks, and pathlib joins are slow.
            "targets": [f"{http}/{b.url}" for b in np.own.values()],
            "uptodate": [True],
        }

def task_publish() -> Task:
    """iPXE scripts and wwclient manifests, written after every blob they name."""
    p = current.project()
    plan = current.plan()
    base = steps.pointer_base(p)
    key = digest(base, *(f"{g.id}\0{g.kernel.url}\0{g.image_blob.url}\0"
                          + " ".join(b.url for _, _, b in g.initrds() if b) for g in plan.groups.values()),
                  *(pointer_key(np, p.node_keys[n], base) for n, np in plan.nodes.items()))
    return {
        "doc": "iPXE scripts and wwclient manifests, written after every blob they name",
        "actions": [steps.action(steps.publish_pointers, p, key)],
        "task_dep": ["image", "shared", "node"],
        # Asked of a stamp written after the last pointer, not of doit's store: a
        # build killed after publishing but before doit saved its store, then an
        # edit undone, would leave pointers to the undone edit's blobs, which
        # gc (following the plan) would remove after the grace period.
        "uptodate": [steps.has(p.state / "published", f"{key}\n".encode())],
    }

def task_gc() -> Task:
    """Remove served files no pointer names any more, after a grace period."""
    p = current.project()
    named = current.named()

    def uptodate(task: object, values: dict[str, Any]) -> bool:
        return not steps.gc_marker(p).exists() and gc.up_to_date(p.state / "gc.json", named, steps.grace())

    return {
        "doc": "remove files no pointer names, once unnamed for the grace period",
        "actions": [steps.action(steps.collect, p)],
        "task_dep": ["publish"],
        "uptodate": [uptodate],
    }

def task_dhcp() -> Iterator[Task]:
    """DHCP server configurations: ISC dhcpd, dnsmasq and Kea (cluster.yaml's dhcp.backend runs)."""
    p = current.project()
    for backend, name in dhcp.FILES.items():
        chosen = " (dhcp.backend)" if backend is p.cluster.dhcp.backend else ""
        yield steps.text_task(name, p.out / "etc" / name,
                         partial(dhcp.config_text, backend, p.cluster, p.out / "tftp"),
                         digest(steps.cluster_text_key(), backend),
                         f"{backend} DHCP server configuration{chosen}")

def task_nginx() -> Iterator[Task]:
    """nginx server configuration serving output/http."""
    p = current.project()
    yield steps.text_task("nginx.conf", p.out / "etc" / "nginx.conf",
                     partial(generate.nginx_conf, p.cluster, p.http),
                     digest(steps.cluster_text_key(), "nginx"), "nginx server block")

def task_iso() -> Iterator[Task]:
    """Boot ISOs: the cluster's network ISO, and a standalone ISO per node that asks for one."""
    p = current.project()
    out = p.out / "iso"
    # After `dhcp`, netX is the interface that got the lease: the one whose script to run.
    script = layout.ipxe_path_pattern("${netX/mac:hexhyp}")
    yield {
        "name": "network",
        "doc": "network boot ISO: iPXE, then the node's script from the head",
        "actions": [steps.action(iso.network_iso, p.cluster.head.http, script, out / "network.iso")],
        "file_dep": steps.iso_deps("network"),
        "targets": [out / "network.iso"],
        "uptodate": [config_changed(digest(p.cluster.head.http, script))],
        "clean": True,
    }
    # Opt-in per node (standalone_iso): each ISO carries a whole copy of the image,
    # which for a real image and thousands of nodes is terabytes nobody asked for.
    for node in p.cluster.nodes:
        if not node.standalone_iso:
            continue
        np = current.plan().nodes[node.name]
        kernel = p.http / np.kernel.url
        initrds = [(f"{name.replace('-', '_')}.img.gz", p.http / blob.url) for name, blob in np.initrds()]
        target = out / f"{node.name}.iso"
        yield {
            "name": node.name,
            "doc": f"standalone boot ISO of {node.name}: kernel, image and overlays",
            "actions": [steps.action(iso.standalone_iso, node, kernel, initrds, target)],
            "file_dep": [kernel, *(path for _, path in initrds), *steps.iso_deps("standalone")],
            "targets": [target],
            "uptodate": [config_changed(p.node_keys[node.name])],
            "clean": True,
        }
