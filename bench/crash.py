"""The crash test in full: SIGKILL the build at many points while a client reads the served tree.

Usage: python bench/crash.py [--runs 60] [--seed 10] [--grace 10] [--image-every 0.25]

Runs as root (a real nginx on loopback; client sockets bound to each node's
127.0.0.x address so the generated per-node rules apply). What it does and
checks is described in tests/lab/crashlab.py; tests/build/test_crash.py runs a short
version in CI. Prints: runs, fetches checked, inconsistencies (must be 0),
where the kills landed; exits 1 on any inconsistency or failure.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.lab.crashlab import crash_test, summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--seed", type=int, default=10)
    ap.add_argument("--grace", type=float, default=10.0, help="WWSTATIC_GC_GRACE of the builds (s)")
    ap.add_argument("--image-every", type=float, default=0.25,
                    help="share of runs that also change the image (a longer build)")
    ap.add_argument("--quiet", action="store_true", help="no line per run")
    args = ap.parse_args()
    # Stopped with SIGTERM: unwind, so nginx is stopped and the scratch tree removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="wwcrash-") as tmp:
        report = crash_test(Path(tmp), args.runs, args.seed, args.grace, args.image_every,
                            log=None if args.quiet else (lambda line: print(line, flush=True)))
    print(summary(report, args.seed))
    print(f"wall time: {time.monotonic() - start:.0f} s")
    return 1 if report.problems or report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
