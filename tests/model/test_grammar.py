"""The value grammars of spec.py: what each string field accepts and refuses, and where it says so."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.model import errors_of, expect_error, load, show
from toolchain.errors import Loc
from toolchain.model import spec
from toolchain.model.grammar import SHELL_OPERATORS, Grammar, GrammarError, check

BASE = """\
head:
  ip: 10.0.0.1
  network: 10.0.0.0/24
  @HEAD@
images:
  img:
    root: /srv/img
nfs:
  exports: [@NFS@]
ssh:
  authorized_keys: [@KEYS@]
nodes:
  @NAME@:
    image: img
    comment: @COMMENT@
    kernel: {args: [quiet, @ARG@]}
    tags: {@TAG@: x}
    network:
      default: {ip: 10.0.0.11, mac: @MAC@, device: @DEV@}
"""
DEFAULTS = {"HEAD": "fqdn: head.example.org", "NFS": "", "KEYS": "", "NAME": "n1", "COMMENT": "c",
            "ARG": "debug", "TAG": "DNS1", "MAC": '"52:54:00:00:00:01"', "DEV": "eth0"}
# Where each grammar is tried: (slot, text around the value, grammar).
SLOTS = {
    "head.http": ("HEAD", "http: @V@"),
    "head.fqdn": ("HEAD", "fqdn: @V@"),
    "head.access_log": ("HEAD", "access_log: @V@"),
    "nfs.exports.path": ("NFS", "{path: @V@}"),
    "nfs.exports.options": ("NFS", "{path: /srv, options: @V@}"),
    "ssh.authorized_keys": ("KEYS", "@V@"),
    "node name": ("NAME", "@V@"),
    "nodes.comment": ("COMMENT", "@V@"),
    "nodes.kernel.args": ("ARG", "@V@"),
    "nodes.tags key": ("TAG", "@V@"),
    "nodes.network.mac": ("MAC", "@V@"),
    "nodes.network.device": ("DEV", "@V@"),
}


def placed(slot: str, value: str) -> tuple[str, int, int]:
    """BASE with `value` (as a YAML double-quoted string) in `slot`, and the value's line:col."""
    name, around = SLOTS[slot]
    text = BASE
    for key, default in DEFAULTS.items():
        text = text.replace(f"@{key}@", around if key == name else default)
    # JSON strings are YAML double-quoted strings: every hostile character survives.
    at = text.index("@V@")
    line = text.count("\n", 0, at) + 1
    col = at - (text.rfind("\n", 0, at) + 1) + 1
    return text.replace("@V@", json.dumps(value)), line, col


ACCEPTED = [
    ("head.http", "http://10.0.0.1"), ("head.http", "http://10.0.0.1:8080"),
    ("head.http", "http://head.example.org:80"),
    ("head.fqdn", "head.example.org"), ("head.fqdn", "a" * 63 + ".b"),
    ("head.access_log", "/var/log/nginx/x.log"),
    ("nfs.exports.path", "/srv/home"),
    ("nfs.exports.options", "rw,sync,no_subtree_check"), ("nfs.exports.options", "sec=krb5:krb5i,fsid=0"),
    ("ssh.authorized_keys", "from=\"10.0.0.0/8\" ssh-ed25519 AAAAC3Nza root@head"),
    ("node name", "n01"), ("node name", "a" * 63), ("node name", "rack1-n01.cluster"),
    ("nodes.comment", "rack 4; left {top} \"old\" $5"),
    ("nodes.kernel.args", "console=ttyS0,115200n8"), ("nodes.kernel.args", "root=LABEL=x"),
    ("nodes.tags key", "route1"),
    ("nodes.network.mac", "52:54:00:00:00:02"), ("nodes.network.mac", "02-00-00-00-00-01"),
    ("nodes.network.device", "eno1"), ("nodes.network.device", "ib0.8001"),
    ("nodes.network.device", "a" * 15),
]


@pytest.mark.parametrize(("slot", "value"), ACCEPTED)
def test_grammar_accepts(tmp_path: Path, slot: str, value: str) -> None:
    text, _, _ = placed(slot, value)
    assert load(tmp_path, text).nodes


