"""`wwstatic build`: doit on the project directory, with the cluster file `-f` names."""

from __future__ import annotations

import argparse
import os

from toolchain.project import CLUSTER_ENV, Project
from toolchain.verbs import Verb


def _run(args: argparse.Namespace) -> int:
    from doit.cmd_base import ModuleTaskLoader
    from doit.doit_cmd import DoitMain

    from toolchain.build import tasks

    # The dispatcher has made args.project the current directory, where doit
    # keeps output/ and the task creators look for the project.
    if args.file != Project(args.project).cluster_file:
        os.environ[CLUSTER_ENV] = str(args.file)
    return int(DoitMain(ModuleTaskLoader(vars(tasks))).run(args.doit_args))


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("doit_args", nargs=argparse.REMAINDER, help="doit's own arguments, e.g. -n 4 or list")


VERBS = [Verb("build", "build output/ (runs doit; extra arguments go to doit)", _arguments, _run)]
