"""What text each string setting may hold, so no value can escape its slot.

Values of cluster.yaml end up in nginx, iPXE, DHCP and shell files, on kernel
command lines and in file names. Each string field of the table (spec.py) names
one grammar here; the reader checks it at load time, and the JSON Schema gets
its pattern. A grammar is a whitelist where the syntax allows one: emitters
still quote, this refuses what no quoting should have to carry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit


class Grammar(StrEnum):
    TEXT = "text"          # one line of free text
    NAME = "name"          # an identifier that also names files
    HOST = "host"          # an RFC 1123 host name
    IFNAME = "ifname"      # a Linux interface name
    PATH = "path"          # an absolute path
    FILE = "file"          # a path on the head, relative or absolute
    URL = "url"            # an http, https or file URL
    TOKEN = "token"        # one kernel argument, or one argument word
    OPTIONS = "options"    # comma-separated mount or export options
    PACKAGE = "package"    # a Debian package name, optionally =version or :arch
    TAG = "tag"            # a tag's key


class GrammarError(ValueError):
    """`args[0]` says what is wrong with the text, `hint` how to write it."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


# C0 controls, DEL, C1 controls, and the Unicode line and paragraph separators,
# which some parsers (and editors) take as line ends.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Characters with a meaning in iPXE (`${`, `&&`, `||`), POSIX sh and nginx.
SHELL_OPERATORS = ";&|$`\"'\\<>{}"
_NAME_RE = "[A-Za-z0-9][A-Za-z0-9._-]*"
_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")
MAX_NAME = 128       # names become file names (255 bytes at most) with a suffix
MAX_HOST = 253       # RFC 1123: a host name, dots included
IFNAMSIZ = 16        # Linux: 15 characters and the terminating NUL
MAX_PATH = 4095      # Linux PATH_MAX without the NUL
MAX_TEXT = 4096


@dataclass(frozen=True)
class Rule:
    describe: str              # for the docs: what the value must be
    pattern: str | None        # a JSON Schema pattern for editors, where one says it all


