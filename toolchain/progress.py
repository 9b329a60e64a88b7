"""A progress line for long builds, on stderr.

Quiet for the first seconds (most builds end before anyone looks), then at
most two updates a second. Shown when stderr is a terminal, or everywhere with
WWSTATIC_PROGRESS=1 (CI logs); WWSTATIC_PROGRESS=0 turns it off.
"""

from __future__ import annotations

import os
import sys
import time

QUIET_SECONDS = 3.0
EVERY_SECONDS = 0.5


def enabled() -> bool:
    flag = os.environ.get("WWSTATIC_PROGRESS", "")
    if flag:
        return flag not in ("0", "no", "false")
    return sys.stderr.isatty()


class Progress:
    """Counts bytes done of `total`; prints `what: 42% 630/1500 MB, 12 s` lines."""

    def __init__(self, what: str, total: int) -> None:
        self.what = what
        self.total = total
        self.done_bytes = 0
        self.start = time.monotonic()
        self.last = 0.0
        self.shown = False
        self.on = bool(what) and enabled()
        self.tty = sys.stderr.isatty()

    def add(self, nbytes: int) -> None:
        self.done_bytes += nbytes
        if not self.on:
            return
        now = time.monotonic()
        if now - self.start >= QUIET_SECONDS and now - self.last >= EVERY_SECONDS:
            self.last = now
            self._show(now)

    def _show(self, now: float, end: str = "") -> None:
        mb, total_mb = self.done_bytes >> 20, self.total >> 20
        pct = f"{100 * self.done_bytes // self.total:3d}% " if self.total else ""
        line = f"wwstatic: {self.what}: {pct}{mb}/{total_mb} MB, {now - self.start:.0f} s{end}"
        # A terminal gets one line redrawn in place; a log gets one line per update.
        print(("\r" + line) if self.tty else line, end="" if self.tty else "\n",
              file=sys.stderr, flush=True)
        self.shown = True

    def done(self) -> None:
        if self.shown:
            self._show(time.monotonic(), " (done)")
            if self.tty:
                print(file=sys.stderr)
