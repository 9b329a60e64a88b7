"""Reading one Warewulf value: each reader returns None for unset or unusable text, with a note."""

from __future__ import annotations

import ipaddress
import re

from toolchain.model.warewulf.files import as_items, is_null, kind_name
from toolchain.model.yamlsrc import YMap, YNode, YScalar, YSeq

# Values Warewulf uses for "not set" (`wwctl ... --field UNDEF`), compared lower-case.
UNSET = frozenset({"", "undef", "unset", "--"})
_BOOL_UNSET = UNSET | {"delete", "nil"}
_TRUE = frozenset({"true", "yes", "on", "1", "t", "y"})
_FALSE = frozenset({"false", "no", "off", "0", "f", "n"})
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}\Z")


class Mac(str):
    """A MAC address: always written in double quotes."""


class Reader:
    """Collects the notes of what could not be carried over."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def note(self, where: str, message: str) -> None:
        self.notes.append(f"{where}: {message}")

    def scalar(self, node: YNode | None, where: str, key: str, unset: frozenset[str] = UNSET) -> str | None:
        if node is None or is_null(node):
            return None
        if not isinstance(node, YScalar):
            self.note(where, f"`{key}` is {kind_name(node)}, not a single value; not carried over")
            return None
        text = node.text.strip()
        return None if text.lower() in unset else text

    def boolean(self, node: YNode | None, where: str, key: str) -> bool | None:
        text = self.scalar(node, where, key, _BOOL_UNSET)
        if text is None:
            return None
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        self.note(where, f"`{key}: {text}` is not true or false; not carried over")
        return None

    def integer(self, node: YNode | None, where: str, key: str, maximum: int) -> int | None:
        text = self.scalar(node, where, key)
        if text is None:
            return None
        if not text.isdigit() or int(text) > maximum:
            self.note(where, f"`{key}: {text}` is not a number from 0 to {maximum}; not carried over")
            return None
        return int(text)

    def ipv4(self, node: YNode | None, where: str, key: str) -> str | None:
        text = self.scalar(node, where, key)
        if text is None:
            return None
        try:
            return str(ipaddress.IPv4Address(text))
        except ValueError:
            self.note(where, f"`{key}: {text}` is not an IPv4 address; not carried over")
            return None

    def netmask(self, node: YNode | None, where: str, key: str) -> str | None:
        text = self.ipv4(node, where, key)
        if text is None:
            return None
        try:
            ipaddress.IPv4Network(f"0.0.0.0/{text}")
        except ValueError:
            self.note(where, f"`{key}: {text}` is not a netmask; not carried over")
            return None
        return text

    def mac(self, node: YNode | None, where: str, key: str) -> Mac | None:
        text = self.scalar(node, where, key)
        if text is None:
            return None
        mac = text.lower().replace("-", ":")
        if not _MAC.match(mac):
            self.note(where, f"`{key}: {text}` is not a 6-byte MAC address (InfiniBand hardware "
                             "addresses are not used for booting); not carried over")
            return None
        return Mac(mac)

    def choice(self, node: YNode | None, where: str, key: str, choices: tuple[str, ...]) -> str | None:
        text = self.scalar(node, where, key)
        if text is None:
            return None
        if text.lower() not in choices:
            self.note(where, f"`{key}: {text}` is not supported by wwstatic (it knows "
                             f"{', '.join(choices)}); not carried over")
            return None
        return text.lower()

    def strlist(self, node: YNode | None, where: str, key: str, sep: str | None = ",") -> list[str]:
        """A list of strings; a single string is split on `sep` (None: on white space)."""
        if node is None or is_null(node):
            return []
        if isinstance(node, YScalar):
            parts = node.text.split(sep)
        elif isinstance(node, YSeq):
            parts = []
            for item in node.items:
                if isinstance(item, YScalar):
                    parts.append(item.text)
                else:
                    self.note(where, f"an item of `{key}` is {kind_name(item)}, not a string; "
                                     "not carried over")
        else:
            self.note(where, f"`{key}` is a mapping, not a list; not carried over")
            return []
        return [p.strip() for p in parts if p.strip().lower() not in UNSET]

    def tags(self, node: YNode | None, where: str, key: str) -> dict[str, str]:
        if node is None or is_null(node):
            return {}
        if not isinstance(node, YMap):
            self.note(where, f"`{key}` is {kind_name(node)}, not a mapping; not carried over")
            return {}
        out: dict[str, str] = {}
        for k, v in node.items:
            text = self.scalar(v, where, f"{key}.{k.text}")
            if text is not None:
                out[k.text] = text
        return out

    def tagsdel(self, tags: dict[str, str], node: YNode | None, where: str) -> dict[str, str]:
        """Apply a `tagsdel` list (a wwctl request that reached the file), as `wwctl upgrade` does."""
        gone = set(self.strlist(node, where, "tagsdel"))
        return {k: v for k, v in tags.items() if k not in gone}

    def mapping(self, node: YNode | None, where: str, key: str) -> dict[str, YNode]:
        if node is None or is_null(node):
            return {}
        if not isinstance(node, YMap):
            self.note(where, f"`{key}` is {kind_name(node)}, not a mapping; not carried over")
            return {}
        return as_items(node)

    def unknown(self, raw: dict[str, YNode], used: set[str], where: str, prefix: str = "") -> None:
        for key, value in raw.items():
            if key not in used and not is_null(value):
                self.note(where, f"unknown key `{prefix}{key}` not carried over")