REFUSED = [
    ("head.http", "http://10.0.0.1\nshell", "control character"),
    ("head.http", 'http://10.0.0.1/"x', "holds '\"'"),
    ("head.http", "http://10.0.0.1;location / { }", "holds"),
    ("head.http", "http://10.0.0.1 x", "holds U+0020"),
    ("head.http", "ftp://10.0.0.1", "is not an http, https or file URL"),
    ("head.http", "http://", "has no host"),
    ("head.http", "http://10.0.0.1:0", "port 0"),
    ("head.fqdn", "a" * 64 + ".org", "label of 64"),
    ("head.fqdn", "head.example.org.", "empty label"),
    ("head.fqdn", "head_1.org", "RFC 1123"),
    ("head.fqdn", ("a" * 60 + ".") * 5, "characters long"),
    ("head.access_log", "/x.log wwstatic; location ~ ^.nodes. { } #", "U+0020"),
    ("head.access_log", "/x.log;", "holds ';'"),
    ("head.access_log", "/x{.log", "holds '{'"),
    ("head.access_log", "/x'.log", "holds"),
    ("head.access_log", "x.log", "absolute path"),
    ("nfs.exports.path", "/srv\n/etc *(rw)", "control character"),
    ("nfs.exports.options", "rw sync", "U+0020"),
    ("nfs.exports.options", "rw)\n/ *(rw", "control character"),
    ("ssh.authorized_keys", "ssh-ed25519 AAAA\nssh-rsa BBBB", "control character U+000A"),
    ("node name", "a" * 64, "label of 64"),
    ("node name", "a" * 300, "characters long"),
    ("node name", "n01.", "empty label"),
    ("node name", "-n01", "RFC 1123"),
    ("node name", "n_01", "RFC 1123"),
    ("nodes.comment", "a\nb", "U+000A"),
    ("nodes.comment", "a\u2028b", "U+2028"),
    ("nodes.comment", "a\x00b", "U+0000"),
    ("nodes.comment", "x" * 10_000, "10000 characters"),
    ("nodes.kernel.args", "quiet\nshell", "U+000A"),
    ("nodes.kernel.args", "a&&shell", "'&'"),
    ("nodes.kernel.args", "a||shell", "'|'"),
    ("nodes.kernel.args", "a;shell", "';'"),
    ("nodes.kernel.args", "${net0/ip}", "'$'"),
    ("nodes.kernel.args", "`id`", "'`'"),
    ("nodes.kernel.args", "a b", "U+0020"),
    ("nodes.kernel.args", "~", "is empty"),
    ("nodes.tags key", "a b", "tag name"),
    ("nodes.tags key", "${x}", "tag name"),
    ("nodes.network.mac", "ff:ff:ff:ff:ff:ff", "broadcast"),
    ("nodes.network.mac", "01:00:5e:00:00:01", "multicast"),
    ("nodes.network.mac", "33:33:00:00:00:01", "multicast"),
    ("nodes.network.device", "a" * 16, "16 characters"),
    ("nodes.network.device", "eth/0", "not a valid name"),
    ("nodes.network.device", "eth 0", "not a valid name"),
    ("nodes.network.device", "..", "not a valid name"),
]


@pytest.mark.parametrize(("slot", "value", "problem"), REFUSED)
def test_grammar_refuses_at_the_value(tmp_path: Path, slot: str, value: str, problem: str) -> None:
    text, line, col = placed(slot, value)
    err = expect_error(tmp_path, text, line, col, problem, single=False)
    assert err.hint
    assert "\n" not in err.message and len(err.message) < 300, err.message


def test_every_string_field_names_a_grammar_it_can_check() -> None:
    def walk(fields: tuple[spec.Field, ...]) -> list[spec.Field]:
        return [x for f in fields for x in [f, *walk(f.fields)]]
    texts = [f for f in walk(spec.TOP) if f.kind in (spec.Kind.STR, spec.Kind.NAME, spec.Kind.PATH,
                                                       spec.Kind.LIST)]
    assert len(texts) > 30
    for f in texts:
        grammar = f.text_grammar()
        with pytest.raises(GrammarError):
            check(grammar, "a\nb")      # no grammar lets a newline through
        if f.default is not None and not f.choices:
            for item in f.default if isinstance(f.default, list) else [f.default]:
                check(grammar, item)    # the table's own defaults are in the grammar


def test_schema_patterns_follow_the_grammars() -> None:
    props = spec.json_schema()["properties"]
    head = props["head"]["properties"]
    assert re.search(head["access_log"]["pattern"], "/var/log/x.log")
    assert not re.search(head["access_log"]["pattern"], "/x.log wwstatic; location")
    mac = props["nodes"]["additionalProperties"]["properties"]["network"]["additionalProperties"][
        "properties"]["mac"]["anyOf"][0]["pattern"]
    assert re.search(mac, "52:54:00:00:00:01") and not re.search(mac, "ff:ff:ff:ff:ff:ff")


# --- properties: what an accepted value cannot contain ---------------------------------

