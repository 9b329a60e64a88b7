"""How a module adds a verb to the `wwstatic` command: one `Verb` per verb, in a `VERBS` list.

A verb module defines `VERBS = [Verb(name, help, add_arguments, run), ...]`
and imports nothing of the CLI; `toolchain/cli.py` collects the lists, gives
every verb the shared options and dispatches. By the time `run(args)` is
called, `args.project` is the project directory (`-C`, absolute, the current
directory) and `args.file` the cluster definition (`-f`, absolute; default
DIR/cluster.yaml); relative paths in a verb's own options are relative to it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass


def no_arguments(parser: argparse.ArgumentParser) -> None:
    """For a verb with only the shared options."""


@dataclass(frozen=True)
class Verb:
    """A verb: its name and one-line help, what adds its own arguments, and what runs it.

    A verb with `subverbs` (`overlay list`, `overlay info`) runs one of them.
    """
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None] = no_arguments
    run: Callable[[argparse.Namespace], int] | None = None
    description: str | None = None
    subverbs: tuple[Verb, ...] = ()
