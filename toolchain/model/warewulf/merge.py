"""Across profiles and nodes: where Warewulf's merging differs from wwstatic's, make them agree."""

from __future__ import annotations

import ipaddress

from toolchain.errors import WWError
from toolchain.model.reader import apply_list
from toolchain.model.warewulf.files import Settings, as_items, is_null
from toolchain.model.warewulf.scalars import Reader
from toolchain.model.yamlsrc import YMap, YNode, YScalar

# Keys only v4.5 (and older) nodes.conf files have; v4.6 rewrites them on `wwctl upgrade nodes`.
LEGACY_KEYS = frozenset({"container name", "kernel args", "kernel version", "kernel override", "keys",
                         "disabled", "ipmi username", "ipmi password", "ipmi ipaddr", "ipmi netmask",
                         "ipmi port", "ipmi gateway", "ipmi interface", "ipmi escapechar", "ipmi write"})
# Lists that v4.5 replaced (node over profile, last profile wins) and v4.6+/wwstatic append.
REPLACED_LISTS = ((("kernel", "args"), "kernel args"), (("system_overlays",), "system overlays"),
                  (("runtime_overlays",), "runtime overlays"))


def is_legacy(raw: dict[str, YNode]) -> bool:
    """Whether a profile or node is written in v4.5's spellings."""
    if LEGACY_KEYS & raw.keys():
        return True
    kernel = raw.get("kernel")
    if isinstance(kernel, YMap):
        k = as_items(kernel)
        return "override" in k or (isinstance(k.get("args"), YScalar) and not is_null(k["args"]))
    return False



def _get_list(s: Settings, path: tuple[str, ...]) -> list[str]:
    for key in path[:-1]:
        s = s.get(key, {})
    return list(s.get(path[-1], []))


def _set_list(s: Settings, path: tuple[str, ...], value: list[str]) -> None:
    for key in path[:-1]:
        s = s.setdefault(key, {})
    s[path[-1]] = value


class Across(Reader):
    @staticmethod
    def chain(node: Settings, profiles: dict[str, Settings]) -> list[Settings]:
        """The node's profiles as Warewulf merges them (nested first, `~p` removes p), then the node."""
        order: list[str] = []
        seen: set[str] = set()
        dropped: set[str] = set()

        def visit(name: str) -> None:
            if name.startswith("~"):
                dropped.add(name[1:])
                return
            if name in seen or name not in profiles:
                return
            seen.add(name)
            for sub in profiles[name].get("profiles", []):
                visit(sub)
            order.append(name)

        for p in node.get("profiles", []):
            visit(p)
        return [profiles[p] for p in order if p not in dropped] + [node]

    @staticmethod
    def merged_network(chain: list[Settings]) -> tuple[dict[str, Settings], str | None]:
        """Network devices merged over the chain, and Warewulf's primary device for it."""
        devs: dict[str, Settings] = {}
        declared: str | None = None
        for s in chain:
            for name, dev in s.get("network", {}).items():
                devs.setdefault(name, {}).update(dev)
                if dev.get("primary") is True:
                    declared = name  # a later `primary network` wins, the node's over all
        if declared is not None and declared in devs and len(devs[declared]) > 1:
            return devs, declared
        real = sorted(n for n, d in devs.items() if set(d) - {"primary"})
        return devs, (real[0] if real else None)  # Warewulf: the first by name

    def fix_primary(self, node: Settings, chain: list[Settings]) -> None:
        """Mark the device Warewulf boots from so that wwstatic picks the same one.

        wwstatic takes the device marked primary, else `default`, else the first
        by name; Warewulf takes `primary network` (node over profiles), else the
        first by name. Where they would differ, the node gets explicit flags.
        """
        devs, want = self.merged_network(chain)
        if want is None:
            return
        marked = [n for n, d in devs.items() if d.get("primary") is True]
        if marked == [want]:
            return
        if not marked and ("default" if "default" in devs else min(devs)) == want:
            return
        network = node.setdefault("network", {})
        network.setdefault(want, {})["primary"] = True
        for name in marked:
            if name != want:
                network.setdefault(name, {})["primary"] = False

    def fix_replaced_lists(self, name: str, node: Settings, chain: list[Settings]) -> None:
        """Keep v4.5 list semantics: the node's list (else the last profile's) replaced the others.

        wwstatic appends profile lists, so where that gives another result the
        node's own list becomes `~item` removals of what the profiles add, then
        what is missing.
        """
        for path, label in REPLACED_LISTS:
            lists = [_get_list(s, path) for s in chain]
            want = next((lst for lst in reversed(lists) if lst), [])
            inherited: list[str] = []
            for lst in lists[:-1]:
                inherited = apply_list(inherited, lst)
            if apply_list(inherited, lists[-1]) == want:
                continue
            kept = [x for x in inherited if x in want]
            if want[:len(kept)] == kept:
                new = [f"~{x}" for x in dict.fromkeys(inherited) if x not in want] + want[len(kept):]
            else:
                new = [f"~{x}" for x in dict.fromkeys(inherited)] + want
            _set_list(node, path, new)
            self.note(f"node {name}", f"in v4.5 the node's {label} (else its last profile's) replaced the "
                                      f"others; written as [{', '.join(new)}] so that wwstatic, which "
                                      f"appends, gives the same: [{', '.join(want)}]")

    def guess_head(self, nodes: dict[str, Settings], profiles: dict[str, Settings]) -> Settings:
        for name, s in nodes.items():
            devs, primary = self.merged_network(self.chain(s, profiles))
            dev = devs.get(primary or "", {})
            if "ip" not in dev:
                continue
            mask = dev.get("netmask")
            if mask is None:
                mask = "255.255.255.0"
                self.notes.append(f"head: node {name} has no netmask; assumed /24")
            net = ipaddress.IPv4Interface(f"{dev['ip']}/{mask}").network
            head = str(net.network_address + 1)
            self.notes.append(f"head: no warewulf.conf given; the cluster network {net} comes from node "
                              f"{name} (network {primary}), and head ip {head} is a placeholder: "
                              "check head.ip and head.http")
            return {"ip": head, "network": str(net), "http": f"http://{head}"}
        raise WWError("cannot tell the cluster network: no warewulf.conf given and no node has an IPv4 "
                      "address", hint="give Warewulf's warewulf.conf (usually /etc/warewulf/warewulf.conf) "
                                      "as the second argument")
