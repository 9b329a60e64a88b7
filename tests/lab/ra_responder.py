"""Answer IPv6 router solicitations with a router advertisement of lifetime 0.

iPXE (Debian's 2019 build) waits about 15 s per stage for an IPv6 router when
none answers; this says "no router here" at once. Run inside the test's network
namespace: `python ra_responder.py BRIDGE`. It stops when killed.
"""

from __future__ import annotations

import socket
import struct
import sys


def main(iface: str) -> None:
    index = socket.if_nametoindex(iface)
    sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
    group = socket.inet_pton(socket.AF_INET6, "ff02::2") + struct.pack("@I", index)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, group)
    # Neighbour discovery messages must arrive with hop limit 255 (RFC 4861).
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
    # type 134, code 0, checksum (the kernel fills it), hop limit 64, no flags,
    # router lifetime 0, reachable time 0, retrans timer 0.
    advert = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 0, 0, 0)
    print(f"ra_responder: listening on {iface}", flush=True)
    while True:
        data, addr = sock.recvfrom(1500)
        if data and data[0] == 133:  # router solicitation
            sock.sendto(advert, ("ff02::1", 0, 0, index))
            print(f"ra_responder: answered {addr[0]}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
