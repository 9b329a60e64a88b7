"""Run doit, and SIGKILL its process group right after the N-th file it puts in place.

Usage (in a project directory): python tests/support/crashwrap.py N COUNT_FILE [doit args...]

Every file the build writes goes through fsutil.atomic_open, which ends with
os.replace(): counting those calls gives kill points between any two writes
of a build, the pointers of `publish` included, which a kill after a random
delay rarely hits (publish takes milliseconds). N = 0 never kills; the number
of files put in place is written to COUNT_FILE when the build ends
(with the last one's name when killed). With $WWCRASH_ONLY (a regular
expression), only files whose path under output/ matches it count.
"""

from __future__ import annotations

import atexit
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

from doit.doit_cmd import DoitMain

limit, count_file, args = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
only = re.compile(os.environ.get("WWCRASH_ONLY", ""))
real_replace = os.replace
count = 0


def replace(src: Any, dst: Any, *a: Any, **kw: Any) -> None:
    global count
    real_replace(src, dst, *a, **kw)
    rel = os.path.relpath(dst, "output")
    if not only.search(rel):
        return
    count += 1
    if count == limit:
        count_file.write_text(f"{count} {rel}\n")
        os.killpg(os.getpgid(0), signal.SIGKILL)


os.replace = replace
atexit.register(lambda: count_file.write_text(f"{count}\n"))
sys.exit(DoitMain().run(args))
