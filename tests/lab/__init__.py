"""Labs: network namespaces, QEMU nodes, daemons on loopback. Tests using them carry the `lab` marker."""
