"""Reading Warewulf's files: YAML as located text, and Go's typing of free-form values."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from toolchain.errors import WWError
from toolchain.model.yamlsrc import TYPE_NAMES, YMap, YNode, YScalar, YSeq, kind_of, load_text

# wwstatic settings as they are written to cluster.yaml: a profile, a node, a section.
Settings = dict[str, Any]


def load_map(path: Path, what: str) -> YMap:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WWError(f"{path} does not exist",
                      hint=f"give the path of Warewulf's {what} (usually /etc/warewulf/{what})") from None
    except IsADirectoryError:
        raise WWError(f"{path} is a directory, not a file",
                      hint=f"give the path of Warewulf's {what} itself") from None
    except PermissionError:
        raise WWError(f"{path} is not readable by this user",
                      hint=f"Warewulf keeps {what} readable by root only: run as root, "
                           "or copy it somewhere readable") from None
    except UnicodeDecodeError as exc:
        raise WWError(f"{path} is not UTF-8 text ({exc.reason})",
                      hint=f"is this really Warewulf's {what}?") from None
    except OSError as exc:
        raise WWError(f"cannot read {path}: {exc.strerror}",
                      hint="check the path and the permissions") from None
    try:
        root = load_text(text, str(path))
    except WWError as err:
        if err.hint:
            raise
        raise WWError(err.message, loc=err.loc, hint=f"{what} must be valid YAML") from None
    if not isinstance(root, YMap):
        raise WWError(f"{path} is not a Warewulf {what}: YAML reads it as {kind_name(root)}, not a mapping",
                      loc=root.loc, hint=f"give the path of Warewulf's {what} (usually /etc/warewulf/{what})")
    return root


def as_items(m: YMap) -> dict[str, YNode]:
    return {k.text: v for k, v in m.items}


def kind_name(node: YNode) -> str:
    """What YAML reads `node` as, for a human: "a list", "a mapping", "a number", ..."""
    return TYPE_NAMES.get(kind_of(node), kind_of(node))


def is_null(node: YNode) -> bool:
    return isinstance(node, YScalar) and node.kind == "null" and not node.quoted


_INT12 = re.compile(r"[-+]?[0-9]+\Z")
_OCT12 = re.compile(r"0o[0-7]+\Z")
_HEX12 = re.compile(r"0x[0-9a-fA-F]+\Z")
_FLOAT12 = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z")


def typed(node: YNode) -> Any:
    """A free-form value typed like YAML 1.2 (core schema), which is how Go reads `resources`."""
    if isinstance(node, YMap):
        return {k.text: typed(v) for k, v in node.items}
    if isinstance(node, YSeq):
        return [typed(v) for v in node.items]
    text = node.text
    if node.quoted:
        return text
    if text in ("", "~", "null", "Null", "NULL"):
        return None
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    if _INT12.match(text):
        return int(text)
    if _OCT12.match(text):
        return int(text[2:], 8)
    if _HEX12.match(text):
        return int(text[2:], 16)
    if _FLOAT12.match(text):
        return float(text)
    return text  # YAML 1.1 reads more as non-strings (yes, 1:20, 2024-01-01); Go does not
