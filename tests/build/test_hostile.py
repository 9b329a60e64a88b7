"""Hostile strings in every string field of cluster.yaml (issue 16, deliverable 3).

The fields come from the spec table. For every configuration load_cluster
accepts, each generated file is rendered in-process and is either refused with
a WWError (an emitter would not write the value) or checked with its real
reader: dhcpd -t, dnsmasq --test, kea-dhcp4 -t, nginx -t, dash -n, configparser
for keyfiles and systemd-style files, YAML for netplan. A marker inside the
value must never start a line of a line-based file (it would be a new command),
and nginx's directives must keep their structure.
"""

from __future__ import annotations

import configparser
import copy
import itertools
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import checkers
from tests.support.overlays import FIXTURE, fixture_project
from toolchain.build import dhcp, generate
from toolchain.errors import WWError
from toolchain.model import spec
from toolchain.model.load import load_cluster
from toolchain.model.spec import DhcpBackend, Field, Kind
from toolchain.overlay import functions
from toolchain.overlay import render as overlay
from toolchain.project import SHIPPED_OVERLAYS

MARK = "WWMK"
FRAGMENTS = ["\n", ";", "{}", '"', "'", "${x}", " && ", " || ", "\x00", "\u2028", "x" * 10_000,
             "\\", "%n", "#", " ", ",", "$(id)"]
STRINGS = (Kind.STR, Kind.NAME, Kind.PATH)
# Tag keys the shipped templates read (tags are free, the table cannot list them).
TAG_KEYS = ("DNS1", "DNSSEARCH", "route1", "localtime", "ntp_servers", "vlan", "mode")
NODE = "n02"
Path_ = tuple[str | int, ...]


def slots(fields: tuple[Field, ...], data: Any, at: Path_) -> Iterator[Path_]:
    """Where in `data` (the fixture) each string field of `fields` is, as a key path."""
    for f in fields:
        here = (*at, f.key)
        if f.kind in STRINGS:
            yield here
        elif f.kind is Kind.LIST:
            yield (*here, 0)
        elif f.kind is Kind.TAGS:
            yield from ((*here, k) for k in TAG_KEYS)
        elif f.kind is Kind.STRUCT:
            yield from slots(f.fields, (data or {}).get(f.key), here)
        elif f.kind in (Kind.DICT, Kind.ITEMS):
            entries = (data or {}).get(f.key) or {}
            keys = list(entries) if isinstance(entries, dict) else list(range(len(entries)))
            for k in keys[-1:]:  # one entry of each: the fixture's fullest is last
                yield from slots(f.fields, entries[k], (*here, k))


def all_slots(data: dict[str, Any]) -> list[Path_]:
    top = [f for f in spec.TOP if f.key not in ("images", "profiles", "nodes")]
    node = [f for f in spec.NODE if f.key != "profiles"]
    return [*slots(tuple(top), data, ()), *slots(tuple(node), data["nodes"][NODE], ("nodes", NODE))]


def put(data: Any, where: Path_, value: str) -> None:
    for key, inner in itertools.pairwise(where):
        data = data.setdefault(key, [] if isinstance(inner, int) else {}) if isinstance(data, dict) \
            else data[key]
    last = where[-1]
    if isinstance(data, list) and isinstance(last, int):
        data[last:last + 1] = [value]
    else:
        data[last] = value


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fixture_project(tmp_path_factory.mktemp("hostile") / "site")


def generated(project: Path) -> dict[str, str | WWError]:
    """Every file the build writes for the cluster in `project` (node n02), or the
    WWError that stopped it; any other exception fails the test."""
    cluster = load_cluster(project / "cluster.yaml")
    out: dict[str, str | WWError] = {}

    def one(name: str, make: Any) -> None:
        try:
            out[name] = make()
        except WWError as e:
            assert "cannot be written into" in e.message or e.loc, e
            out[name] = e
    plan = checkers.fixed_plan(cluster, NODE)
    one("n02.ipxe", lambda: generate.node_ipxe(cluster, plan))
    one("group.ipxe", lambda: generate.group_ipxe(cluster, plan.group))
    one("nginx.conf", lambda: generate.nginx_conf(cluster, project / "http"))
    for backend in DhcpBackend:
        one(dhcp.FILES[backend], lambda b=backend: dhcp.config_text(b, cluster, project / "tftp"))
    env = overlay.make_env(project)
    context = functions.make_context(cluster, cluster.node(NODE))
    for name in sorted(p.parent.name for p in SHIPPED_OVERLAYS.glob("*/rootfs")):
        if name == "wwclient":
            continue
        try:
            for e in overlay.layer_all(project, (name,), context, env, f"node {NODE}").entries:
                if e.data is not None and e.target is None:
                    out[f"{name}:{e.path}"] = e.data.decode("utf-8", "surrogateescape")
        except WWError as e:
            out[name] = e
    return out


