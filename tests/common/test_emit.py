"""Each emitter of toolchain/emit.py quotes a value so its syntax reads it back, or refuses it."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from tests.support.checkers import nginx_tokens, sourced_values
from toolchain import emit
from toolchain.errors import WWError

HOSTILE = ["a\nb", "a;b", "a{b}c", 'a"b', "a'b", "${x}", "a && b", "a || b", "a\x00b",
           "a\u2028b", "x" * 10_000, "a\\", "%n", "#x", " a"]


def test_plain_values_are_written_bare() -> None:
    """Ordinary values come out as they are: the generated files do not change."""
    for value in ("n01", "10.0.0.1", "52:54:00:99:00:11", "/var/log/x.log", "console=ttyS0,115200"):
        for name in ("nginx", "ipxe", "ifcfg", "keyfile", "systemd", "sh", "token", "line"):
            assert emit.FILTERS[name](value) == value, (name, value)
    assert emit.dhcpd("n01") == '"n01"'


def test_nginx_quotes_into_one_word() -> None:
    """The access_log of the issue is one word of its directive, whatever it holds."""
    value = "/x.log wwstatic; location ~ ^.nodes. { } #"
    assert nginx_tokens(f"access_log {emit.nginx(value)} wwstatic;") == \
        ["access_log", value, "wwstatic", (";",)]
    tricky = 'a"b\\c'
    assert nginx_tokens("x " + emit.nginx(tricky) + ";") == ["x", tricky, (";",)]
    for bad in ("$remote_addr", "a\nb"):
        with pytest.raises(WWError, match="nginx"):
            emit.nginx(bad)


@pytest.mark.parametrize("value", ["quiet\nshell", "&&", "||", ";", "a;b", "${x}", "a b", "#c", 'a"', ""])
def test_ipxe_refuses_operators_and_line_breaks(value: str) -> None:
    with pytest.raises(WWError, match="iPXE"):
        emit.ipxe(value)


@pytest.mark.parametrize("value", HOSTILE)
def test_sh_reads_back(value: str, tmp_path: Path) -> None:
    """What dash reads from a sourced X=<sh value> is the value itself; NUL is refused."""
    if "\x00" in value:
        with pytest.raises(WWError, match="sh"):
            emit.sh(value)
        return
    script = tmp_path / "env"
    script.write_text(f"X={emit.sh(value)}\nY=\"{emit.sh_dq(value)}\"\n")
    assert sourced_values(script, ["X", "Y"]) == {"X": value, "Y": value}


@pytest.mark.parametrize("value", HOSTILE)
def test_each_emitter_keeps_one_line_or_refuses(value: str) -> None:
    """No emitter for a line-based syntax lets a value add a line."""
    for name, f in emit.FILTERS.items():
        if name in ("kea", "netplan", "sh", "shquote", "sh_dq", "keyfile_list"):
            continue
        try:
            out = f(value)
        except WWError as e:
            assert "cannot be written into" in e.message
            continue
        assert len(out.splitlines()) == 1 and "\x00" not in out, name
    for name in ("kea", "netplan"):
        assert json.loads(emit.FILTERS[name](value)) == value
        assert "\n" not in emit.netplan(value)


def test_keyfile_list_escapes_its_separator() -> None:
    assert emit.keyfile_list(["10.0.0.1", "a;b"]) == "10.0.0.1;a\\;b;"
    assert emit.keyfile("a\\b") == "a\\\\b"


def test_ifcfg_is_sh() -> None:
    for value in ("mode=active-backup miimon=100", "a$b", "it's"):
        assert shlex.split(emit.ifcfg(value)) == [value]
    assert emit.ifcfg("x", quoted=True) == '"x"'


def test_refusal_names_value_and_syntax() -> None:
    with pytest.raises(WWError) as got:
        emit.dnsmasq("a,b")
    assert "'a,b'" in got.value.message and "dnsmasq" in got.value.message
    with pytest.raises(WWError) as got:
        emit.systemd("x" * 10_000 + "%")
    assert len(got.value.message) < 200
