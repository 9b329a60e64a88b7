"""The import: both files read, profiles and nodes reconciled, cluster.yaml written."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from toolchain.errors import WWError
from toolchain.model.load import known_ipxe_templates, known_overlays
from toolchain.model.warewulf.entities import EntityReader
from toolchain.model.warewulf.files import Settings, as_items, is_null, kind_name, load_map
from toolchain.model.warewulf.merge import Across, is_legacy
from toolchain.model.warewulf.output import dump, header, ordered
from toolchain.model.warewulf.server import WAREWULF_CHROOTS, ServerReader
from toolchain.model.yamlsrc import YMap, YNode


@dataclass
class ImportResult:
    yaml_text: str                                   # a complete cluster.yaml
    notes: list[str] = field(default_factory=list)   # what could not be carried over, for a human
    secrets: bool = False                            # the text holds BMC passwords


def import_warewulf(nodes_conf: Path, warewulf_conf: Path | None, known_overlays: set[str],
                    known_ipxe_templates: set[str] | None = None) -> ImportResult:
    """Convert Warewulf's nodes.conf (and optionally warewulf.conf) to a wwstatic cluster.yaml.

    Overlays not in `known_overlays` and iPXE templates not in `known_ipxe_templates`
    (default: the ones wwstatic ships) are dropped with a note. Raises WWError for
    files that cannot be read or are not Warewulf configuration files.
    """
    if known_ipxe_templates is None:
        known_ipxe_templates = shipped_ipxe_templates()
    imp = Importer(known_overlays, known_ipxe_templates)
    nodes_root = load_map(nodes_conf, "nodes.conf")
    server_root = load_map(warewulf_conf, "warewulf.conf") if warewulf_conf else None
    return imp.run(nodes_root, server_root, nodes_conf, warewulf_conf)


def find_overlays(project: Path | None = None) -> set[str]:
    """Names of the overlays wwstatic has: shipped ones and the project's own (./overlays)."""
    return known_overlays(Path.cwd() if project is None else project)


shipped_ipxe_templates = known_ipxe_templates



class Importer(EntityReader, ServerReader, Across):
    def run(self, nodes_root: YMap, server_root: YMap | None, nodes_path: Path,
            server_path: Path | None) -> ImportResult:
        top = as_items(nodes_root)
        if "nodes" not in top and "nodeprofiles" not in top:
            raise WWError(f"{nodes_path} is not a Warewulf v4 nodes.conf: it has neither `nodeprofiles` "
                          "nor `nodes`", loc=nodes_root.loc,
                          hint="give the path of Warewulf's nodes.conf (usually /etc/warewulf/nodes.conf)")
        self.unknown(top, {"nodes", "nodeprofiles", "WW_INTERNAL"}, "nodes.conf")
        server: Settings = {}
        chroots = WAREWULF_CHROOTS
        if server_root is not None:
            server, chroots = self.server(server_root)

        raw_profiles = {name: self.entry(v, name, "profile")
                        for name, v in self.entries(top.get("nodeprofiles"), "nodeprofiles").items()}
        raw_nodes = {name: self.entry(v, name, "node")
                     for name, v in self.entries(top.get("nodes"), "nodes").items()}
        legacy = "WW_INTERNAL" in top or any(is_legacy(raw) for raw in [*raw_profiles.values(),
                                                                          *raw_nodes.values()])
        profiles = {name: self.entity(f"profile {name}", raw, False) for name, raw in raw_profiles.items()}
        nodes = {name: self.entity(f"node {name}", raw, True) for name, raw in raw_nodes.items()}
        for what, table in (("profile", profiles), ("node", nodes)):
            for name, s in table.items():
                for ref in s.get("profiles", []):
                    if ref.removeprefix("~") not in profiles:
                        self.note(f"{what} {name}", f"profile `{ref.removeprefix('~')}` is not defined "
                                                    "in nodes.conf; kept")
        for name, s in nodes.items():
            chain = self.chain(s, profiles)
            self.fix_primary(s, chain)
            if legacy:
                self.fix_replaced_lists(name, s, chain)
        if legacy:
            self.notes.append("nodes.conf is a v4.5 one: settings its profiles leave unset came from "
                              "Warewulf's built-in defaults (defaults.conf: kernel args, init, root, "
                              "system overlay wwinit, runtime overlay generic, ...); they are not added, "
                              "so check the profiles")
        if "head" not in server:
            server = {"head": self.guess_head(nodes, profiles), **server}
        if self.secrets:
            self.notes.append("BMC passwords (ipmi.password) were copied into the output: "
                              "keep it readable by root only, as Warewulf keeps nodes.conf")

        out: Settings = dict(server)
        if self.images:
            out["images"] = {name: {"root": f"{chroots}/{name}/rootfs"} for name in self.images}
        if profiles:
            out["profiles"] = {name: ordered(s) for name, s in profiles.items()}
        if nodes:
            out["nodes"] = {name: ordered(s) for name, s in nodes.items()}
        text = header(nodes_path, server_path, self.notes) + dump(out)
        return ImportResult(text, self.notes, self.secrets)

    def entries(self, node: YNode | None, key: str) -> dict[str, YNode]:
        if node is None or is_null(node):
            return {}
        if not isinstance(node, YMap):
            raise WWError(f"nodes.conf: `{key}` is {kind_name(node)}, not a mapping of names", loc=node.loc,
                          hint=f"`{key}:` holds one `name:` entry per "
                               f"{'profile' if key == 'nodeprofiles' else 'node'}")
        return as_items(node)

    def entry(self, node: YNode, name: str, what: str) -> dict[str, YNode]:
        if is_null(node):
            return {}
        if not isinstance(node, YMap):
            raise WWError(f"nodes.conf: {what} {name} is {kind_name(node)}, not a mapping of settings",
                          loc=node.loc, hint=f"write the {what}'s settings as `key: value` lines below it")
        return as_items(node)
