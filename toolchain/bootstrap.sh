#!/bin/sh
# Prepare a Debian 12 machine for wwstatic, then keep quiet: the system packages
# wwstatic drives (iPXE binaries, DHCP/TFTP/HTTP daemons, QEMU for the boot
# tests) and a virtual environment .venv with wwstatic and its test tools.
# Run as root (or with sudo available). Running it again changes nothing.
set -eu
cd "$(dirname "$0")/.."

PACKAGES="python3 python3-venv libarchive13 ipxe ipxe-qemu qemu-system-x86 ovmf
isc-dhcp-server nginx-light cpio kmod iproute2 procps pigz zstd debootstrap"

if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

missing=""
for pkg in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing="$missing $pkg"
done
# The demo image fetches its kernel with `apt-get download`, which needs package lists.
if [ -n "$missing" ] || ! ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1; then
    echo "bootstrap: apt-get update"
    $SUDO apt-get update -qq
fi
if [ -n "$missing" ]; then
    echo "bootstrap: installing$missing"
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    echo "bootstrap: creating .venv"
    python3 -m venv .venv
fi
stamp=.venv/.wwstatic-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "bootstrap: installing wwstatic into .venv"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[test]'
    touch "$stamp"
fi
echo "bootstrap: ready"
