"""Import a Warewulf v4 cluster: nodes.conf (and warewulf.conf) in, cluster.yaml out.

`wwstatic import-warewulf NODES_CONF [WAREWULF_CONF] [-o OUT]` reads Warewulf's
own files, v4.5 spellings (`container name`, `kernel args` as one string, flat
`ipmi username`, `kernel override`) as well as v4.6+ ones (`image name`,
`kernel.args` list), and writes a wwstatic cluster.yaml with the same profiles
and nodes. Whatever has no wwstatic counterpart (IPv6, `kernel override`,
overlays wwstatic does not have, unknown keys, ...) is left out and reported as
a note, never dropped silently.

Warewulf's files are Go-written YAML. Every scalar is read as its text (MACs such
as 08:00:27:39:46:70 are base-60 numbers to YAML 1.1), then converted by what the
key means: "9000" becomes an int for `mtu`, "true" a bool for `onboot`.
`resources` is free-form, so its values are typed the way Go's YAML reader
(YAML 1.2) types them.
"""

from toolchain.model.warewulf.command import VERBS, run_import
from toolchain.model.warewulf.importer import ImportResult, find_overlays, import_warewulf

__all__ = ["VERBS", "ImportResult", "find_overlays", "import_warewulf", "run_import"]
