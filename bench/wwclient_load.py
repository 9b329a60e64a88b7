"""N simulated wwclients polling a real nginx on loopback while overlays change.

Usage: python bench/wwclient_load.py [--nodes 1000] [--duration 150] [--interval 5]
                                     [--change-every 20] [--workers 32]

Runs as root (nginx, and client sockets bound to each node's 127.0.x.y address,
so the generated per-node access rules are what nginx evaluates). Each node has
two layers, as the build publishes them: a cluster-wide one in shared/ (a hosts
file for all nodes), named by the group manifest groups/bench.json that every
node's manifest includes, and its own in nodes/<node>/ (motd, a key, a version
file). A poll is two conditional GETs: the node's manifest and the group's.
Every --change-every seconds a tenth of the nodes get a new own layer (a file
changed, one added or removed); once, half-way, the shared layer changes for
all, which rewrites the one group manifest.
The clients are wwclient.Client objects (the code nodes run), polled from a
pool of threads on their own jittered schedules. Changes stop three intervals
before the end; then every node's tree must equal what was last published.

Reported: requests/s nginx served, bytes per unchanged poll (a 304) and per
changed poll, and the baseline measured in the same run: the bytes Warewulf's
wwclient moves per poll (the node's whole runtime overlay, every time).
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.httpd import file, folder, write_layer, write_manifest

from tests import httpd
from toolchain.build import generate
from toolchain.model.load import load_cluster
from toolchain.node import wwclient


def cluster_yaml(n: int, port: int, root: Path) -> str:
    macs = ", ".join(f'"52:54:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"' for i in range(n))
    return f"""\
head: {{ip: 127.0.0.1, network: 127.0.0.0/16, http: "http://127.0.0.1:{port}",
       access_log: {root}/wwstatic-access.log}}
images:
  demo: {{root: {root}}}
nodes:
  n[{1:05d}-{n:05d}]:
    image: demo
    network:
      default: {{ip: 127.0.1.1, mac: [{macs}]}}
"""


class Tree:
    """What is published: per node, the expected files; writes layers and manifests."""

    def __init__(self, http: Path, nodes: list[str], interval: float) -> None:
        self.http, self.nodes, self.interval = http, nodes, interval
        self.version = dict.fromkeys(nodes, 0)
        self.own: dict[str, dict[str, object]] = {}
        hosts = "".join(f"127.0.{1 + i // 256}.{i % 256} {n}\n" for i, n in enumerate(nodes))
        self.shared_files = {"etc/hosts": hosts.encode()}
        self.group = "groups/bench.json"
        self.shared = self._shared_layer()
        self.lock = threading.Lock()

    def _shared_layer(self) -> dict[str, object]:
        es = [folder("etc"), *(file(p, d) for p, d in self.shared_files.items())]
        layer = write_layer(self.http, es)
        path = self.http / self.group
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(".bench.json.tmp")
        tmp.write_text(json.dumps({"format": 1, "group": "bench", "layers": [layer]}))
        tmp.replace(path)
        return layer

    def own_files(self, node: str) -> dict[str, bytes]:
        v = self.version[node]
        files = {"etc/motd": f"Welcome to {node}, version {v}\n".encode(),
                 "etc/wwstatic/key": f"secret of {node}\n".encode()}
        if v % 2:
            files[f"etc/wwstatic/extra-{v}"] = b"odd versions have an extra file\n"
        return files

    def expected(self, node: str) -> dict[str, bytes]:
        return {**self.shared_files, **self.own_files(node)}

    def publish(self, node: str) -> None:
        own = [folder("etc"), folder("etc/wwstatic"),
               *(file(p, d, 0o600 if p.endswith("key") else 0o644) for p, d in self.own_files(node).items())]
        layer = self.own[node] = write_layer(self.http, own, under=f"nodes/{node}")
        write_manifest(self.http, node, [{"include": self.group}, layer], self.interval, age=0)

    def change_some(self, fraction: float) -> int:
        picked = random.sample(self.nodes, max(1, int(len(self.nodes) * fraction)))
        with self.lock:
            for node in picked:
                self.version[node] += 1
                self.publish(node)
        return len(picked)

    def change_shared(self) -> None:
        with self.lock:
            self.shared_files["etc/hosts"] += b"10.0.0.254 newhost\n"
            self.shared = self._shared_layer()  # one file for all nodes: the group manifest


def cpu_seconds(master: int) -> float:
    """CPU time used so far by nginx's master and worker processes."""
    total = 0.0
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat_file.parent.name)
        if pid == master or int(fields[1]) == master:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def tree_of(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=150, help="seconds of polling")
    ap.add_argument("--interval", type=float, default=5, help="poll interval of every client")
    ap.add_argument("--change-every", type=float, default=20, help="seconds between overlay changes")
    ap.add_argument("--workers", type=int, default=32, help="threads running polls")
    args = ap.parse_args()
    wwclient.log = lambda msg: None  # 1,000 clients' change lines would drown the report

    with tempfile.TemporaryDirectory(prefix="wwload-") as tmp:
        work = Path(tmp)
        port = httpd.free_port()
        (work / "cluster.yaml").write_text(cluster_yaml(args.nodes, port, work))
        cluster = load_cluster(work / "cluster.yaml")
        http = work / "http"
        names = [n.name for n in cluster.nodes]
        tree = Tree(http, names, args.interval)
        for name in names:
            tree.publish(name)
        time.sleep(2.1)  # let the first manifests age past wwclient's freshness rule
        # The generated server logs in wwstatic's format to head.access_log; log the
        # harness's format (bytes both ways) beside it, where httpd.Nginx.hits() reads.
        conf = generate.nginx_conf(cluster, http).replace(
            " wwstatic;\n", f" wwstatic;\n    access_log {work / 'nginx' / 'access.log'} wwtest;\n", 1)
        with httpd.running(work / "nginx", conf, port, 4096) as ng:
            run(args, work, ng, cluster.nodes, tree)


