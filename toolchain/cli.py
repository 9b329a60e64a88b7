"""The `wwstatic` command: build, check, serve, and day-2 operations."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from toolchain.build import verb as build
from toolchain.errors import WWError, report
from toolchain.model import warewulf
from toolchain.ops import discover, power, preview, serve, show, status, tftp
from toolchain.project import Project
from toolchain.verbs import Verb

log = logging.getLogger("wwstatic")
SIGPIPE_EXIT = 128 + signal.SIGPIPE   # what a shell reports for a program killed by SIGPIPE


# The verbs in the order `wwstatic --help` lists them.
VERBS: list[Verb] = [
    *show.VERBS,
    *warewulf.VERBS,
    *preview.VERBS, *build.VERBS, *tftp.VERBS, *serve.VERBS, *status.VERBS, *discover.VERBS,
    *power.VERBS,
]


def _shared_options() -> argparse.ArgumentParser:
    """-f and -C, accepted before the verb and after it.

    SUPPRESS as the default: argparse lets a subparser's defaults overwrite what
    the main parser read, so `wwstatic -C DIR lint` would lose DIR; the
    dispatcher fills in the defaults instead.
    """
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-f", "--file", metavar="FILE", default=argparse.SUPPRESS,
                        help="the cluster definition (default: DIR/cluster.yaml)")
    common.add_argument("-C", dest="directory", metavar="DIR", default=argparse.SUPPRESS,
                        help="the project directory: run as if started there (default: .)")
    return common


def _add(sub: argparse._SubParsersAction[argparse.ArgumentParser], verb: Verb,
         common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(verb.name, help=verb.help, description=verb.description or verb.help,
                       parents=[common])
    verb.add_arguments(p)
    p.set_defaults(run=verb.run)
    if verb.subverbs:
        inner = p.add_subparsers(dest=f"{verb.name}_command", required=True)
        for v in verb.subverbs:
            _add(inner, v, common)


def parser() -> argparse.ArgumentParser:
    common = _shared_options()
    p = argparse.ArgumentParser(prog="wwstatic", description=__doc__, parents=[common])
    p.add_argument("--debug", action="store_true", help="log at debug level and show tracebacks")
    sub = p.add_subparsers(dest="command", required=True)
    for verb in VERBS:
        _add(sub, verb, common)
    return p


def _run(args: argparse.Namespace) -> int:
    args.project = Path(getattr(args, "directory", ".")).resolve()
    if not args.project.is_dir():
        raise WWError(f"-C {args.directory}: no such directory")
    given = getattr(args, "file", None)
    args.file = args.project / given if given else Project(args.project).cluster_file
    log.debug("wwstatic %s in %s, cluster file %s", args.command, args.project, args.file)
    os.chdir(args.project)
    return int(args.run(args))


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.debug:
        logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(levelname)s: %(message)s")
    cwd = os.getcwd()
    try:
        code = _run(args)
        sys.stdout.flush()   # here, not at exit, where a closed pipe would be reported
        return code
    except BrokenPipeError:
        # The reader went away (`wwstatic schema | head`): stop quietly, as a program
        # killed by SIGPIPE would. Python flushes stdout once more at exit: point it
        # at /dev/null so that flush cannot fail too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return SIGPIPE_EXIT
    except WWError as err:
        if args.debug:
            raise
        return report(err)
    except Exception as exc:
        if args.debug:
            raise
        print(f"wwstatic: internal error: {type(exc).__name__}: {exc}\n"
              "  hint: run again with --debug for the traceback, and report it", file=sys.stderr)
        return 2
    finally:
        # main() may be called in-process (tests); -C must not outlive it.
        os.chdir(cwd)


if __name__ == "__main__":
    sys.exit(main())