RULES: dict[Grammar, Rule] = {
    Grammar.TEXT: Rule("one line, no control characters", r"^[^\x00-\x1f\x7f]*$"),
    Grammar.NAME: Rule("letters, digits, `.`, `_`, `-`", f"^{_NAME_RE}$"),
    Grammar.HOST: Rule("an RFC 1123 host name", r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$"),
    Grammar.IFNAME: Rule("an interface name of at most 15 characters",
                         r"^[A-Za-z0-9][A-Za-z0-9._-]{0,14}$"),
    Grammar.PATH: Rule("an absolute path without spaces, quotes or ;{}$&|", r"^/[^\s;{}$&|`\"'\\<>]*$"),
    Grammar.FILE: Rule("a file path, one line", r"^[^\x00-\x1f\x7f]+$"),
    Grammar.URL: Rule("an http://, https:// or file:// URL", r"^(https?|file)://[^\s;{}\"'`\\<>]*$"),
    Grammar.TOKEN: Rule("one word: no spaces, quotes or ;&|$`<>{}", r"^[^\s;&|$`\"'\\<>{}]+$"),
    Grammar.OPTIONS: Rule("comma-separated options", r"^[A-Za-z0-9_=,.:@/+-]*$"),
    Grammar.PACKAGE: Rule("a Debian package name", r"^[A-Za-z0-9][A-Za-z0-9.+_:=~-]*$"),
    Grammar.TAG: Rule("letters, digits, `.`, `_`, `-`", r"^[A-Za-z0-9_][A-Za-z0-9._-]*$"),
}


def check(grammar: Grammar, text: str) -> None:
    """Raise GrammarError unless `text` belongs to `grammar`."""
    _CHECKS[grammar](text)


def _shown(ch: str) -> str:
    return repr(ch) if ch.isprintable() and not ch.isspace() else f"U+{ord(ch):04X}"


def _no_control(text: str, limit: int = MAX_TEXT) -> None:
    m = _CONTROL.search(text)
    if m:
        raise GrammarError(f"holds the control character {_shown(m.group())}",
                           "write it on one line, without tabs or control characters")
    if not text.isprintable():
        # Format characters (bidi overrides, zero-width spaces) and unassigned
        # code points: text that does not read as what it does.
        ch = next(c for c in text if not c.isprintable())
        raise GrammarError(f"holds the invisible character {_shown(ch)}",
                           "write it with visible characters only (a space is fine in free text)")
    if len(text) > limit:
        raise GrammarError(f"is {len(text)} characters long", f"keep it to {limit} characters")


def _none_of(text: str, forbidden: str, hint: str) -> None:
    for ch in text:
        if ch.isspace() or ch in forbidden:
            raise GrammarError(f"holds {_shown(ch)}", hint)


def _text(text: str) -> None:
    _no_control(text)


def _name(text: str) -> None:
    _no_control(text, MAX_NAME)
    if not re.fullmatch(_NAME_RE, text):
        raise GrammarError("is not a valid name",
                           "use letters, digits, `.`, `_` and `-`, starting with a letter or digit")


def _host(text: str) -> None:
    _no_control(text, MAX_HOST)
    hint = ("a host name is labels of letters, digits and `-` (at most 63 each, not starting or "
            "ending with `-`) joined by dots, at most 253 characters, with no trailing dot")
    if not text:
        raise GrammarError("is empty", hint)
    for label in text.split("."):
        if len(label) > 63:
            raise GrammarError(f"has a label of {len(label)} characters", hint)
        if not _LABEL.match(label):
            raise GrammarError("is not an RFC 1123 host name" if label else "has an empty label", hint)


def _ifname(text: str) -> None:
    _name(text)
    if len(text) >= IFNAMSIZ or text in (".", ".."):
        raise GrammarError(f"is {len(text)} characters long" if len(text) >= IFNAMSIZ
                           else "is not an interface name",
                           f"Linux interface names have at most {IFNAMSIZ - 1} characters")


def _path(text: str) -> None:
    _no_control(text, MAX_PATH)
    if not text.startswith("/"):
        raise GrammarError("must be an absolute path", f"write /{text} if that is what you mean")
    _none_of(text, SHELL_OPERATORS,
             "paths end up in nginx, shell and fstab lines: use no spaces, quotes or ;{}$&|<>\\")


def _file(text: str) -> None:
    _no_control(text, MAX_PATH)
    if not text:
        raise GrammarError("is empty", "name a file")


def _url(text: str) -> None:
    # Checked on the raw text: urlsplit silently drops tabs and newlines.
    _no_control(text)
    _none_of(text, "\"'`\\<>{};|^", "write the URL without spaces, quotes, ; { } or | "
             "(percent-encode what must be there)")
    try:
        url = urlsplit(text)
        port = url.port
    except ValueError as exc:
        raise GrammarError(f"is not a URL ({exc})", "write e.g. http://10.0.0.1:8080") from None
    if url.scheme not in ("http", "https", "file"):
        raise GrammarError("is not an http, https or file URL", "write e.g. http://10.0.0.1:8080")
    if url.scheme != "file" and not url.hostname:
        raise GrammarError("has no host", "write e.g. http://10.0.0.1:8080")
    if url.scheme != "file" and url.hostname and not re.fullmatch(r"[A-Za-z0-9.-]+", url.hostname):
        raise GrammarError(f"has the host `{url.hostname}`", "write a host name or an IPv4 address")
    if port == 0:
        raise GrammarError("has port 0", "use a port from 1 to 65535")


def _token(text: str) -> None:
    _no_control(text)
    if not text:
        raise GrammarError("is empty", "leave it out instead")
    _none_of(text, SHELL_OPERATORS,
             "write one argument per item, without spaces, quotes or the iPXE and shell "
             "operators ; && || $ ` < > { }")


def _options(text: str) -> None:
    _no_control(text)
    if not re.fullmatch(r"[A-Za-z0-9_=,.:@/+-]*", text):
        bad = next(ch for ch in text if not re.fullmatch(r"[A-Za-z0-9_=,.:@/+-]", ch))
        raise GrammarError(f"holds {_shown(bad)}",
                           "write options separated by commas, e.g. rw,sync,no_subtree_check")


def _package(text: str) -> None:
    _no_control(text, MAX_NAME)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.+_:=~-]*", text):
        raise GrammarError("is not a package name", "write a Debian package name, e.g. linux-image-amd64")


def _tag(text: str) -> None:
    _no_control(text, MAX_NAME)
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]*", text):
        raise GrammarError("is not a valid tag name", "use letters, digits, `.`, `_` and `-`")


_CHECKS = {
    Grammar.TEXT: _text, Grammar.NAME: _name, Grammar.HOST: _host, Grammar.IFNAME: _ifname,
    Grammar.PATH: _path, Grammar.FILE: _file, Grammar.URL: _url, Grammar.TOKEN: _token,
    Grammar.OPTIONS: _options, Grammar.PACKAGE: _package, Grammar.TAG: _tag,
}


def shown(text: str) -> str:
    """`text` for an error message: on one line, and short."""
    if len(text) <= 80 and text.isprintable():
        return f"`{text}`"
    short = repr(text[:60])
    return f"{short}… ({len(text)} characters)" if len(text) > 60 else short
