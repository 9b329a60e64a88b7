"""Ask a DHCP server what it offers each kind of boot client; print the offers as JSON.

Run inside the test network namespace: `dhcp_probe.py IFACE MAC` with a JSON
list of clients on stdin, each {"name", "arch", "vendor_class", "user_class",
"ipxe"}. Sends a DHCPDISCOVER per client with the broadcast flag, so the offer
comes back to port 68 on IFACE, which needs no address. Standard library only.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys
import time
from typing import Any

COOKIE = b"\x63\x82\x53\x63"
# What PXE firmware and iPXE ask for: netmask, router, DNS, hostname, vendor
# options, vendor class, TFTP server, boot file, client arch, iPXE's options.
REQUESTED = bytes([1, 3, 6, 12, 43, 60, 66, 67, 93, 175])


def _option(code: int, data: bytes) -> bytes:
    return bytes([code, len(data)]) + data


def discover(xid: int, mac: bytes, client: dict[str, Any]) -> bytes:
    head = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, xid, 0, 0x8000,
                       b"\0" * 4, b"\0" * 4, b"\0" * 4, b"\0" * 4, mac.ljust(16, b"\0"),
                       b"", b"")
    opts = _option(53, b"\x01") + _option(55, REQUESTED)
    if client.get("arch") is not None:
        opts += _option(93, struct.pack("!H", client["arch"]))
    if client.get("vendor_class"):
        opts += _option(60, client["vendor_class"].encode())
    if client.get("user_class"):
        opts += _option(77, client["user_class"].encode())
    if client.get("ipxe"):
        # iPXE's feature list: 0x13 (HTTP) = 1, as iPXE itself sends it.
        opts += _option(175, _option(0x13, b"\x01"))
    return head + COOKIE + opts + b"\xff"


def parse(packet: bytes) -> dict[str, Any]:
    yiaddr, siaddr = packet[16:20], packet[20:24]
    file_field = packet[108:236].rstrip(b"\0").decode(errors="replace")
    options: dict[int, bytes] = {}
    i = 240
    while i < len(packet) and packet[i] != 255:
        if packet[i] == 0:
            i += 1
            continue
        code, length = packet[i], packet[i + 1]
        options[code] = options.get(code, b"") + packet[i + 2:i + 2 + length]
        i += 2 + length
    boot = options[67].rstrip(b"\0").decode() if 67 in options else file_field
    return {
        "type": options.get(53, b"\0")[0],
        "yiaddr": socket.inet_ntoa(yiaddr),
        "siaddr": socket.inet_ntoa(siaddr),
        "boot_file": boot,
        "vendor_class": options[60].decode(errors="replace") if 60 in options else None,
        "ipxe_options": options[175].hex() if 175 in options else None,
    }


def ask(sock: socket.socket, mac: bytes, client: dict[str, Any]) -> dict[str, Any] | None:
    xid = int.from_bytes(os.urandom(4), "big")
    packet = discover(xid, mac, client)
    for _ in range(5):
        sock.sendto(packet, ("255.255.255.255", 67))
        end = time.monotonic() + 1.0
        while (left := end - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data = sock.recv(4096)
            except TimeoutError:
                break
            if len(data) > 240 and data[0] == 2 and struct.unpack("!I", data[4:8])[0] == xid:
                return parse(data)
    return None


def main() -> int:
    iface, mac = sys.argv[1], bytes.fromhex(sys.argv[2].replace(":", ""))
    clients = json.load(sys.stdin)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
        sock.bind(("", 68))
        json.dump({c["name"]: ask(sock, mac, c) for c in clients}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