HOSTILE = st.text(st.sampled_from(list("aZ09.-_/:=,;&|$`\"'\\ \t\n\r\x00\x7f\u2028{}<>~#")) | st.characters(),
                  max_size=70)


@settings(max_examples=400, deadline=None)
@given(text=HOSTILE)
def test_accepted_host_names_hold_only_rfc1123_characters(text: str) -> None:
    try:
        check(Grammar.HOST, text)
    except GrammarError:
        return
    assert re.fullmatch(r"[A-Za-z0-9.-]{1,253}", text), text
    assert all(0 < len(label) <= 63 for label in text.split("."))
    assert not text.startswith(("-", ".")) and not text.endswith(("-", "."))


@settings(max_examples=400, deadline=None)
@given(text=HOSTILE)
def test_accepted_interface_names_fit_linux(text: str) -> None:
    try:
        check(Grammar.IFNAME, text)
    except GrammarError:
        return
    assert 0 < len(text) <= 15 and text not in (".", "..")
    assert "/" not in text and ":" not in text and not any(c.isspace() or not c.isprintable() for c in text)


@settings(max_examples=400, deadline=None)
@given(text=HOSTILE)
def test_accepted_kernel_args_hold_no_operator(text: str) -> None:
    try:
        check(Grammar.TOKEN, text)
    except GrammarError:
        return
    assert text and not any(c.isspace() or not c.isprintable() for c in text), repr(text)
    assert not set(text) & set(SHELL_OPERATORS), text
    for op in ("&&", "||", ";", "$", "`", "\n"):
        assert op not in text


# --- the model's own checks --------------------------------------------------------------

NODE = """\
head: {ip: 10.0.0.1, network: 10.0.0.0/24}
images: {img: {root: /srv/img}}
profiles:
  p: {kernel: {args: [quiet, console=ttyS0]}}
nodes:
"""


def test_removing_what_nothing_added_is_an_error_at_the_item(tmp_path: Path) -> None:
    text = NODE + ("  n1:\n    profiles: [p]\n    image: img\n"
                   "    kernel:\n      args:\n        - debug\n        - ~quiett\n"
                   '    network: {default: {ip: 10.0.0.11, mac: "52:54:00:00:00:01"}}\n')
    err = expect_error(tmp_path, text, 12, 11, "`~quiett` removes `quiett`, which nothing set before")
    assert "quiet, console=ttyS0, debug" in err.hint
    # Removing what is there stays fine.
    fixed = load(tmp_path, text.replace("~quiett", "~quiet"))
    assert fixed.nodes[0].kernel.args == ("console=ttyS0", "debug")


def test_node_count_is_capped_before_expanding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A hostlist far beyond the cap is refused at its key (it is counted, not built).
    text = NODE + "  n[1-999999]:\n    image: img\n"
    expect_error(tmp_path, text, 6, 3, f"999999 nodes, more than {spec.MAX_NODES}")
    # The cap is on the cluster: keys add up.
    monkeypatch.setattr(spec, "MAX_NODES", 3)
    net = '    network: {default: {ip: 10.0.0.%d, mac: ["52:54:00:00:00:%02d", "52:54:00:00:00:%02d"]}}\n'
    text = (NODE + "  n[1-2]:\n    image: img\n" + net % (11, 1, 2)
            + "  m[1-2]:\n    image: img\n" + net % (21, 3, 4))
    expect_error(tmp_path, text, 9, 3, "`m[1-2]` brings the cluster to 4 nodes, more than 3")


def test_mac_list_of_wrong_length_is_the_only_error_of_its_key(tmp_path: Path) -> None:
    text = NODE + ('  n[1-3]:\n    image: img\n    network: {default: '
                   '{ip: 10.0.0.11, mac: ["52:54:00:00:00:01", "52:54:00:00:00:02"]}}\n')
    errors = errors_of(tmp_path, text)
    assert [e.loc.line if e.loc else 0 for e in errors] == [8], show(errors)
    assert "2 values for 3 node(s)" in errors[0].message


def test_names_that_differ_only_in_case_are_refused(tmp_path: Path) -> None:
    net = '    network: {default: {ip: 10.0.0.%d, mac: "52:54:00:00:00:%02d"}}\n'
    text = (NODE + "  n01:\n    image: img\n" + net % (11, 1)
            + "  N01:\n    image: img\n" + net % (12, 2))
    err = expect_error(tmp_path, text, 9, 3, "node N01 and node n01 differ only in case")
    assert err.loc == Loc(str(tmp_path / "cluster.yaml"), 9, 3)
