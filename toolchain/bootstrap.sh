#!/bin/sh
# Prepare a Debian 12 machine for wwstatic, then keep quiet: the system packages
# wwstatic drives (iPXE binaries, DHCP/TFTP/HTTP daemons, QEMU for the boot
# tests, ipmitool and OpenIPMI's BMC simulator for the power tests) and a
# virtual environment .venv with wwstatic and its test tools.
# Run as root (or with sudo available). Running it again changes nothing.
set -eu
cd "$(dirname "$0")/.."

# DHCP servers: isc-dhcp-server, dnsmasq-base (dnsmasq without its service) and
# kea-dhcp4-server; the tests run each in a network namespace of their own.
# Boot ISOs: isolinux + syslinux-common (BIOS), grub-efi-amd64-bin (UEFI loader of the
# standalone ISO), mtools (the El Torito EFI image). BMCs: ipmitool, openipmi (tests).
# Images: pigz and zstd (compression on every core), debootstrap (Debian images).
PACKAGES="python3 python3-venv libarchive13 ipxe ipxe-qemu qemu-system-x86 ovmf
isc-dhcp-server dnsmasq-base kea-dhcp4-server nginx-light cpio kmod iproute2 procps systemd
ipmitool openipmi isolinux syslinux-common grub-efi-amd64-bin mtools openssh-client fdisk
pigz zstd debootstrap"

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
    # Kea's package enables and starts its service (with Debian's config it
    # listens nowhere). A DHCP server wwstatic installed should not run by
    # itself: the admin starts the one cluster.yaml's dhcp.backend names.
    case " $missing " in
    *" kea-dhcp4-server "*)
        if [ -d /run/systemd/system ]; then
            $SUDO systemctl disable --now kea-dhcp4-server >/dev/null 2>&1 || true
        fi ;;
    esac
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