def run(args: argparse.Namespace, work: Path, ng: httpd.Nginx, nodes: tuple[object, ...],
        tree: Tree) -> None:
    clients: dict[str, wwclient.Client] = {}
    for node in nodes:
        name, ip = node.name, node.ip  # type: ignore[attr-defined]
        root = work / "roots" / name
        root.mkdir(parents=True)
        clients[name] = wwclient.Client(wwclient.Options(
            ng.base, name, str(root), str(work / "state" / name), timeout=10, source=ip))

    # Warewulf's client fetches the whole runtime overlay every poll: measure that once per node.
    baseline = []
    for name in random.sample(list(clients), 20):
        first = len(ng.hits())
        for layer in (tree.shared, tree.own[name]):
            clients[name].http.get(str(layer["url"]), limit=1 << 30)
        hits = ng.hits()[first:]
        baseline.append(sum(h.sent + h.received for h in hits))

    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    heap = [(time.monotonic() + random.uniform(0, args.interval), name) for name in clients]
    heapq.heapify(heap)
    failures: Counter[str] = Counter()
    lock = threading.Lock()

    def poll(name: str) -> None:
        t0 = time.monotonic()
        try:
            res = clients[name].poll()
            kind = "changed" if res.changes else "fetched, no change" if res.fetched else "304"
            failures[name] = 0
            delay = wwclient.jitter(args.interval)
        except (wwclient.Rejected, wwclient.Unavailable, OSError) as exc:
            kind = f"error {type(exc).__name__}: {exc}"[:120]
            failures[name] += 1
            delay = min(60.0, 0.5 * 2 ** failures[name])
        t1 = time.monotonic()
        with lock:
            latencies.append(t1 - t0)
            outcomes[kind] += 1
            heapq.heappush(heap, (t1 + delay, name))

    log_start = len(ng.hits())
    cpu_start = cpu_seconds(ng.popen.pid)
    start = time.monotonic()
    end = start + args.duration
    last_change = end - 3 * args.interval
    next_change = start + args.change_every
    shared_changed = False
    changed_nodes = 0
    with ThreadPoolExecutor(args.workers) as pool:
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= next_change and now < last_change:
                if not shared_changed and now - start > args.duration / 2:
                    tree.change_shared()
                    shared_changed = True
                    changed_nodes += len(clients)
                else:
                    changed_nodes += tree.change_some(0.1)
                next_change = now + args.change_every
            with lock:
                due = []
                while heap and heap[0][0] <= now:
                    due.append(heapq.heappop(heap)[1])
                wait = heap[0][0] - now if heap else 0.05
            for name in due:
                pool.submit(poll, name)
            time.sleep(min(max(wait, 0.001), 0.05))
    elapsed = time.monotonic() - start
    cpu = cpu_seconds(ng.popen.pid) - cpu_start
    hits = ng.hits()[log_start:]

    wrong = [name for name, c in clients.items() if tree_of(Path(c.root)) != tree.expected(name)]
    by_status = Counter(h.status for h in hits)
    # An unchanged poll is two 304s (the node's manifest and its group's).
    unchanged_bytes = sum(h.sent + h.received for h in hits if h.status == 304)
    changed_bytes = sum(h.sent + h.received for h in hits if h.status == 200)
    polls_unchanged = outcomes["304"]
    polls_fetched = sum(n for k, n in outcomes.items() if k in ("changed", "fetched, no change"))
    polls = polls_unchanged + polls_fetched
    lat = sorted(latencies)
    full = statistics.mean(baseline)
    per_unchanged = unchanged_bytes / polls_unchanged if polls_unchanged else float("nan")
    per_changed = changed_bytes / max(1, polls_fetched)
    print(f"{len(clients)} wwclients, interval {args.interval:g} s, {elapsed:.0f} s, "
          f"{changed_nodes} node overlay changes published")
    print(f"nginx served {len(hits)} requests = {len(hits) / elapsed:.0f} requests/s "
          f"({polls / elapsed:.0f} polls/s); statuses {dict(by_status)}")
    print(f"nginx used {cpu:.1f} CPU-seconds: {len(hits) / max(cpu, 0.01):.0f} requests per CPU-second "
          f"({cpu / elapsed * 100:.0f} % of one core)")
    p50, p99 = lat[len(lat) // 2], lat[int(len(lat) * 0.99)]
    print(f"poll latency p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms")
    print(f"poll outcomes: {dict(outcomes)}")
    print(f"bytes per unchanged poll (two 304s, request+response): {per_unchanged:.0f}")
    print(f"bytes per changed poll (manifests + new layers):       {per_changed:.0f}")
    print(f"baseline, Warewulf-style poll (whole runtime overlay every time): {full:.0f} bytes; "
          f"unchanged poll is {full / per_unchanged:.0f}x smaller")
    print(f"converged: {len(clients) - len(wrong)}/{len(clients)} nodes have exactly the published files"
          + (f"; wrong: {wrong[:10]}" if wrong else ""))
    if wrong:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