def check(name: str, text: str, work: Path, head_ip: str, iface: str | None) -> None:
    conf = work / name.replace("/", "_").replace(":", "_")
    conf.write_text(text, errors="surrogateescape")
    path = name.partition(":")[2]
    if name == "nginx.conf":
        done = checkers.nginx_check(work, conf, head_ip)
        # A host name iPXE would not resolve either is not nginx's syntax.
        assert done.returncode == 0 or "host not found" in done.stderr, done.stderr
        locations = [w for _, w in checkers.nginx_directives(text) if w[:1] == ["location"]]
        assert [w[-1] for w in locations] == ["/\\.", "/ipxe/", "/nodes/"]
    elif name in dhcp.FILES.values():
        done = (checkers.dhcpd_check(conf) if name == "dhcpd.conf" else checkers.dnsmasq_check(conf)
                if name == "dnsmasq.conf" else checkers.kea_check(conf, iface))
        assert done.returncode == 0, done.stdout + done.stderr
    elif path == "init" or path.startswith("warewulf/") or "ifcfg-" in path or path.endswith("network"):
        done = checkers.dash_check(conf)
        assert done.returncode == 0, done.stderr
        return  # sh strings may hold a line break: the parse is the check
    elif path.endswith((".nmconnection", ".network", ".link")):
        configparser.ConfigParser(strict=True, interpolation=None).read_string(text)
        if not path.endswith(".nmconnection"):
            checkers.unit_file(text)
    elif path.endswith(".yaml"):
        yaml.safe_load(text)
        return  # YAML strings are JSON-quoted: a marker in one is inside its quotes
    for line in text.splitlines():
        assert not line.lstrip().startswith(MARK), f"{name}: the value starts a line: {line[:80]!r}"


hostile = st.tuples(st.sampled_from(FRAGMENTS), st.sampled_from(FRAGMENTS)).map(
    lambda p: f"/a{p[0]}{MARK}{p[1]}") | st.sampled_from(
    ["/x.log wwstatic; location ~ ^.nodes. { } #" + MARK, f"http://10.5.0.1\n{MARK}", f'http://a"b;{MARK}'])


def test_every_field_is_reached(project: Path) -> None:
    """The field list is derived, not typed: it holds fields of every table the nodes read."""
    found = {w[:2] if w[0] != "nodes" else w[2:3] for w in all_slots(yaml.safe_load(
        (project / "cluster.yaml").read_text()))}
    for expect in [("head", "access_log"), ("head", "http"), ("kernel",), ("network",), ("ipmi",),
                   ("disks",), ("filesystems",), ("tags",), ("nfs", "exports")]:
        assert expect in found, expect


FIXTURE_SLOTS = all_slots(yaml.safe_load((FIXTURE / "cluster.yaml").read_text()))


# Every field gets a few values (a field drawn at random would miss some).
@pytest.mark.parametrize("where", FIXTURE_SLOTS, ids=lambda w: ".".join(map(str, w)))
@settings(max_examples=2, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(value=hostile)
def test_hostile_strings_stay_in_their_slot(project: Path, tmp_path_factory: pytest.TempPathFactory,
                                            where: Path_, value: str) -> None:
    base_text = (project.parent / "cluster.yaml.orig")
    if not base_text.exists():
        shutil.copy(project / "cluster.yaml", base_text)
    base = yaml.safe_load(base_text.read_text())
    cluster_yaml = copy.deepcopy(base)
    put(cluster_yaml, where, value)
    (project / "cluster.yaml").write_text(yaml.safe_dump(cluster_yaml, allow_unicode=False))
    try:
        cluster = load_cluster(project / "cluster.yaml")
    except WWError:
        return  # refused at load time: the grammar's part
    work = tmp_path_factory.mktemp("files")
    for name, text in generated(project).items():
        if isinstance(text, str):
            check(name, text, work, str(cluster.head.ip), cluster.dhcp.interface or None)
