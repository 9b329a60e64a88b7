"""Read the web server's access log: which node fetched what, and when.

wwstatic has no daemon, so the only record of a boot is the static server's
log. The generated nginx config writes it tab-separated (see
templates/nginx.conf.j2): `ww1`, time, client IP, status, bytes, the URI asked
for, the URI served, user agent. A request is tied to a node by its URL when the
URL names one (`ipxe/<mac>.ipxe`, `nodes/<node>/...`) and otherwise by the
client's IP (shared image and layer blobs).

The log of a 10,000-node cluster grows by millions of lines, so the scan is one
pass that keeps only the last request per node and stage, classifies each
distinct URL once (a node fetches the same few URLs every boot), and can resume
where the previous scan stopped (`--watch`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from toolchain.build import layout
from toolchain.errors import WWError
from toolchain.model.types import Cluster

FORMAT_TAG = "ww1"
_CHUNK = 1 << 22


class Stage(StrEnum):
    IPXE = "ipxe"          # the node's iPXE script
    KERNEL = "kernel"
    IMAGE = "image"
    SYSTEM = "system"      # system overlay
    RUNTIME = "runtime"    # runtime overlay (at boot, or a wwclient refresh)
    LAYER = "layer"        # a shared blob of a node's overlay or image
    POLL = "poll"          # wwclient's manifest poll: the node is up


@dataclass(frozen=True)
class Seen:
    """One request: when (ISO 8601 as the server wrote it), from where, what."""

    time: str
    ip: str
    stage: Stage
    uri: str

    @property
    def when(self) -> datetime:
        return datetime.fromisoformat(self.time)


@dataclass
class NodeSeen:
    boot: Seen | None = None    # the last boot-chain fetch (anything but a poll)
    poll: Seen | None = None    # the last wwclient poll (heartbeat)

    @property
    def last(self) -> Seen | None:
        seen = [s for s in (self.boot, self.poll) if s is not None]
        return max(seen, key=lambda s: s.when) if seen else None


@dataclass
class MacSeen:
    """An iPXE script asked for by a MAC that cluster.yaml does not list."""

    mac: str
    first: str
    last: str
    ip: str
    count: int = 1


def _stem(url: str, marker: str) -> tuple[str, str]:
    """Split a helper's URL for a marker name into (prefix, first word of the file name).

    `overlay_url("\\0", "system")` = `nodes/\\0/system.img.gz` gives (`nodes/`, `system`):
    that matches `system.img.gz` and a content-addressed `system-<digest>.img.gz` alike.
    """
    prefix, _, rest = url.partition(marker)
    name = rest.rsplit("/", 1)[-1]
    return prefix, re.split(r"[-.]", name, maxsplit=1)[0]


class Classifier:
    """URL path (relative to the HTTP root) -> (node or None, MAC or None, stage)."""

    def __init__(self, cluster: Cluster) -> None:
        marker = "\0"
        self.exact: dict[str, tuple[str | None, str | None, Stage]] = {}
        for node in cluster.nodes:
            if node.bootable:
                self.exact[layout.ipxe_path(node)] = (node.name, node.mac, Stage.IPXE)
        any_digest = "0" * 64
        nodes_prefix, system = _stem(layout.node_blob_url(marker, "system", any_digest), marker)
        _, runtime = _stem(layout.node_blob_url(marker, "runtime", any_digest), marker)
        images_prefix, kernel = _stem(layout.kernel_url(marker, any_digest), marker)
        _, image = _stem(layout.image_url(marker, any_digest, next(iter(layout.SUFFIX))), marker)
        ipxe_prefix = layout.UNKNOWN_IPXE.rsplit("/", 1)[0]
        self.ipxe = re.compile(re.escape(ipxe_prefix) + r"/([0-9a-f]{2}(?:-[0-9a-f]{2}){5})\.ipxe$")
        self.node_file = re.compile(re.escape(nodes_prefix) + r"([^/]+)/(.+)$")
        self.image_file = re.compile(re.escape(images_prefix) + r"([^/]+)/(.+)$")
        self.node_stages = ((system, Stage.SYSTEM), (runtime, Stage.RUNTIME))
        self.image_stages = ((kernel, Stage.KERNEL), (image, Stage.IMAGE))
        # wwclient's manifest, beside the node's runtime overlay.
        self.manifest = layout.manifest_url(marker).rsplit("/", 1)[1]
        # Files shared by many nodes: tied to a node by the client's address.
        self.shared_prefixes = (layout.shared_url("x", any_digest).split("/")[0] + "/",
                                layout.group_url("x", "ipxe").split("/")[0] + "/")

    def __call__(self, path: str) -> tuple[str | None, str | None, Stage] | None:
        hit = self.exact.get(path)
        if hit is not None:
            return hit
        if m := self.ipxe.match(path):
            return None, m.group(1).replace("-", ":"), Stage.IPXE
        if m := self.node_file.match(path):
            name = m.group(2)
            if name == self.manifest:
                return m.group(1), None, Stage.POLL
            return m.group(1), None, _by_word(name, self.node_stages, Stage.LAYER)
        if m := self.image_file.match(path):
            return None, None, _by_word(m.group(2), self.image_stages, Stage.IMAGE)
        if path.startswith(self.shared_prefixes):
            return None, None, Stage.LAYER
        return None


def _by_word(name: str, stages: tuple[tuple[str, Stage], ...], default: Stage) -> Stage:
    for word, stage in stages:
        if name == word or name.startswith((word + "-", word + ".")):
            return stage
    return default


@dataclass
class Scan:
    """The state of the log up to `offset`; `update()` reads what was appended since."""

    cluster: Cluster
    path: Path
    offset: int = 0
    lines: int = 0
    foreign: int = 0    # lines not in the wwstatic format
    nodes: dict[str, NodeSeen] = field(default_factory=dict)
    unknown: dict[str, MacSeen] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.classify = Classifier(self.cluster)
        self.by_ip = {n.ip: n.name for n in self.cluster.nodes if n.ip}
        self.known = {n.name for n in self.cluster.nodes}
        self.macs = {d.mac for n in self.cluster.nodes for d in n.network.values() if d.mac}
        self._cache: dict[str, tuple[str | None, str | None, Stage] | None] = {}
        self._inode = 0

    def update(self) -> Scan:
        try:
            st = self.path.stat()
            f = self.path.open("rb")
        except FileNotFoundError:
            raise WWError(f"access log {self.path} does not exist",
                          hint="set head.access_log in cluster.yaml to the log nginx writes "
                               "(the generated nginx.conf logs there), or pass --log PATH") from None
        except PermissionError:
            raise WWError(f"cannot read access log {self.path}",
                          hint="run as a user who may read it (e.g. in group adm)") from None
        with f:
            if st.st_ino != self._inode or st.st_size < self.offset:
                # Rotated or truncated: start over on the new file.
                self._reset(st.st_ino)
            f.seek(self.offset)
            rest = b""
            while chunk := f.read(_CHUNK):
                data = rest + chunk
                cut = data.rfind(b"\n") + 1
                rest = data[cut:]
                self._lines(data[:cut].decode("utf-8", "replace"))
                self.offset += cut
        if self.lines and self.foreign == self.lines:
            raise WWError(f"{self.path} is not in wwstatic's log format (no line starts with "
                          f"`{FORMAT_TAG}`)",
                          hint="use the access log of the generated nginx.conf "
                               "(`log_format wwstatic`), e.g. head.access_log in cluster.yaml")
        return self

    def _reset(self, inode: int) -> None:
        self._inode = inode
        self.offset = self.lines = self.foreign = 0
        self.nodes.clear()
        self.unknown.clear()

    def _lines(self, text: str) -> None:
        cache, classify, nodes, by_ip = self._cache, self.classify, self.nodes, self.by_ip
        known, macs, unknown = self.known, self.macs, self.unknown
        lines = text.split("\n")
        lines.pop()  # text ends with a newline
        self.lines += len(lines)
        for line in lines:
            parts = line.split("\t", 7)
            if len(parts) != 8 or parts[0] != FORMAT_TAG:
                self.foreign += 1
                continue
            _, time, ip, status, _size, uri, _served, _agent = parts
            if status[0] not in "23":   # a failed request fetched nothing
                continue
            hit = cache.get(uri)
            if hit is None and uri not in cache:
                hit = cache[uri] = classify(uri.lstrip("/").split("?", 1)[0])
            if hit is None:
                continue
            name, mac, stage = hit
            if stage is Stage.IPXE and name is None:
                if mac in macs:
                    continue
                if (u := unknown.get(mac or "")) is None:
                    unknown[mac or ""] = MacSeen(mac or "", time, time, ip)
                else:
                    u.last, u.ip, u.count = time, ip, u.count + 1
                continue
            if name is None:
                name = by_ip.get(ip)
                if name is None:
                    continue
            elif name not in known:
                continue
            seen = nodes.get(name)
            if seen is None:
                seen = nodes[name] = NodeSeen()
            if stage is Stage.POLL:
                seen.poll = Seen(time, ip, stage, uri)
            else:
                seen.boot = Seen(time, ip, stage, uri)
