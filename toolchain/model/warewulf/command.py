"""`wwstatic import-warewulf`: the subcommand."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from toolchain.errors import WWError
from toolchain.fsutil import write_atomic
from toolchain.model.warewulf.importer import find_overlays, import_warewulf
from toolchain.verbs import Verb


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("nodes_conf", metavar="NODES_CONF", help="Warewulf's nodes.conf")
    p.add_argument("warewulf_conf", metavar="WAREWULF_CONF", nargs="?",
                   help="Warewulf's warewulf.conf (head address, DHCP range, NFS exports, ...)")
    p.add_argument("-o", "--output", metavar="OUT", help="write cluster.yaml here (default: stdout)")
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")


def run_import(args: argparse.Namespace) -> int:
    out = Path(args.output) if args.output else None
    if out is not None and out.exists() and not args.force:
        raise WWError(f"{out} already exists", hint="add --force to overwrite it, or choose another -o file")
    result = import_warewulf(Path(args.nodes_conf),
                             Path(args.warewulf_conf) if args.warewulf_conf else None,
                             find_overlays())
    for note in result.notes:
        print(f"wwstatic: note: {note}", file=sys.stderr)
    if out is None:
        sys.stdout.write(result.yaml_text)
        return 0
    try:
        write_atomic(out, result.yaml_text, mode=0o600 if result.secrets else 0o644)
    except OSError as exc:
        raise WWError(f"cannot write {out}: {exc.strerror}",
                      hint="check that its directory exists and is writable") from None
    print(f"wwstatic: wrote {out}", file=sys.stderr)
    return 0


VERBS = [Verb(
    "import-warewulf", "convert Warewulf's nodes.conf (and warewulf.conf) to cluster.yaml", _arguments,
    run_import,
    description="Convert a Warewulf v4 nodes.conf, and optionally warewulf.conf, into a wwstatic "
                "cluster.yaml. What cannot be carried over is reported as notes on stderr.")]
