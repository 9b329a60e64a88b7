"""`wwstatic status`: where each node is in its boot, from the web server's log.

States: `up` (wwclient polled after the node's last boot fetch), `booting`
(the boot chain is the node's latest traffic), `STALE` (nothing for longer than
--stale seconds), `never` (not in the log). Stale and never-seen nodes are the
ones an admin must look at, so they are marked in red on a terminal and counted
in the summary line.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from toolchain.model.load import load_cluster
from toolchain.model.types import Cluster, Node
from toolchain.ops import show
from toolchain.ops.accesslog import NodeSeen, Scan, Seen, Stage
from toolchain.verbs import Verb

RED = "\x1b[31m"
RESET = "\x1b[0m"


def age(seconds: float) -> str:
    s = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


def state(seen: NodeSeen | None, now: datetime, stale_after: float) -> str:
    last = seen.last if seen else None
    if seen is None or last is None:
        return "never"
    if (now - last.when).total_seconds() > stale_after:
        return "STALE"
    if seen.poll is not None and (seen.boot is None or seen.poll.when >= seen.boot.when):
        return "up"
    return "booting"


def _cell(s: Seen | None, now: datetime) -> tuple[str, str]:
    if s is None:
        return "-", "-"
    return s.time.replace("T", " ")[:19], age((now - s.when).total_seconds())


def rows(nodes: list[Node], scan: Scan, now: datetime, stale_after: float) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for n in nodes:
        seen = scan.nodes.get(n.name)
        boot = seen.boot if seen else None
        poll = seen.poll if seen else None
        when, ago = _cell(boot, now)
        _, beat = _cell(poll, now)
        ip = (seen.last.ip if seen and seen.last else "-")
        out.append((n.name, state(seen, now, stale_after), boot.stage.value if boot else "-",
                    when, ago, ip, beat))
    return out


def render(nodes: list[Node], scan: Scan, now: datetime, stale_after: float, color: bool) -> str:
    head = ("NODE", "STATE", "LAST STAGE", "FETCHED AT", "AGO", "FROM", "HEARTBEAT")
    body = rows(nodes, scan, now, stale_after)
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(head, widths, strict=True)).rstrip()]
    counts: dict[str, int] = {}
    for r in body:
        counts[r[1]] = counts.get(r[1], 0) + 1
        line = "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        lines.append(f"{RED}{line}{RESET}" if color and r[1] in ("STALE", "never") else line)
    summary = ", ".join(f"{counts.get(s, 0)} {s}" for s in ("up", "booting", "STALE", "never"))
    lines.append(f"{len(body)} nodes: {summary} (stale after {age(stale_after)}; "
                 f"{scan.lines} log lines)")
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    cluster: Cluster = load_cluster(args.file)
    nodes = show.select(cluster, args.hostlist)
    log = Path(args.log or cluster.head.access_log)
    # A node polls every `wwclient.interval` seconds: three missed polls is stale.
    stale_after = float(args.stale) if args.stale is not None else 3.0 * cluster.wwclient_interval
    scan = Scan(cluster, log).update()
    color = sys.stdout.isatty() and not args.no_color
    if not args.watch:
        print(render(nodes, scan, datetime.now(UTC), stale_after, color))
        return 0
    try:
        while True:
            text = render(nodes, scan, datetime.now(UTC), stale_after, color)
            sys.stdout.write("\x1b[H\x1b[2J" + text + "\n")
            sys.stdout.flush()
            time.sleep(args.interval)
            scan.update()
    except KeyboardInterrupt:
        return 0


def _arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("hostlist", nargs="?", default="", help="nodes to show (default: all)")
    s.add_argument("--log", help="the access log (default: head.access_log of cluster.yaml)")
    s.add_argument("--stale", type=float, metavar="SECONDS",
                   help="mark nodes not seen for this long (default: 3 wwclient intervals)")
    s.add_argument("--watch", action="store_true", help="refresh until Ctrl-C")
    s.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
    s.add_argument("--no-color", action="store_true")


VERBS = [Verb("status", "each node's last boot stage and heartbeat, from the access log", _arguments, _run)]


__all__ = ["VERBS", "Stage", "render"]
