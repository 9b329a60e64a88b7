"""Typed readers for YAML values: each checks one value and says what is wrong.

They take a located node and return a plain Python value, or raise WWError at
that node's file, line and column with a hint that shows the fix.
"""

from __future__ import annotations

import difflib
import ipaddress
import re

import yaml

from toolchain.errors import WWError
from toolchain.model.grammar import Grammar, GrammarError, check, shown
from toolchain.model.yamlsrc import TYPE_NAMES, YMap, YNode, YScalar, YSeq, kind_of

_MAC = re.compile(r"[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}\Z")


def _wrong(node: YNode, what: str, expected: str, hint: str) -> WWError:
    got = TYPE_NAMES.get(kind_of(node), kind_of(node))
    shown = f" `{node.text}`" if isinstance(node, YScalar) and node.text else ""
    return WWError(f"{what} must be {expected}, but YAML reads{shown} as {got}",
                   loc=node.loc, hint=hint)


def as_map(node: YNode, what: str) -> YMap:
    if isinstance(node, YScalar) and node.kind == "null":
        return YMap((), node.loc)
    if not isinstance(node, YMap):
        raise _wrong(node, what, "a mapping (`key: value` lines indented below it)",
                     "write `key: value` lines indented below it, or {key: value}")
    return node


def as_str(node: YNode, what: str) -> str:
    if isinstance(node, YScalar) and node.kind == "str":
        return node.text
    if isinstance(node, YScalar) and node.kind == "null":
        hint = "write a value after the colon"
    elif isinstance(node, YScalar):
        # A bool, number or date that was meant as text: quoting keeps it text.
        hint = f'put it in quotes: "{node.text}"'
    else:
        hint = "write a single value on the same line, without [ ], `- ` or `key:`"
    raise _wrong(node, what, "a string", hint)


def as_list(node: YNode, what: str) -> list[str]:
    """A list of strings; a single string is accepted as a one-item list."""
    if isinstance(node, YScalar) and node.kind == "null":
        return []
    if isinstance(node, YScalar):
        return [as_str(node, what)]
    if not isinstance(node, YSeq):
        raise _wrong(node, what, "a list such as [a, b]",
                     "write the items as [a, b], or as `- a` lines indented below it")
    return [as_str(item, f"each item of {what}") for item in node.items]


def as_mac(node: YNode, what: str) -> str:
    if isinstance(node, YScalar) and node.kind == "int" and ":" in node.text:
        raise WWError(
            f"{what} `{node.text}` is read by YAML as a base-60 number, not a MAC address",
            loc=node.loc,
            hint=f'put the MAC in quotes: "{node.text}"',
        )
    text = as_str(node, what)
    if not _MAC.match(text):
        raise WWError(f"{what} {shown(text)} is not a MAC address", loc=node.loc,
                      hint='write six hex pairs, e.g. "52:54:00:12:34:56"')
    if int(text[:2], 16) & 1:
        # Broadcast ff:ff:ff:ff:ff:ff included: no network card has such an address.
        raise WWError(f"{what} `{text}` is a multicast or broadcast address", loc=node.loc,
                      hint="a network card's MAC is unicast: the first octet is even")
    return text.lower().replace("-", ":")


def as_ipv4(node: YNode, what: str) -> ipaddress.IPv4Address:
    text = as_str(node, what)
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        raise WWError(f"{what} `{text}` is not an IPv4 address", loc=node.loc,
                      hint="write it like 10.0.0.11") from None


def as_network(node: YNode, what: str) -> ipaddress.IPv4Network:
    text = as_str(node, what)
    try:
        return ipaddress.IPv4Network(text, strict=True)
    except ValueError as exc:
        raise WWError(f"{what} `{text}` is not an IPv4 network: {exc}", loc=node.loc,
                      hint="write the network address and prefix, e.g. 10.0.0.0/24") from None


def as_text(node: YNode, what: str, grammar: Grammar) -> str:
    """A string of `grammar` (grammar.py)."""
    text = as_str(node, what)
    check_text(text, node, what, grammar)
    return text


