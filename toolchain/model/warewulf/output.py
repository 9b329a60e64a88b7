"""Writing cluster.yaml: keys in the reference's order, MACs quoted, notes in the header."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from toolchain.model import spec
from toolchain.model.warewulf.files import Settings
from toolchain.model.warewulf.scalars import Mac

# Canonical key order of the output: the field table's, as in the cluster.yaml reference.
SETTINGS_ORDER = tuple(f.key for f in spec.NODE)
NETDEV_ORDER = tuple(f.key for f in spec.NETDEV)


def ordered(s: Settings) -> Settings:
    out = {k: s[k] for k in SETTINGS_ORDER if k in s}
    if "network" in out:
        out["network"] = {name: {k: dev[k] for k in NETDEV_ORDER if k in dev}
                          for name, dev in out["network"].items()}
    return out


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)  # list items indented below their key


def _represent_mac(dumper: yaml.SafeDumper, data: Mac) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(data), style='"')


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.SequenceNode:
    flow = bool(data) and all(isinstance(v, str | int | float | bool) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(Mac, _represent_mac)
_Dumper.add_representer(list, _represent_list)


def dump(data: Settings) -> str:
    """Block YAML, key order kept, one blank line between top-level sections."""
    return "\n".join(yaml.dump({k: v}, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                               allow_unicode=True, width=100)
                     for k, v in data.items())


def header(nodes_conf: Path, warewulf_conf: Path | None, notes: list[str]) -> str:
    lines = [
        "# Imported from Warewulf by `wwstatic import-warewulf`:",
        f"#   nodes.conf:    {nodes_conf}",
        f"#   warewulf.conf: {warewulf_conf if warewulf_conf else '(none: head derived from the nodes)'}",
        "# Check it with `wwstatic check` before building.",
    ]
    if notes:
        lines.append("# Not carried over, or to check:")
        lines += ["#   - " + n.replace("\n", "\\n") for n in notes]
    return "\n".join(lines) + "\n\n"
