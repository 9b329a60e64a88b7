"""The demo image: busybox and a Debian kernel, built from .deb files alone.

Nothing is installed on the build host: the packages are fetched with
`apt-get download` into a cache and unpacked with `dpkg-deb -x`. The result is a
root directory with a static busybox, the kernel in /boot (served to iPXE, left
out of the archive) and only the kernel modules the listed drivers need.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from toolchain.errors import WWError
from toolchain.fsutil import temp_dir
from toolchain.model.types import Image
from toolchain.proc import run

APT_HINT = "run `apt-get update` (the README's setup command does) and check the package name"

INITTAB = """\
# busybox init of the wwstatic demo image
::sysinit:/etc/init.d/rcS
::askfirst:-/bin/sh
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/umount -a -r
"""

# What the demo image does once wwinit hands over: show what was provisioned,
# prove the head serves HTTP, and power off when asked to (the tests ask).
RCS = """\
#!/bin/sh
echo "demo: hostname=$(hostname)"
ip -4 -o addr show | while read -r _ dev _ addr _; do
    echo "demo: address $dev $addr"
done
sed 's/^/demo: hosts: /' /etc/hosts
[ -r /etc/motd ] && sed 's/^/demo: motd: /' /etc/motd
. /warewulf/config
url="$WWHTTP/ipxe/$(echo "$WWHWADDR" | tr : -).ipxe"
if timeout 20 wget -q -O /tmp/own.ipxe "$url"; then
    echo "demo: fetched $url sha256=$(sha256sum /tmp/own.ipxe | cut -d' ' -f1)"
else
    echo "demo: could not fetch $url"
fi
if grep -q 'wwstatic.demo=poweroff' /proc/cmdline; then
    echo "demo: powering off"
    poweroff -f
fi
"""

PASSWD = "root:x:0:0:root:/root:/bin/sh\n"
GROUP = "root:x:0:\n"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "wwstatic" / "debs"


def _resolve(package: str) -> str:
    """A metapackage (linux-image-cloud-amd64) to the versioned package it depends on."""
    out = run(["apt-cache", "depends", package], capture=True, hint=APT_HINT)
    for line in out.splitlines():
        dep = line.strip().removeprefix("Depends:").strip()
        if line.strip().startswith("Depends:") and dep.startswith("linux-image-"):
            return dep
    return package


def fetch_deb(package: str) -> Path:
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob(f"{package}_*.deb"))
    if not found:
        run(["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", package],
            cwd=cache, hint=APT_HINT)
        found = sorted(cache.glob(f"{package}_*.deb"))
    if not found:
        raise WWError(f"apt-get download {package} left no .deb in {cache}", hint=APT_HINT)
    return found[-1]


def build_demo_root(image: Image, dest: Path) -> None:
    """Build the demo root into `dest` (replaced as a whole when done).

    Under umask 022 whatever the caller's: the modes of the directories made
    here (and by dpkg-deb and depmod) go into the image archive, which must
    not depend on who built it.
    """
    old = os.umask(0o022)
    try:
        _build_demo_root(image, dest)
    finally:
        os.umask(old)


def _build_demo_root(image: Image, dest: Path) -> None:
    kernel_pkg = _resolve(image.kernel_package)
    busybox_deb = fetch_deb("busybox-static")
    kernel_deb = fetch_deb(kernel_pkg)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with temp_dir(dest.parent, "demo") as tmp:
        work = Path(tmp)
        root, bbx, kx = work / "root", work / "busybox", work / "kernel"
        run(["dpkg-deb", "-x", busybox_deb, bbx])
        run(["dpkg-deb", "-x", kernel_deb, kx])
        for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc/init.d", "proc", "sys", "dev",
                  "run", "root", "var/log", "boot", "lib/modules"):
            (root / d).mkdir(parents=True, exist_ok=True)
        (root / "tmp").mkdir(mode=0o1777)
        os.chmod(root / "tmp", 0o1777)
        shutil.copy2(bbx / "bin/busybox", root / "bin/busybox")
        applets = run([bbx / "bin/busybox", "--list-full"], capture=True).split()
        for applet in applets:
            link = root / applet
            if not link.exists():
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(os.path.relpath(root / "bin/busybox", link.parent))
        _install_kernel(kx, root, image.modules)
        files = {"etc/inittab": (INITTAB, 0o644), "etc/init.d/rcS": (RCS, 0o755),
                 "etc/passwd": (PASSWD, 0o644), "etc/group": (GROUP, 0o644),
                 "etc/modules": ("".join(m + "\n" for m in image.modules), 0o644)}
        for rel, (text, mode) in files.items():
            (root / rel).write_text(text)
            os.chmod(root / rel, mode)
        if dest.exists():
            shutil.rmtree(dest)
        root.rename(dest)


def _install_kernel(kx: Path, root: Path, modules: tuple[str, ...]) -> None:
    kernels = sorted((kx / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise WWError(f"the kernel package has no /boot/vmlinuz-* ({kx})")
    vmlinuz = kernels[-1]
    version = vmlinuz.name.removeprefix("vmlinuz-")
    shutil.copy2(vmlinuz, root / "boot" / vmlinuz.name)
    if not modules:
        return
    run(["depmod", "-b", kx, version], hint="install kmod")
    src_mods = kx / "lib/modules" / version
    wanted: list[Path] = []
    for mod in modules:
        out = run(["modprobe", "-d", kx, "-S", version, "--show-depends", mod], capture=True,
                  hint=f"is `{mod}` a module of kernel {version}?")
        for line in out.splitlines():
            parts = line.split()
            if parts and parts[0] == "insmod":
                wanted.append(Path(parts[1]))
    for ko in wanted:
        rel = ko.relative_to(src_mods)
        target = root / "lib/modules" / version / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ko, target)
    for meta in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
        if (src_mods / meta).exists():
            shutil.copy2(src_mods / meta, root / "lib/modules" / version / meta)
    run(["depmod", "-b", root, version])