def check_text(text: str, node: YNode, what: str, grammar: Grammar) -> str:
    """`text` (written at `node`) if it is of `grammar`, else WWError there."""
    try:
        check(grammar, text)
    except GrammarError as exc:
        raise WWError(f"{what} {shown(text)} {exc}", loc=node.loc, hint=exc.hint) from None
    return text


def as_path(node: YNode, what: str) -> str:
    text = as_str(node, what)
    if not text.startswith("/"):
        raise WWError(f"{what} `{text}` must be an absolute path", loc=node.loc,
                      hint=f"write /{text} if that is what you mean")
    return text


NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")


def as_name(node: YNode, what: str) -> str:
    text = as_str(node, what)
    if not NAME.match(text):
        raise WWError(f"{what} `{text}` is not a valid name", loc=node.loc,
                      hint="use letters, digits, `.`, `_` and `-`, starting with a letter or digit")
    return text


def check_keys(node: YMap, allowed: dict[str, str], what: str) -> None:
    """Reject keys not in `allowed` (key -> one-line help), suggesting a near one."""
    for key, _ in node.items:
        if key.text not in allowed:
            near = difflib.get_close_matches(key.text, list(allowed), n=1)
            hint = (f"did you mean `{near[0]}`?" if near else
                    "allowed here: " + ", ".join(sorted(allowed)))
            raise WWError(f"unknown key `{key.text}` in {what}", loc=key.loc, hint=hint)


def as_int(node: YNode, what: str, minimum: int = 0, maximum: int = 2**31) -> int:
    if not (isinstance(node, YScalar) and node.kind == "int"):
        raise _wrong(node, what, "a whole number", "write digits only, e.g. 9000")
    value = yaml_int(node.text)
    if not minimum <= value <= maximum:
        raise WWError(f"{what} {value} is out of range", loc=node.loc,
                      hint=f"use a number from {minimum} to {maximum}")
    return value


def yaml_int(text: str) -> int:
    """An integer as YAML 1.1 writes it: 0x1f, 0o17 and 017 (octal), 1:30 (base 60), 1_000."""
    value = yaml.safe_load(text)
    assert isinstance(value, int), text
    return value


def as_bool(node: YNode, what: str) -> bool:
    if not (isinstance(node, YScalar) and node.kind == "bool"):
        raise _wrong(node, what, "true or false", "write true or false")
    return node.text.lower() in ("true", "yes", "on", "y")


def as_netmask(node: YNode, what: str) -> str:
    text = as_str(node, what)
    try:
        ipaddress.IPv4Network(f"0.0.0.0/{text}")
    except ValueError:
        raise WWError(f"{what} `{text}` is not an IPv4 netmask", loc=node.loc,
                      hint="write it like 255.255.255.0") from None
    if "." not in text:
        raise WWError(f"{what} `{text}` is a prefix length, not a netmask", loc=node.loc,
                      hint=f"write {ipaddress.IPv4Network(f'0.0.0.0/{text}').netmask}")
    return text


def as_choice(node: YNode, what: str, choices: tuple[str, ...]) -> str:
    text = as_str(node, what)
    if text not in choices:
        raise WWError(f"{what} `{text}` is not one of {', '.join(choices)}", loc=node.loc,
                      hint=f"choose one of: {', '.join(choices)}")
    return text


def as_free(node: YNode) -> object:
    """Free-form YAML (resources) as plain Python values, typed as YAML 1.1 would."""
    if isinstance(node, YMap):
        return {k.text: as_free(v) for k, v in node.items}
    if isinstance(node, YSeq):
        return [as_free(v) for v in node.items]
    if node.kind == "null":
        return None
    if node.kind == "bool":
        return node.text.lower() in ("true", "yes", "on", "y")
    if node.kind == "int":
        return yaml_int(node.text)
    if node.kind == "float":
        try:
            return float(node.text)
        except ValueError:
            return node.text
    return node.text
