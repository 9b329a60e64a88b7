"""Emitters: the one way a value goes into a generated file, one per syntax.

Each emitter returns the value written so that the file's own parser reads it
back as one value in its slot, or raises WWError naming the value and the
syntax. A value that needs no quoting is written bare, so ordinary files stay
as they were. Templates reach these as filters of the same names (FILTERS);
tests/common/test_emit_scan.py fails on a template value written without one.

Lists (tuples too) are emitted item by item and joined by the syntax's list
separator where the syntax has lists (`dns-nameservers a b`, `dns=a;b;`).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Iterable
from typing import Any

from toolchain.errors import WWError

# Characters no line-based file can carry inside a value: C0/C1 controls, DEL,
# and what str.splitlines() (and so some readers) also breaks lines at.
_BREAKS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# A bare word every syntax here reads as itself: no quoting, no operators.
_PLAIN = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")


def _show(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:57] + "...")


def _refuse(value: str, syntax: str, why: str) -> WWError:
    return WWError(f"{_show(value)} cannot be written into {syntax}: {why}",
                   hint="change the value in cluster.yaml (or the template that built it)")


def _one_line(value: Any, syntax: str) -> str:
    text = str(value)
    bad = _BREAKS.search(text)
    if bad:
        raise _refuse(text, syntax, f"it holds the control or line-break character {bad.group()!r}")
    return text


def _refuse_chars(text: str, syntax: str, chars: str) -> None:
    for c in chars:
        if c in text:
            raise _refuse(text, syntax, f"{c!r} has a meaning there that no quoting turns off")


def _each(value: Any, sep: str, one: Callable[[Any], str]) -> str:
    if isinstance(value, (list, tuple)):
        return sep.join(one(v) for v in value)
    return one(value)


def comment(value: Any) -> str:
    """Text on a `#` (or `//`) comment line of any of the formats: one line."""
    return _one_line(value, "a comment line")


def line(value: Any) -> str:
    """A whole line of a line-per-record file (hostname, timezone, authorized_keys, passwd)."""
    return _one_line(value, "a one-line record")


def token(value: Any) -> str:
    """One whitespace-separated word of hosts, fstab, resolv.conf or chrony.conf."""
    def one(v: Any) -> str:
        text = _one_line(v, "a word of a whitespace-separated file")
        if not text or re.search(r"\s", text) or text.startswith("#"):
            raise _refuse(text, "a word of a whitespace-separated file",
                          "it is empty, holds white space or starts a comment")
        return text
    return _each(value, " ", one)


def nginx(value: Any) -> str:
    """An nginx directive argument: bare when plain, else a "..." string with \\ and " escaped.
    `$` is refused: nginx expands variables inside quotes too, with no escape."""
    text = _one_line(value, "nginx")
    _refuse_chars(text, "nginx", "$")
    if _PLAIN.fullmatch(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def ipxe(value: Any) -> str:
    """One iPXE word. iPXE splits on white space, expands ${...}, treats `||`, `&&`
    and `;` as operators and a word starting with `#` as a comment, and has no
    quoting to turn these off: so they are refused."""
    def one(v: Any) -> str:
        text = _one_line(v, "iPXE")
        if not text or re.search(r"\s", text) or text.startswith("#"):
            raise _refuse(text, "iPXE", "it is empty, holds white space or starts a comment")
        _refuse_chars(text, "iPXE", "$;&|\"'\\")
        return text
    return _each(value, " ", one)


def dhcpd(value: Any) -> str:
    """An ISC dhcpd string: "..." with \\ and " escaped."""
    text = _one_line(value, "dhcpd.conf")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dhcpd_token(value: Any) -> str:
    """A bare dhcpd word (host name, address, MAC, number): nothing dhcpd's lexer splits."""
    text = _one_line(value, "dhcpd.conf")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:-]*", text):
        raise _refuse(text, "dhcpd.conf", "a name, address or number there is letters, digits, `.`, `:`, `-`")
    return text


