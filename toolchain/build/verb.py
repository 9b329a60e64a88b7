"""`wwstatic build`: doit on the project directory, with the cluster file `-f` names."""

from __future__ import annotations

import argparse
import os

from toolchain.errors import WWError
from toolchain.model.yamlsrc import load_file
from toolchain.project import CLUSTER_ENV, Project
from toolchain.verbs import Verb


def _run(args: argparse.Namespace) -> int:
    from doit.cmd_base import ModuleTaskLoader
    from doit.doit_cmd import DoitMain

    from toolchain.build import tasks

    # The dispatcher has made args.project the current directory, where doit
    # keeps output/ and the task creators look for the project.
    if args.file.parent != args.project:
        # The model checks overlay names against the cluster file's directory
        # (model/load.py), the build renders the project's: they must be one.
        raise WWError(f"-f {args.file}: the build reads a cluster file in the project directory "
                      f"{args.project} only", hint=f"copy it there, or build with -C {args.file.parent}")
    if not args.file.is_file():
        load_file(args.file)   # its error, before doit makes output/ for its store
    if args.file != Project(args.project).cluster_file:
        os.environ[CLUSTER_ENV] = str(args.file)
    return int(DoitMain(ModuleTaskLoader(vars(tasks))).run(args.doit_args))


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("doit_args", nargs=argparse.REMAINDER, help="doit's own arguments, e.g. -n 4 or list")


VERBS = [Verb("build", "build output/ (runs doit; extra arguments go to doit)", _arguments, _run)]
