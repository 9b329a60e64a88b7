"""The injections of issue 16: refused by the model, and held by the emitters behind it.

The model's grammars refuse each hostile value at its line. The emitters are
the second line: with the value put into a loaded cluster directly (as a
grammar with a gap would let it through), it either reaches its file as one
value in its own slot (the daemon's own check passes and the file's structure
is unchanged), or the generator stops with a WWError naming the value and the
syntax.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support import checkers
from tests.support.project import make_project
from toolchain.build import dhcp, generate
from toolchain.errors import WWError
from toolchain.model.load import load_cluster
from toolchain.model.spec import DhcpBackend
from toolchain.model.types import Cluster

Edit = Callable[[dict[str, Any]], None]


def refused_at_its_line(tmp_path: Path, edit: Edit) -> None:
    """The model's first line: loading cluster.yaml with the value fails, at a line of it."""
    with pytest.raises(WWError) as info:
        load_cluster(make_project(tmp_path / "refused", edit) / "cluster.yaml")
    assert "cluster.yaml:" in str(info.value) and "hint:" in str(info.value)


def cluster_with(tmp_path: Path, edit: Edit, *, head: dict[str, Any] | None = None,
                 args: tuple[str, ...] | None = None) -> Cluster:
    """The shipped cluster, loaded after `edit` (which the model refuses, checked first) with
    the hostile values put in afterwards: what an emitter gets if a grammar has a gap."""
    refused_at_its_line(tmp_path, edit)
    cluster = load_cluster(make_project(tmp_path / "p") / "cluster.yaml")
    if head:
        cluster = dataclasses.replace(cluster, head=dataclasses.replace(cluster.head, **head))
    if args is not None:
        nodes = [dataclasses.replace(n, kernel=dataclasses.replace(n.kernel, args=args))
                 for n in cluster.nodes]
        cluster = dataclasses.replace(cluster, nodes=type(cluster.nodes)(nodes))
    return cluster


def head(key: str, value: str) -> Edit:
    return lambda d: d["head"].__setitem__(key, value)


def kernel_args(*args: str) -> Edit:
    return lambda d: d["profiles"]["default"]["kernel"].__setitem__("args", list(args))


def test_access_log_keeps_the_per_node_rule(tmp_path: Path) -> None:
    value = "/x.log wwstatic; location ~ ^.nodes. { } #"
    cluster = cluster_with(tmp_path, head("access_log", value), head={"access_log": value})
    text = generate.nginx_conf(cluster, tmp_path / "http")
    server = tmp_path / "server.conf"
    server.write_text(text)
    done = checkers.nginx_check(tmp_path, server, str(cluster.head.ip))
    assert done.returncode == 0, done.stderr
    directives = checkers.nginx_directives(text)
    assert (1, ["access_log", value, "wwstatic"]) in directives
    locations = [words for depth, words in directives if words[:1] == ["location"]]
    assert locations == [["location", "~", "/\\."], ["location", "/ipxe/"], ["location", "/nodes/"]]
    assert (3, ["return", "403"]) in directives


@pytest.mark.parametrize("http", ["http://10.99.0.1\nshell", 'http://a"b;location', "http://x;location"])
def test_hostile_http_stays_out_of_scripts_and_dhcp(tmp_path: Path, http: str) -> None:
    """head.http values urlsplit lets through: refused by iPXE; a string in dhcpd.conf;
    refused or one field in dnsmasq.conf."""
    cluster = cluster_with(tmp_path, head("http", http), head={"http": http})
    assert cluster.head.http == http
    with pytest.raises(WWError, match="iPXE"):
        generate.node_ipxe(cluster, checkers.fixed_plan(cluster, "n01"))
    for backend, check in ((DhcpBackend.ISC, checkers.dhcpd_check),
                           (DhcpBackend.DNSMASQ, checkers.dnsmasq_check)):
        try:
            text = dhcp.config_text(backend, cluster, tmp_path / "tftp")
        except WWError as e:
            assert "cannot be written into" in e.message
            continue
        conf = tmp_path / dhcp.FILES[backend]
        conf.write_text(text)
        done = check(conf)
        assert done.returncode == 0, done.stderr
        assert "\nshell" not in text


@pytest.mark.parametrize("args", [("quiet\nshell",), ("&&", "shell"), ("||", "shell"), (";", "shell"),
                                  ("a${x}",)])
def test_kernel_args_never_become_ipxe_commands(tmp_path: Path, args: tuple[str, ...]) -> None:
    cluster = cluster_with(tmp_path, kernel_args(*args), args=args)
    with pytest.raises(WWError, match="iPXE"):
        generate.node_ipxe(cluster, checkers.fixed_plan(cluster, "n01"))


def test_plain_kernel_args_still_written(tmp_path: Path) -> None:
    cluster = load_cluster(make_project(tmp_path / "p", kernel_args("console=ttyS0,115200", "root=/dev/nfs"))
                           / "cluster.yaml")
    script = generate.node_ipxe(cluster, checkers.fixed_plan(cluster, "n01"))
    assert "set wwargs wwid=52:54:00:99:00:11 console=ttyS0,115200 root=/dev/nfs\n" in script