def dnsmasq(value: Any) -> str:
    """A field of a dnsmasq option: `,` separates fields, `#` starts a comment, quotes
    and white space are taken apart by its parser; all refused."""
    text = _one_line(value, "dnsmasq.conf")
    if re.search(r"\s", text):
        raise _refuse(text, "dnsmasq.conf", "white space ends the field")
    _refuse_chars(text, "dnsmasq.conf", ",#\"\\")
    return text


def kea(value: Any) -> str:
    """Kea's configuration is JSON: a value (or the whole configuration) as JSON."""
    return json.dumps(value, indent=2)


def sh(value: Any) -> str:
    """A word for POSIX sh (sourced files, init scripts): single-quoted unless plain."""
    text = str(value)
    if "\x00" in text:
        raise _refuse(text, "POSIX sh", "a shell string cannot hold NUL")
    return shlex.quote(text)


def sh_dq(value: Any) -> str:
    """Text inside a "..." of POSIX sh: `$`, backquote, `"` and \\ escaped."""
    sh(value)  # the same refusals as a quoted word
    return re.sub(r'([$`"\\])', r"\\\1", str(value))


def ifcfg(value: Any, quoted: bool = False) -> str:
    """A value of a Red Hat ifcfg file, which initscripts source and NetworkManager's
    ifcfg-rh reads with sh quoting: bare when plain, "..." when nothing in it is
    special inside double quotes, else single-quoted."""
    text = _one_line(value, "ifcfg")
    if _PLAIN.fullmatch(text) and not quoted:
        return text
    if not re.search(r'[$`"\\!]', text):
        return f'"{text}"'
    return shlex.quote(text)


def keyfile(value: Any) -> str:
    """A NetworkManager keyfile (GKeyFile) value: \\ escaped, leading space as \\s."""
    text = _one_line(value, "a NetworkManager keyfile").replace("\\", "\\\\")
    return "\\s" + text[1:] if text.startswith(" ") else text


def keyfile_list(value: Iterable[Any]) -> str:
    """A GKeyFile list: items with `;` escaped, each followed by `;`."""
    return "".join(keyfile(v).replace(";", "\\;") + ";" for v in value)


def netplan(value: Any) -> str:
    """A netplan YAML scalar or list, as JSON (YAML reads JSON as it is); ASCII only,
    so U+2028 and NUL are escapes, not characters."""
    return json.dumps(value)


def systemd(value: Any) -> str:
    """A systemd unit-style value (.network, .link, units): to the end of its line.
    A trailing \\ would continue the line and `%` is a specifier in many keys;
    quotes and \\ are taken apart by list-valued keys: all refused."""
    text = _one_line(value, "a systemd unit file")
    if text != text.strip():
        raise _refuse(text, "a systemd unit file", "systemd strips white space around values")
    _refuse_chars(text, "a systemd unit file", "%\\\"'")
    return text


def ifupdown(value: Any) -> str:
    """A word of /etc/network/interfaces, which has no quoting, and whose `up` lines
    run through sh: plain words only. Lists are joined with spaces."""
    def one(v: Any) -> str:
        text = _one_line(v, "/etc/network/interfaces")
        if not _PLAIN.fullmatch(text):
            raise _refuse(text, "/etc/network/interfaces",
                          "it has no quoting: only letters, digits and @%+=:,./_- are safe")
        return text
    return _each(value, " ", one)


def udev(value: Any) -> str:
    """Text inside a "..." of a udev rule: `"`, \\, substitutions (`$`, `%`) and
    glob characters refused."""
    text = _one_line(value, "a udev rule")
    _refuse_chars(text, "a udev rule", '"\\$%*?[]|')
    return text


def issue(value: Any) -> str:
    """Text of /etc/issue, where agetty reads \\ as the start of an escape."""
    text = _one_line(value, "/etc/issue")
    _refuse_chars(text, "/etc/issue", "\\")
    return text


# The Jinja filter of each emitter (build and overlay environments); `shquote`
# is the overlays' old name of `sh`, kept for site templates.
FILTERS: dict[str, Callable[..., str]] = {
    f.__name__: f for f in (comment, line, token, nginx, ipxe, dhcpd, dhcpd_token, dnsmasq, kea,
                            sh, sh_dq, ifcfg, keyfile, keyfile_list, netplan, systemd, ifupdown,
                            udev, issue)
} | {"shquote": sh}
